"""The training datasets of both models, reading the layout of :mod:`grepq.data.layout` (``grepq prepare``'s
folders, or the official layout: a folder of versions and nothing else, FSIM then computed in the loader).

:class:`LLTrainingDataset`: an image folder -> its D versions as two aligned fragment views and their pair weights
(Eq. 1); :class:`HLTrainingDataset`: each folder's reference, CLIP-normalised and centre-cropped;
:class:`EpochSampler`: the seeded, sharded order of samples as ``(epoch, index)`` keys. A version stack is
(D, 3, H, W) float32 in [0, 1]; fragments are (D, 3, S, S), S = grid * patch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from .fragments import FLIP_P, FRAGMENT_GRID, FRAGMENT_PATCH, fragment_views, sample_generator
from .io import CLIP_MEAN, CLIP_STD, ImageReadError, read_image
from .layout import (
    FSIM_FILE,
    DataError,
    folder_versions,
    is_image,
    is_reference,
    list_image_folders,
    read_fsim_matrix,
    stored_fsim_path,
)
from .pair_weights import PAIR_WEIGHTS, pair_weight_matrix

__all__ = ["LLTrainingDataset", "HLTrainingDataset", "EpochSampler", "hl_preprocess"]


def _key(item) -> Tuple[int, int]:
    """Dataset keys are ``(epoch, index)`` (from :class:`EpochSampler`) or a bare index (epoch 0)."""
    if isinstance(item, (tuple, list)):
        return int(item[0]), int(item[1])
    return 0, int(item)


def _read_stack(folder: Path, names: Sequence[str]) -> torch.Tensor:
    imgs = []
    for n in names:
        try:
            imgs.append(read_image(folder / n))
        except ImageReadError as exc:
            raise DataError(str(exc)) from None
    sizes = {tuple(t.shape[-2:]) for t in imgs}
    if len(sizes) != 1:
        raise DataError(f"{folder}: the versions of one image must have one size, got "
                        f"{dict(zip(names, [tuple(t.shape[-2:]) for t in imgs]))}")
    return torch.stack(imgs)


class LLTrainingDataset(Dataset):
    """LL training samples: ``dataset[(epoch, index)]`` -> ``{"anchor": (D, 3, S, S), "positive": (D, 3, S, S),
    "pair_weight": (D, D) float32, "index": int, "name": str}``.

    ``versions``: "distorted" (files without ``_REF``, paper D = 8) or "all" (official: 9); ``pair_weight``: one of
    :data:`~grepq.data.pair_weights.PAIR_WEIGHTS`; FSIM from ``fsim_source`` "stored" (``fsim.npy``), "compute"
    (piq per pair, official) or "auto" (stored if present); ``grid``, ``patch``, ``flip_p``: the fragment sampler.
    """

    def __init__(self, root, limit: Optional[int] = None, versions: str = "distorted", fsim_source: str = "auto",
                 grid: int = FRAGMENT_GRID, patch: int = FRAGMENT_PATCH, flip_p: float = FLIP_P, seed: int = 0,
                 pair_weight: str = "fsim"):
        if versions not in ("distorted", "all"):
            raise ValueError(f"versions must be 'distorted' or 'all', got {versions!r}")
        if fsim_source not in ("auto", "stored", "compute"):
            raise ValueError(f"fsim_source must be 'auto', 'stored' or 'compute', got {fsim_source!r}")
        if pair_weight not in PAIR_WEIGHTS:
            raise ValueError(f"pair_weight must be one of {PAIR_WEIGHTS}, got {pair_weight!r}")
        self.folders = list_image_folders(root, limit)
        self.versions, self.fsim_source, self.pair_weight = versions, fsim_source, pair_weight
        self.grid, self.patch, self.flip_p, self.seed = grid, patch, float(flip_p), int(seed)

    def __len__(self) -> int:
        return len(self.folders)

    def _select(self, folder: Path) -> Tuple[List[str], List[int]]:
        names = folder_versions(folder)
        if self.versions == "all":
            keep = list(range(len(names)))
        else:
            keep = [i for i, n in enumerate(names) if not is_reference(n)]
        if len(keep) < 2:
            raise DataError(f"{folder}: {len(keep)} version(s) with versions={self.versions!r}; QACL needs at least "
                            f"2 (files: {names})")
        return names, keep

    def load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The selected versions of folder ``index`` and their pair weights: ((D, 3, H, W), (D, D) float64)."""
        folder = self.folders[index]
        names, keep = self._select(folder)
        stack = _read_stack(folder, [names[i] for i in keep])
        stored = stored_fsim_path(folder).is_file()
        if self.pair_weight == "fsim" and self.fsim_source == "stored" and not stored:
            raise DataError(f"{folder}: no {FSIM_FILE} (looked for {stored_fsim_path(folder)}; ll.fsim_source: "
                            f"stored); run grepq prepare, or use fsim_source 'compute' / 'auto'")
        if self.pair_weight == "fsim" and self.fsim_source != "compute" and stored:
            full = read_fsim_matrix(folder, len(names))
            return stack, torch.from_numpy(full[np.ix_(keep, keep)].copy())
        try:
            return stack, pair_weight_matrix(stack, self.pair_weight)
        except ValueError as exc:
            raise DataError(f"{folder}: {exc}") from None

    def __getitem__(self, item) -> Dict[str, object]:
        epoch, index = _key(item)
        stack, weights = self.load(index)
        g = sample_generator(self.seed, epoch, index)
        anchor, positive, _ = fragment_views(stack, g, self.grid, self.patch, self.flip_p)
        return {"anchor": anchor.contiguous(), "positive": positive.contiguous(),
                "pair_weight": weights.to(torch.float32), "index": index, "name": self.folders[index].name}


def hl_preprocess(img: torch.Tensor, crop: int = 224, small_crop: str = "pad") -> torch.Tensor:
    """HL training input, official order: CLIP Normalize, then CenterCrop: (3, H, W) in [0, 1] -> (3, crop, crop).
    Smaller images: ``small_crop`` "pad" zero-pads the normalised tensor (official: a CLIP-mean border) or
    "resize" resizes the short side to ``crop`` first (bicubic, antialiased, clamped)."""
    from torchvision.transforms import functional as TF

    if small_crop not in ("pad", "resize"):
        raise ValueError(f"small_crop must be 'pad' or 'resize', got {small_crop!r}")
    if small_crop == "resize" and min(img.shape[-2:]) < crop:
        img = TF.resize(img, crop, interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp_(0, 1)
    mean = torch.tensor(CLIP_MEAN, dtype=img.dtype).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=img.dtype).view(3, 1, 1)
    return TF.center_crop((img - mean) / std, [crop, crop])


class HLTrainingDataset(Dataset):
    """HL training samples, each folder's reference: ``dataset[index]`` -> ``{"image": (3, crop, crop) (by
    :func:`hl_preprocess`), "index": int, "name": str}``."""

    def __init__(self, root, limit: Optional[int] = None, crop: int = 224, small_crop: str = "pad"):
        self.folders = list_image_folders(root, limit)
        self.crop = crop
        self.small_crop = small_crop

    def __len__(self) -> int:
        return len(self.folders)

    def reference(self, index: int) -> Path:
        folder = self.folders[index]
        refs = [n for n in sorted(os.listdir(folder)) if is_image(n) and is_reference(n)]
        if len(refs) != 1:
            raise DataError(f"{folder}: expected one reference image (a file name containing '_REF'), "
                            f"found {refs or 'none'}")
        return folder / refs[0]

    def __getitem__(self, item) -> Dict[str, object]:
        _, index = _key(item)
        try:
            img = read_image(self.reference(index))
        except ImageReadError as exc:
            raise DataError(str(exc)) from None
        return {"image": hl_preprocess(img, self.crop, self.small_crop), "index": index,
                "name": self.folders[index].name}


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by seed + epoch, sharded by rank) yielding ``(epoch, index)`` pairs;
    ``set_start(k)`` skips this rank's first k indices of the epoch (resuming inside an epoch)."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = int(start)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        indices = list(super().__iter__())[self.start:]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
