"""The aligned fragment sampler of the LL model (docs/method.md §2; official ``get_spatial_fragments``, FAST-VQA).

Two views are cut from a stack of D versions (D, 3, H, W): the anchor (7 x 7 mini-patches of 32 x 32 at random
offsets in their grid cells) and the positive (a second sampling, flipped), with the same offsets and flips for every
version. A stack whose short side is under 224 is upsampled first, as the official loader does. All randomness of a
sample comes from a ``torch.Generator`` seeded by (seed, epoch, index), so the data do not depend on workers,
processes or resuming. Fragments are (D, 3, S, S), S = grid * patch.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch

__all__ = ["FRAGMENT_GRID", "FRAGMENT_PATCH", "FLIP_P", "sample_seed", "sample_generator", "bilinear_resize",
           "upsample_min_side", "fragment_offsets", "fragment_index", "sample_fragments", "fragment_views"]

FRAGMENT_GRID = 7  # grid x grid cells (paper §4.1 "7x7 grids"; official get_spatial_fragments fragments_h/w = 7)
FRAGMENT_PATCH = 32  # mini-patch side (official fsize_h/w = 32) -> 7 * 32 = 224
FLIP_P = 0.5  # positive view: horizontal and vertical flips, p = 0.5 each (official RandomHorizontal/VerticalFlip)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed mixing (seed, epoch, index) (numpy's SeedSequence), the only source of a sample's randomness."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`sample_seed`."""
    return torch.Generator().manual_seed(sample_seed(seed, epoch, index))


def _linear_axis(n_in: int, n_out: int,
                 dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of 1-D linear interpolation, ``align_corners=False`` (PyTorch's convention)."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = (src - i0.to(torch.float64)).to(dtype)
    return i0, i1, 1 - w1, w1


def bilinear_resize(stack: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (..., H, W) to ``size`` as ``F.interpolate(mode="bilinear", align_corners=False)`` (to
    ~1e-5), element-wise so that the bits do not depend on the thread count (``F.interpolate``'s do)."""
    h0, h1, hw0, hw1 = _linear_axis(stack.shape[-2], size[0], stack.dtype)
    w0, w1, ww0, ww1 = _linear_axis(stack.shape[-1], size[1], stack.dtype)
    x = stack.index_select(-2, h0) * hw0[:, None] + stack.index_select(-2, h1) * hw1[:, None]
    return x.index_select(-1, w0) * ww0 + x.index_select(-1, w1) * ww1


def upsample_min_side(stack: torch.Tensor, min_side: int) -> torch.Tensor:
    """Upsample (bilinear) (D, 3, H, W) so the short side is ``min_side``, aspect kept (official: when under 224).

    Unlike the official code, the size is set (its ``scale_factor`` can land a pixel short) and the fragment grid
    uses the upsampled size (the official one samples only the top-left part of an upsampled image).
    """
    h, w = stack.shape[-2:]
    if min(h, w) >= min_side:
        return stack
    scale = min_side / min(h, w)
    size = (max(min_side, int(round(h * scale))), max(min_side, int(round(w * scale))))
    return bilinear_resize(stack, size)


def fragment_offsets(h: int, w: int, grid: int, patch: int,
                     generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (grid, grid) of the mini-patches, the official (FAST-VQA) rule: cell i starts at
    ``min(res // grid * i, res - patch)``, plus ``randint(res // grid - patch)`` per cell when the cell is larger
    than the patch (rows, then columns, from ``generator``)."""
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
    """Anchor and positive views of the versions (D, 3, H, W), aligned across versions (docs/method.md §2): two
    fragment samplings, the second flipped horizontally and vertically with probability ``flip_p`` each.
    Returns (anchor (D, 3, S, S), positive (D, 3, S, S), info with the offsets and flips)."""
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
