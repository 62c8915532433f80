"""Where is an image degraded: the per-patch distance map behind Q_L (issue 20, part 2).

Q_L (Eq. 5-6) compares the MVG of an image's patch features with the pristine one:
d = sqrt((μ_p − μ_d)ᵀ A⁻¹ (μ_p − μ_d)), A = (Σ_p + Σ_d)/2 + eps·I, over the image's R x R patches at stride R/2
(:func:`grepq.scoring.zero_shot.patch_grid`, row-major). The map gives every patch i its own distance, as IL-NIQE
does per patch (Zhang, Zhang & Bovik, "A Feature-Enriched Completely Blind Image Quality Evaluator", IEEE TIP 24(8),
2015: each patch's feature vector against the pristine MVG, with a covariance pooled from the pristine one and the
test image's): d_i = sqrt((μ_p − f_i)ᵀ A⁻¹ (μ_p − f_i)) with the SAME A as the image's Q_L (Σ_d from
:func:`fit_gaussian` of the same features, A⁻¹ computed once).

Relation to Q_L's d (exact). Write μ_p − f_i = (μ_p − μ_d) − (f_i − μ_d) and M = A⁻¹:

    d_i² = d² − 2 (μ_p − μ_d)ᵀ M (f_i − μ_d) + (f_i − μ_d)ᵀ M (f_i − μ_d).

Averaged over the N patches the middle term vanishes (Σ_i (f_i − μ_d) = 0) and the last one is
(1/N) tr(M Σ_i (f_i − μ_d)(f_i − μ_d)ᵀ) = ((N − 1)/N) tr(M Σ_d) with the unbiased Σ_d, so

    mean_i d_i² = d² + ((N − 1)/N) · tr(A⁻¹ Σ_d).

The map is therefore Q_L's distance plus each patch's own spread around the image mean (measured in the same
A⁻¹ metric): a uniformly degraded image has a uniformly high map, and a patch far from both the pristine mean and
its image's mean stands out. :class:`DistanceMap` carries d and the trace term so a caller can check the identity.

Drawing the map over the image (:func:`map_pixel_extent`): cell (r, c) is patch r, c, which covers rows
[r·stride, r·stride + R). With 50 % overlap each pixel is covered by up to 2 x 2 patches; it is drawn with the patch
whose centre is nearest (ties to the lower index), i.e. nearest-neighbour upsampling about the patch centres: an
inner cell covers its patch's central stride x stride block, a border cell extends to its patch's outer edge. The
remainder at the right and bottom border that :func:`patch_grid` drops (fewer than ``stride`` pixels) is in no
patch: it is left uncoloured (NaN in :func:`upsample_map`, the bare photo in :func:`save_map_png`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch

from .settings import COV_EPS, PATCH_SIZE, PATCH_STRIDE
from .zero_shot import GaussianStats, ensure_min_size, fit_gaussian, patch_grid, quality_from_distance

__all__ = ["DistanceMap", "distance_map", "image_distance_map", "map_pixel_extent", "upsample_map", "MapPNG",
           "save_map_png", "COLORBAR_LABEL"]

#: The colour bar's label in :func:`save_map_png`.
COLORBAR_LABEL = "per-patch distance d_i\n(higher = farther from pristine)"


@dataclass(frozen=True)
class DistanceMap:
    """Per-patch distances of one image and Q_L's distance, from one A.

    Attributes:
        values: (nh, nw) d_i, cell (r, c) = patch r, c of the row-major patch grid.
        distance: Q_L's d (Eq. 5), a scalar tensor; ``quality_from_distance(distance, k1)`` is Q_L.
        trace_term: ((N − 1)/N) · tr(A⁻¹ Σ_d), so that mean(values²) = distance² + trace_term.
    """

    values: torch.Tensor
    distance: torch.Tensor
    trace_term: torch.Tensor

    @property
    def grid(self) -> Tuple[int, int]:
        return int(self.values.shape[0]), int(self.values.shape[1])

    def q_low(self, k1: Optional[float] = None) -> float:
        """Q_L (Eq. 6) of the image: 1 / (1 + exp(k1·d))."""
        return float(quality_from_distance(self.distance) if k1 is None else quality_from_distance(self.distance, k1))


def distance_map(patch_features: torch.Tensor, grid: Tuple[int, int], pristine: GaussianStats,
                 eps: float = COV_EPS) -> DistanceMap:
    """d_i of every patch (module doc) from the image's LL patch features.

    Args:
        patch_features: (N, C) features of the image's patches in :func:`patch_grid` order (row-major), e.g. from
            :func:`grepq.scoring.zero_shot.ll_patch_features` or ``GRepQ.ll_patch_features``; N >= 2.
        grid: (nh, nw) with nh·nw = N.
        pristine: μ_p (1, C) and Σ_p (C, C) (``GRepQ.pristine_stats``).
        eps: the covariance stabiliser of Eq. 5 (``GRepQ.cov_eps``).

    Returns:
        :class:`DistanceMap` in the features' dtype (float32 features give Q_L's own float32 numbers; the same
        operations as :func:`niqe_distance`, so ``distance`` is the d the scorer computes).
    """
    nh, nw = (int(g) for g in grid)
    if patch_features.dim() != 2 or patch_features.shape[0] != nh * nw:
        raise ValueError(f"expected (N, C) patch features with N = {nh} x {nw} = {nh * nw} (the grid), "
                         f"got {tuple(patch_features.shape)}")
    test = fit_gaussian(patch_features)
    mu_p = pristine.mean.to(patch_features)
    eye = torch.eye(patch_features.shape[1], dtype=patch_features.dtype, device=patch_features.device)
    a_inv = torch.linalg.inv((pristine.cov.to(patch_features) + test.cov) / 2 + eps * eye)
    diff = mu_p - test.mean                                                            # (1, C), as niqe_distance
    d = (diff @ a_inv @ diff.t()).clamp_min(0).sqrt().squeeze()
    per = mu_p - patch_features                                                        # (N, C)
    d_i = ((per @ a_inv) * per).sum(dim=1).clamp_min(0).sqrt()
    n = patch_features.shape[0]
    trace = (a_inv * test.cov.t()).sum() * ((n - 1) / n)                               # tr(A⁻¹ Σ_d) (N−1)/N
    return DistanceMap(d_i.reshape(nh, nw), d, trace)


@torch.no_grad()
def image_distance_map(scorer, img: torch.Tensor) -> Tuple[torch.Tensor, DistanceMap]:
    """The map of one image (3, H, W) in [0, 1] with a :class:`grepq.GRepQ` scorer's LL model, pristine statistics
    and settings: the same features, A and d as ``scorer.q_low(img)``.

    Returns:
        (image, map): the image the patches were cut from (upsampled when the original gives fewer than two patches,
        see :func:`ensure_min_size`; draw the map over this one) and its :class:`DistanceMap` on the CPU.
    """
    s = scorer.settings
    size, stride = s.patch_size, s.patch_stride
    img = ensure_min_size(img, s.small_image, size, stride)
    feats = scorer.ll_patch_features(img)
    dmap = distance_map(feats, patch_grid(img.shape[-2], img.shape[-1], size, stride), scorer.pristine_stats,
                        s.cov_eps)
    return img, DistanceMap(dmap.values.cpu(), dmap.distance.cpu(), dmap.trace_term.cpu())


def _cell_extents(n: int, size: int, stride: int) -> np.ndarray:
    starts = np.arange(n) * stride + max(0, size - stride) // 2
    starts[0] = 0
    ends = np.minimum(np.append(starts[1:], (n - 1) * stride + size), np.arange(n) * stride + size)
    return np.stack([starts, ends], axis=1)


def map_pixel_extent(grid: Tuple[int, int], size: int = PATCH_SIZE,
                     stride: int = PATCH_STRIDE) -> Tuple[np.ndarray, np.ndarray]:
    """The pixels each cell is drawn over (module doc: nearest patch centre; the dropped border in none).

    Returns:
        (rows, cols): (nh, 2) and (nw, 2) int arrays of [start, end) pixel ranges; cell (r, c) covers
        ``image[rows[r, 0]:rows[r, 1], cols[c, 0]:cols[c, 1]]``. With R = 96, stride 48: [0, 72), [72, 120), ...,
        [48(n−1) + 24, 48(n−1) + 96). The ranges never overlap; they tile [0, 48(n−1) + 96) when stride <= R.
    """
    nh, nw = (int(g) for g in grid)
    if nh < 1 or nw < 1 or size < 1 or stride < 1:
        raise ValueError(f"expected a grid of at least 1 x 1 and positive size/stride, got {grid}, {size}, {stride}")
    return _cell_extents(nh, size, stride), _cell_extents(nw, size, stride)


def upsample_map(values: torch.Tensor, image_size: Tuple[int, int], size: int = PATCH_SIZE,
                 stride: int = PATCH_STRIDE) -> np.ndarray:
    """(nh, nw) map -> (H, W) float64 array by :func:`map_pixel_extent`; NaN where no patch reaches."""
    vals = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    h, w = (int(s) for s in image_size)
    if vals.ndim != 2 or tuple(vals.shape) != patch_grid(h, w, size, stride):
        raise ValueError(f"a {w}x{h} image has a {patch_grid(h, w, size, stride)} patch grid "
                         f"(R={size}, stride={stride}), got a map of shape {tuple(vals.shape)}")
    rows, cols = map_pixel_extent(vals.shape, size, stride)
    r_of = np.full(h, -1)
    c_of = np.full(w, -1)
    for k, (a, b) in enumerate(rows):
        r_of[a:b] = k
    for k, (a, b) in enumerate(cols):
        c_of[a:b] = k
    out = vals[np.clip(r_of, 0, None)[:, None], np.clip(c_of, 0, None)[None, :]]
    out[(r_of < 0)[:, None] | (c_of < 0)[None, :]] = np.nan
    return out


class MapPNG(NamedTuple):
    """What :func:`save_map_png` wrote: the file and where the photo lies in it (pixels: left, top, width, height)."""

    path: str
    image_box: Tuple[int, int, int, int]


def save_map_png(image: torch.Tensor, dmap, path, title: Optional[str] = None, *, size: int = PATCH_SIZE,
                 stride: int = PATCH_STRIDE, alpha: float = 0.5, cmap: str = "inferno",
                 vmin: Optional[float] = None, vmax: Optional[float] = None, max_side: int = 1024) -> MapPNG:
    """A PNG of the photo with the map over it, semi-transparent, and a colour bar (:data:`COLORBAR_LABEL`).

    matplotlib is imported inside this function only (Agg canvas, no pyplot state, as :mod:`grepq.eval.plots`), so
    the scoring layer does not load it.

    Args:
        image: (3, H, W) in [0, 1], the image the patches were cut from (:func:`image_distance_map`'s first output).
        dmap: (nh, nw) tensor or array of d_i, or a :class:`DistanceMap`.
        path: the PNG to write (parent folders are made). title: an optional line above the photo.
        size, stride: the patch geometry of the map (R = 96, stride 48).
        alpha: the map's opacity. cmap: a matplotlib colour map name.
        vmin, vmax: the colour scale (default: the map's min and max; give both to compare images).
        max_side: the photo is drawn at its own pixel size, scaled down to at most ``max_side`` on its long side
            (and up to at least 200 px high, for the colour bar's label); its aspect is kept exactly up to rounding.

    Returns:
        :class:`MapPNG` (path, image_box: the photo's pixel box in the PNG).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = dmap.values if isinstance(dmap, DistanceMap) else dmap
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image (3, H, W), got {tuple(image.shape)}")
    h, w = int(image.shape[1]), int(image.shape[2])
    up = upsample_map(values, (h, w), size, stride)
    scale = min(1.0, max_side / max(h, w))
    scale = max(scale, 200.0 / h) if h * scale < 200 else scale
    iw, ih = max(1, round(w * scale)), max(1, round(h * scale))
    pad, title_h, bar_w = 10, (30 if title else 0), 110
    fw, fh = iw + 2 * pad + bar_w, ih + 2 * pad + title_h
    dpi = 100
    fig = Figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((pad / fw, pad / fh, iw / fw, ih / fh))
    ax.set_axis_off()
    photo = image.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    ax.imshow(photo, interpolation="antialiased", extent=(0, w, h, 0))
    finite = up[np.isfinite(up)]
    lo = float(finite.min()) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    im = ax.imshow(np.ma.masked_invalid(up), cmap=cmap, alpha=alpha, vmin=lo, vmax=hi if hi > lo else lo + 1e-12,
                   interpolation="nearest", extent=(0, w, h, 0))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    cax = fig.add_axes(((pad + iw + 12) / fw, pad / fh, 16 / fw, ih / fh))
    bar = fig.colorbar(im, cax=cax)
    bar.solids.set_alpha(1.0)
    bar.set_label(COLORBAR_LABEL, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if title:
        fig.text(pad / fw, 1 - 8 / fh, title, ha="left", va="top", fontsize=9)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return MapPNG(path, (pad, pad + title_h, iw, ih))
