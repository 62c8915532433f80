"""The evaluation-dataset record (:class:`IQADataset`), its error type and the score polarities."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]

__all__ = ["DatasetError", "IQADataset", "MOS", "DMOS", "POLARITIES", "PathLike"]


#: Polarity of a score: "mos" = higher is better, "dmos" = lower is better (pyiqa's ``lower_better``).
MOS = "mos"
DMOS = "dmos"
POLARITIES = (MOS, DMOS)


class DatasetError(ValueError):
    """A dataset's files are missing, malformed or inconsistent; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class IQADataset:
    """An evaluation dataset: N absolute image ``paths`` (score-file order), ``scores`` (N,) float64 read-only,
    ``polarity`` "mos" (higher is better) or "dmos", ``refs``: N reference-scene ids for synthetic datasets (else
    None), ``score_range``: the rating scale's nominal (low, high), None where unbounded."""

    name: str
    root: Path
    paths: List[Path]
    scores: np.ndarray
    polarity: str
    refs: Optional[List[str]] = None
    score_range: Optional[Tuple[float, float]] = None

    def __post_init__(self) -> None:
        paths = [Path(p) for p in self.paths]
        scores = np.array(self.scores, dtype=np.float64)  # a private copy
        if scores.ndim != 1:
            raise DatasetError(f"{self.name}: scores must be a 1-D array, got shape {scores.shape}")
        if scores.shape[0] != len(paths):
            raise DatasetError(f"{self.name}: expected one score per image, got {len(paths)} paths and "
                               f"{scores.shape[0]} scores")
        if self.polarity not in POLARITIES:
            raise DatasetError(f"{self.name}: polarity must be one of {POLARITIES}, got {self.polarity!r}")
        refs = None
        if self.refs is not None:
            refs = [str(r) for r in self.refs]
            if len(refs) != len(paths):
                raise DatasetError(f"{self.name}: expected one reference id per image, got {len(paths)} paths "
                                   f"and {len(refs)} refs")
        score_range = None
        if self.score_range is not None:
            lo, hi = (float(v) for v in self.score_range)
            if not lo < hi:
                raise DatasetError(f"{self.name}: score_range must be (low, high) with low < high, "
                                   f"got {self.score_range}")
            score_range = (lo, hi)
        scores.setflags(write=False)
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "refs", refs)
        object.__setattr__(self, "score_range", score_range)

    @property
    def lower_better(self) -> bool:
        """True for DMOS-style scores (lower is better)."""
        return self.polarity == DMOS

    @property
    def is_synthetic(self) -> bool:
        """True when reference-scene ids are known (LIVE, CSIQ, PIPAL, TID2013, KADID-10k)."""
        return self.refs is not None

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (f"IQADataset(name={self.name!r}, n={len(self)}, polarity={self.polarity!r}, "
                f"synthetic={self.is_synthetic}, root={str(self.root)!r})")

    def subset(self, indices: Union[Sequence[int], np.ndarray]) -> "IQADataset":
        """The images at ``indices`` (a sequence of integer positions, or a boolean mask of length N), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise DatasetError(f"{self.name}: a boolean mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64).reshape(0)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise DatasetError(f"{self.name}: indices must be integers or a boolean mask, got dtype {idx.dtype}")
        idx = idx.reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DatasetError(f"{self.name}: index out of range for {len(self)} images "
                               f"(got min {idx.min()}, max {idx.max()})")
        return IQADataset(self.name, self.root, [self.paths[i] for i in idx], self.scores[idx], self.polarity,
                          None if self.refs is None else [self.refs[i] for i in idx], self.score_range)

    def head(self, n: int) -> "IQADataset":
        """The first ``n`` images (all of them if the dataset has fewer), for a ``--limit N`` option."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise DatasetError(f"{self.name}: head() expects a non-negative integer, got {n!r}")
        return self.subset(np.arange(min(int(n), len(self))))


