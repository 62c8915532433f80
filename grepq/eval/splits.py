"""Train/test splits and cross-validation folds of the evaluation protocols (docs/method.md §5).

Split ``s`` draws from ``numpy.random.default_rng([seed, s])``: the same seed gives the same splits on every
machine, and split ``s`` is the same for every label count and feature set (paired comparisons). Random 80/20
image split, or, when ``refs`` (reference scene of each image) is given, a split by scene:
``round(train_fraction * n_scenes)`` scenes train, the others test; no scene is in both. The labelled training
images are the first ``n`` of one random permutation of the training part, so the 50 labels are a subset of the
100, which are a subset of the 200.

The cross-validation folds of ``n`` labelled images of split ``s`` draw from ``default_rng([seed, s, n])``
(:func:`labelled_folds`); ``grepq fit`` uses split 0's, so a regressor fit on the labelled images of split 0
chooses the alpha the data-efficient protocol chooses.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .paper_numbers import LABEL_COUNTS

__all__ = ["PAPER_LABEL_COUNTS", "PAPER_N_SPLITS", "PAPER_TRAIN_FRACTION", "split_indices", "scene_codes",
           "make_folds", "labelled_folds"]

#: Label counts of Table 1 (paper §4.2: "a random subset of 50, 100, or 200 samples"); defined once in
#: :data:`grepq.eval.paper_numbers.LABEL_COUNTS`.
PAPER_LABEL_COUNTS = LABEL_COUNTS
#: Number of random train/test splits, medians reported (paper §4.2: "median ... across 10 splits").
PAPER_N_SPLITS = 10
#: Training fraction of each split (paper §4.2: "randomly split ... into 80% and 20%").
PAPER_TRAIN_FRACTION = 0.8


def scene_codes(refs, n: int) -> np.ndarray:
    arr = np.asarray(refs)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"refs: expected {n} reference-scene labels (one per image), got shape {arr.shape}")
    _, codes = np.unique(arr.astype(str), return_inverse=True)
    return codes.reshape(-1)


def split_indices(
    n_items: int,
    split: int,
    *,
    seed: int = 0,
    train_fraction: float = PAPER_TRAIN_FRACTION,
    refs=None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test split number ``split``.

    Args:
        n_items: N, the number of images. split: split number s >= 0. seed: base seed.
        train_fraction: fraction of images (or of scenes when ``refs`` is given) in the training part.
        refs: optional (N,) reference-scene label per image; the split is then by scene.

    Returns:
        (train, test): int arrays of image indices, train in random order (its first n are the labelled
        images of label count n), test sorted. Disjoint; their union is range(N).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: expected a value in (0, 1), got {train_fraction}")
    if n_items < 2:
        raise ValueError(f"expected at least 2 images to split, got {n_items}")
    rng = np.random.default_rng([int(seed), int(split)])
    if refs is None:
        perm = rng.permutation(n_items)
        n_tr = int(round(train_fraction * n_items))
        n_tr = min(max(n_tr, 1), n_items - 1)
        return perm[:n_tr], np.sort(perm[n_tr:])
    codes = scene_codes(refs, n_items)
    n_scenes = int(codes.max()) + 1
    if n_scenes < 2:
        raise ValueError(f"refs: a split by scene needs at least 2 scenes, got {n_scenes}")
    scene_perm = rng.permutation(n_scenes)
    n_tr_scenes = min(max(int(round(train_fraction * n_scenes)), 1), n_scenes - 1)
    train_scene = np.zeros(n_scenes, dtype=bool)
    train_scene[scene_perm[:n_tr_scenes]] = True
    in_train = train_scene[codes]
    train = rng.permutation(np.flatnonzero(in_train))
    test = np.flatnonzero(~in_train)
    return train, test


def make_folds(n: int, k: int, rng: np.random.Generator, groups: Optional[np.ndarray]) -> List[np.ndarray]:
    """K folds of range(n) (validation index arrays), by group when ``groups`` (n,) is given."""
    if groups is None:
        k = min(k, n)
        if k < 2:
            raise ValueError(f"cross-validation: expected at least 2 training samples, got {n}")
        return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]
    uniq = np.unique(groups)
    k = min(k, uniq.size)
    if k < 2:
        raise ValueError(
            f"cross-validation by scene: expected labelled images from at least 2 scenes, got {uniq.size}"
        )
    chunks = np.array_split(rng.permutation(uniq), k)
    return [np.flatnonzero(np.isin(groups, c)) for c in chunks]


def labelled_folds(n: int, k: int, seed: int, split: int = 0, groups: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """The K cross-validation folds (validation index arrays into the n labelled images, in their order) that
    the data-efficient protocol uses for label count ``n`` of split ``split``; by group (scene) when ``groups``
    (n,) is given. ``grepq fit`` uses split 0."""
    return make_folds(n, int(k), np.random.default_rng([int(seed), int(split), int(n)]), groups)
