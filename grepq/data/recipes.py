"""Recipes: which distortions each image of the training set gets (``grepq prepare --recipe``; docs/method.md §6).

``authors`` (default): 4 different KADIS types drawn from the authors' 12 (:data:`~grepq.data.distortions.
AUTHORS_TYPES`; 15 is grepq's labelled substitute ``denoise_nlm``), 2 different levels of {2, 3, 4, 5} for each:
D = 8 versions. ``authors-no-denoise``: the same from the other 11. ``fixed``: grepq's behaviour before the authors'
recipe was known, bit for bit, for old runs (gaussian_blur, jpeg, white_noise, hsv_saturation at levels 2 and 4).
``grid``: every given type at every given level. ``random``: ``n_types`` of the given types, ``n_levels`` of the
given levels. A draw depends on (seed, image name) only (the item seed), so shards and reruns make the same set.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .distortions import AUTHORS_LEVELS, AUTHORS_TYPES, DEFAULT_LEVELS, DEFAULT_TYPES, DistortionSpec, kadis_type

__all__ = ["Recipe", "RECIPES", "DEFAULT_RECIPE", "make_recipe"]

RECIPES = ("authors", "authors-no-denoise", "fixed", "grid", "random")
DEFAULT_RECIPE = "authors"
_NO_DENOISE = tuple(t for t in AUTHORS_TYPES if t != "denoise_nlm")
_PRESETS: Dict[str, Dict[str, Any]] = {
    "authors": {"types": AUTHORS_TYPES, "levels": AUTHORS_LEVELS, "n_types": 4, "n_levels": 2},
    "authors-no-denoise": {"types": _NO_DENOISE, "levels": AUTHORS_LEVELS, "n_types": 4, "n_levels": 2},
    "fixed": {"types": DEFAULT_TYPES, "levels": DEFAULT_LEVELS, "n_types": None, "n_levels": None},
    "grid": {"types": DEFAULT_TYPES, "levels": DEFAULT_LEVELS, "n_types": None, "n_levels": None},
    "random": {"types": AUTHORS_TYPES, "levels": AUTHORS_LEVELS, "n_types": 4, "n_levels": 2},
}


@dataclass(frozen=True)
class Recipe:
    """Which versions an image gets: ``n_types`` of ``types`` and ``n_levels`` of ``levels`` per type (None = all)."""

    name: str
    types: Tuple[str, ...]
    levels: Tuple[int, ...]
    n_types: Optional[int] = None
    n_levels: Optional[int] = None

    def __post_init__(self):
        if self.name not in RECIPES:
            raise ValueError(f"recipe: expected one of {RECIPES}, got {self.name!r}")
        for t in self.types:
            kadis_type(t)  # a clear error for an unknown type
        if not self.types or not self.levels:
            raise ValueError(f"recipe {self.name!r}: expected at least one type and one level")
        if len(set(self.types)) != len(self.types) or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"recipe {self.name!r}: repeated types or levels: {self.types}, {self.levels}")
        for what, n, pool in (("n_types", self.n_types, self.types), ("n_levels", self.n_levels, self.levels)):
            if n is not None and not 1 <= n <= len(pool):
                raise ValueError(f"recipe {self.name!r}: {what} must be in 1..{len(pool)}, got {n}")
        for lv in self.levels:
            DistortionSpec(self.types[0], lv)  # levels 1..5

    @property
    def legacy(self) -> bool:
        """True for recipe ``fixed``: grepq's pre-check behaviour of jpeg2000 and lab_saturation."""
        return self.name == "fixed"

    @property
    def is_grid(self) -> bool:
        """Whether every image gets every type x level (no draw)."""
        return self.n_types is None and self.n_levels is None

    def draw(self, item_seed: int) -> List[DistortionSpec]:
        """The distortions of one item (``n_types x n_levels`` specs): a grid in the given order, a draw by KADIS id
        then level."""
        if self.is_grid:
            return [DistortionSpec(t, int(lv), self.legacy) for t in self.types for lv in self.levels]
        rng = np.random.default_rng(np.random.SeedSequence([int(item_seed), zlib.crc32(b"grepq.recipe")]))
        n_t = self.n_types or len(self.types)
        n_l = self.n_levels or len(self.levels)
        chosen = sorted(rng.choice(len(self.types), n_t, replace=False).tolist(),
                        key=lambda i: kadis_type(self.types[i]).id)
        specs = []
        for i in chosen:
            for lv in sorted(rng.choice(np.asarray(self.levels), n_l, replace=False).tolist()):
                specs.append(DistortionSpec(self.types[i], int(lv)))
        return specs

    def describe(self) -> Dict[str, Any]:
        """JSON-able settings (stored in ``versions.json``)."""
        return {"name": self.name, "types": list(self.types), "levels": [int(lv) for lv in self.levels],
                "n_types": self.n_types, "n_levels": self.n_levels}


def make_recipe(name: Optional[str] = None, types: Optional[Sequence[str]] = None,
                levels: Optional[Sequence[int]] = None, n_types: Optional[int] = None,
                n_levels: Optional[int] = None) -> Recipe:
    """A :class:`Recipe` from a preset and overrides of its pools and counts (``name=None``: ``grid`` when ``types``
    or ``levels`` are given, else ``authors``; overriding the pools of ``authors`` makes it ``random``)."""
    if name is None:
        name = "grid" if (types is not None or levels is not None) else DEFAULT_RECIPE
    if name not in _PRESETS:
        raise ValueError(f"recipe: expected one of {RECIPES}, got {name!r}")
    preset = dict(_PRESETS[name])
    if name.startswith("authors") and (types is not None or levels is not None or n_types or n_levels):
        name = "random"
    if isinstance(types, str) or isinstance(levels, (str, int)):
        raise TypeError(f"types and levels must be sequences, got types={types!r}, levels={levels!r}")
    pool_t = tuple(types) if types is not None else preset["types"]
    pool_l = tuple(int(lv) if isinstance(lv, (int, np.integer)) and not isinstance(lv, bool) else lv
                   for lv in (levels if levels is not None else preset["levels"]))
    if preset["n_types"] is None and (n_types or n_levels):
        raise ValueError(f"recipe {name!r} uses every type and level; n_types/n_levels need recipe 'random'")
    default_t = min(preset["n_types"], len(pool_t)) if preset["n_types"] else None
    default_l = min(preset["n_levels"], len(pool_l)) if preset["n_levels"] else None
    return Recipe(name, pool_t, pool_l, n_types or default_t, n_levels or default_l)
