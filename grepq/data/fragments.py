"""The aligned fragment sampler of the low-level model (method.md §2; official ``get_spatial_fragments``, FAST-VQA).

Each training sample is a stack of D versions of one image, (D, 3, H, W) float32 in [0, 1]. Two views are cut
from it: the anchor (7 x 7 mini-patches of 32 x 32 at random offsets within their grid cells) and the positive
(a second sampling, flipped), the same offsets and flips for every version. A stack whose short side is under
grid * patch = 224 is upsampled first (bilinear), as the official loader does.

Randomness. Every random choice of a sample (fragment offsets, flips) comes from a local ``torch.Generator``
seeded from ``(seed, epoch, index)`` (:func:`sample_seed`), so the data do not depend on the number of
DataLoader workers, on the number of processes, or on resuming.

Shapes: fragments are (D, 3, S, S), S = grid * patch.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch

__all__ = ["FRAGMENT_GRID", "FRAGMENT_PATCH", "FLIP_P", "sample_seed", "sample_generator", "bilinear_resize",
           "upsample_min_side", "fragment_offsets", "fragment_index", "sample_fragments", "fragment_views"]

FRAGMENT_GRID = 7  # grid x grid cells (paper §4 "7x7 grids"; official get_spatial_fragments fragments_h/w = 7)
FRAGMENT_PATCH = 32  # mini-patch side (official fsize_h/w = 32) -> 7 * 32 = 224
FLIP_P = 0.5  # positive view: horizontal and vertical flips, p = 0.5 each (official RandomHorizontal/VerticalFlip)


# --------------------------------------------------------------------------------------------------------------
# Randomness


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed mixing (seed, epoch, index) (numpy's SeedSequence), the only source of a sample's randomness."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`sample_seed`."""
    return torch.Generator().manual_seed(sample_seed(seed, epoch, index))


# --------------------------------------------------------------------------------------------------------------
# Sampler


def _linear_axis(n_in: int, n_out: int,
                 dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of 1-D linear interpolation, ``align_corners=False`` (PyTorch's convention)."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = (src - i0.to(torch.float64)).to(dtype)
    return i0, i1, 1 - w1, w1


def bilinear_resize(stack: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (..., H, W) to ``size``, as ``F.interpolate(mode="bilinear", align_corners=False)``
    (to ~1e-5: PyTorch computes the source coordinates in float32, grepq in float64), written with element-wise
    operations so the result is bit-identical for any number of threads (``F.interpolate``'s vectorised paths differ in
    the last bit between thread counts, and the data must not depend on the DataLoader's worker count)."""
    h0, h1, hw0, hw1 = _linear_axis(stack.shape[-2], size[0], stack.dtype)
    w0, w1, ww0, ww1 = _linear_axis(stack.shape[-1], size[1], stack.dtype)
    x = stack.index_select(-2, h0) * hw0[:, None] + stack.index_select(-2, h1) * hw1[:, None]
    return x.index_select(-1, w0) * ww0 + x.index_select(-1, w1) * ww1


def upsample_min_side(stack: torch.Tensor, min_side: int) -> torch.Tensor:
    """Upsample (bilinear) so the short side reaches ``min_side`` (official: when min(H, W) < 224); else unchanged.

    stack: (D, 3, H, W) -> (D, 3, H', W') with min(H', W') = min_side and the aspect ratio kept (rounded). The
    official code passes ``scale_factor = 1/ratio``, whose floor can land one pixel short; grepq sets the size.
    The official code also computes the fragment grid from the size *before* upsampling (so it samples only the
    top-left part of an upsampled image); grepq uses the upsampled size.
    """
    h, w = stack.shape[-2:]
    if min(h, w) >= min_side:
        return stack
    scale = min_side / min(h, w)
    size = (max(min_side, int(round(h * scale))), max(min_side, int(round(w * scale))))
    return bilinear_resize(stack, size)


def fragment_offsets(h: int, w: int, grid: int, patch: int,
                     generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (grid, grid) of the mini-patches, the official rule (FAST-VQA's aligned fragments).

    Cell i starts at ``min(res // grid * i, res - patch)``; when the cell (res // grid) is larger than the patch a
    random offset ``randint(res // grid - patch)`` is added per cell, else none. Rows, then columns, are drawn
    from ``generator``. Needs ``min(h, w) >= patch``.
    """
    if min(h, w) < patch:
        raise ValueError(f"image of {h}x{w} is smaller than a {patch}x{patch} mini-patch")

    def axis(res: int) -> torch.Tensor:
        starts = torch.tensor([min(res // grid * i, res - patch) for i in range(grid)], dtype=torch.long)
        cell = res // grid
        rnd = (torch.randint(cell - patch, (grid, grid), generator=generator) if cell > patch
               else torch.zeros(grid, grid, dtype=torch.long))
        return starts, rnd

    hs, rnd_h = axis(h)
    ws, rnd_w = axis(w)
    top = hs[:, None] + rnd_h
    left = ws[None, :] + rnd_w
    return top, left


def fragment_index(width: int, top: torch.Tensor, left: torch.Tensor, patch: int) -> torch.Tensor:
    """Flat pixel indices (S*S,) into an (H, W) image that assemble the fragment image, S = grid * patch."""
    g = top.shape[0]
    a = torch.arange(patch)
    rows = top[:, :, None] + a                                  # (g, g, p): source row of output row i*p+u
    cols = left[:, :, None] + a                                 # (g, g, p): source column of output col j*p+v
    idx = rows[:, :, :, None] * width + cols[:, :, None, :]     # (g, g, p, p) indexed [i, j, u, v]
    return idx.permute(0, 2, 1, 3).reshape(g * patch * g * patch)


def sample_fragments(stack: torch.Tensor, top: torch.Tensor, left: torch.Tensor, patch: int) -> torch.Tensor:
    """Stitch the mini-patches at (top, left) of every version: (D, C, H, W) -> (D, C, S, S), one gather."""
    d, c, h, w = stack.shape
    s = top.shape[0] * patch
    idx = fragment_index(w, top, left, patch)
    return stack.reshape(d * c, h * w).index_select(1, idx).reshape(d, c, s, s)


def fragment_views(stack: torch.Tensor, generator: torch.Generator, grid: int = FRAGMENT_GRID,
                   patch: int = FRAGMENT_PATCH, flip_p: float = FLIP_P) -> Tuple[torch.Tensor, torch.Tensor, Dict]:
    """The anchor and positive views of one image's versions, aligned across versions (docs/method.md §2).

    stack: (D, 3, H, W) in [0, 1]. Upsampled first when its short side is under grid*patch. The anchor is one
    fragment sampling; the positive a second sampling (new offsets, the same for every version) flipped
    horizontally and vertically with probability ``flip_p`` each (the same flips for every version).
    Returns (anchor (D, 3, S, S), positive (D, 3, S, S), info with the offsets and flips).
    """
    if stack.dim() != 4 or stack.shape[1] != 3:
        raise ValueError(f"expected a version stack of shape (D, 3, H, W), got {tuple(stack.shape)}")
    size = grid * patch
    stack = upsample_min_side(stack, size)
    h, w = stack.shape[-2:]
    top_a, left_a = fragment_offsets(h, w, grid, patch, generator)
    top_p, left_p = fragment_offsets(h, w, grid, patch, generator)
    hflip = bool(torch.rand((), generator=generator) < flip_p)
    vflip = bool(torch.rand((), generator=generator) < flip_p)
    anchor = sample_fragments(stack, top_a, left_a, patch)
    positive = sample_fragments(stack, top_p, left_p, patch)
    if hflip:
        positive = positive.flip(-1)
    if vflip:
        positive = positive.flip(-2)
    info = {"anchor_offsets": (top_a, left_a), "positive_offsets": (top_p, left_p), "hflip": hflip, "vflip": vflip,
            "size": (h, w)}
    return anchor, positive, info
