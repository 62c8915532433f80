"""Zero-shot quality (docs/method.md §4; paper §3.3): Q_L from a NIQE-style distance (Eq. 5-6), Q_H from prompts
(Eq. 2), their sum GRepQ_Z (Eq. 7). Functions of built models; :class:`grepq.GRepQ` wires files and devices."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.high_level import HighLevelModel, normalize
from .settings import COV_EPS, K1, PATCH_SIZE, PATCH_STRIDE, SMALL_IMAGE_MODES


@dataclass
class GaussianStats:
    """Mean (1, C) and unbiased covariance (C, C) of a set of features, and how many there were."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def patch_grid(height: int, width: int, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE) -> tuple:
    """(rows, columns) of patches over an image; the remainder at the border is dropped."""
    if height < size or width < size:
        return 0, 0
    return (height - size) // stride + 1, (width - size) // stride + 1


def min_size_shape(height: int, width: int, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE) -> tuple:
    """(H, W) of an image after :func:`ensure_min_size`'s upsampling: unchanged if it gives two patches or more,
    else its short side brought to R + stride = 144 px, aspect ratio kept."""
    nh, nw = patch_grid(height, width, size, stride)
    if nh * nw >= 2:
        return height, width
    need = size + stride
    scale = need / min(height, width)
    return max(need, int(math.ceil(height * scale - 1e-9))), max(need, int(math.ceil(width * scale - 1e-9)))


def ensure_min_size(img: torch.Tensor, mode: str = "upsample", size: int = PATCH_SIZE,
                    stride: int = PATCH_STRIDE) -> torch.Tensor:
    """An image (3, H, W) that gives at least 2 patches (a covariance needs two), unchanged if it already does.

    Otherwise (the official code crashes): ``mode="upsample"`` resizes it bicubic to :func:`min_size_shape`;
    ``mode="error"`` raises a ValueError.
    """
    if mode not in SMALL_IMAGE_MODES:
        raise ValueError(f"small_image must be one of {SMALL_IMAGE_MODES}, got {mode!r}")
    h, w = img.shape[-2:]
    new = min_size_shape(h, w, size, stride)
    if new == (h, w):
        return img
    if mode == "error":
        raise ValueError(f"image of {w}x{h} pixels gives fewer than two {size}x{size} patches (stride {stride})")
    out = F.interpolate(img[None], size=new, mode="bicubic", align_corners=False)[0]
    return out.clamp(0.0, 1.0)


def iter_patch_chunks(imgs: Sequence[torch.Tensor], chunk: int, size: int = PATCH_SIZE,
                      stride: int = PATCH_STRIDE) -> Iterator[torch.Tensor]:
    """The patches of images (3, H_i, W_i), image after image, each row-major, in chunks (n <= chunk, 3, R, R).

    A chunk may span two images; the patches stay views of the images until a chunk is copied (memory: one chunk).
    """
    buf, filled = [], 0
    for img in imgs:
        view = img.unfold(1, size, stride).unfold(2, size, stride)  # (3, nh, nw, R, R), a view
        nw = view.shape[2]
        flat = view.permute(1, 2, 0, 3, 4)                          # (nh, nw, 3, R, R), a view
        n, start = view.shape[1] * nw, 0
        while start < n:
            take = min(chunk - filled, n - start)
            idx = torch.arange(start, start + take, device=img.device)
            buf.append(flat[idx // nw, idx % nw])
            filled, start = filled + take, start + take
            if filled == chunk:
                yield torch.cat(buf) if len(buf) > 1 else buf[0].contiguous()
                buf, filled = [], 0
    if buf:
        yield torch.cat(buf) if len(buf) > 1 else buf[0].contiguous()


@torch.no_grad()
def ll_patch_features(model: nn.Module, imgs: Sequence[torch.Tensor], chunk: int = 64, size: int = PATCH_SIZE,
                      stride: int = PATCH_STRIDE) -> List[torch.Tensor]:
    """LL model outputs of every patch of each image (3, H_i, W_i) in [0, 1] -> a list of (N_i, C).

    The patches of all images go through the model ``chunk`` at a time, across image boundaries; a patch's features
    do not depend on its chunk-mates (eval mode) beyond float32 summation order.
    """
    device = next(model.parameters()).device
    imgs = [img.to(device) for img in imgs]
    counts = []
    for img in imgs:
        nh, nw = patch_grid(img.shape[-2], img.shape[-1], size, stride)
        if nh * nw == 0:
            raise ValueError(f"image of {img.shape[-1]}x{img.shape[-2]} pixels holds no {size}x{size} patch")
        counts.append(nh * nw)
    feats = [model(p) for p in iter_patch_chunks(imgs, chunk, size, stride)]
    return list(torch.cat(feats).split(counts))


def fit_gaussian(features: torch.Tensor) -> GaussianStats:
    """Mean and unbiased (N − 1) covariance of (N, C) features, as the official NIQE module computes them."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"need (N, C) features with N >= 2, got {tuple(features.shape)}")
    mu = features.mean(dim=0, keepdim=True)
    centred = features - mu
    cov = centred.t() @ centred / (features.shape[0] - 1)
    return GaussianStats(mu, cov, features.shape[0])


def niqe_distance(pristine: GaussianStats, test: GaussianStats, eps: float = COV_EPS) -> torch.Tensor:
    """Eq. 5: d = sqrt((μ_p − μ_d)ᵀ ((Σ_p + Σ_d)/2 + eps·I)⁻¹ (μ_p − μ_d)), a scalar tensor."""
    diff = pristine.mean - test.mean                                                   # (1, C)
    pooled = (pristine.cov + test.cov) / 2 + eps * torch.eye(diff.shape[1], dtype=diff.dtype, device=diff.device)
    fit = diff @ torch.linalg.inv(pooled) @ diff.t()
    return fit.clamp_min(0).sqrt().squeeze()


def quality_from_distance(d: torch.Tensor, k1: float = K1) -> torch.Tensor:
    """Eq. 6: Q_L = 1 / (1 + exp(k1·d))."""
    return torch.sigmoid(-k1 * d)


def total_quality(q_low, q_high):
    """Eq. 7: GRepQ_Z = Q_H + Q_L (floats or arrays of one shape); None when either is None."""
    if q_low is None or q_high is None:
        return None
    return q_high + q_low


@torch.no_grad()
def hl_embeddings(model: HighLevelModel, imgs: torch.Tensor) -> torch.Tensor:
    """HL embeddings (B, E) of whole images (B, 3, H, W) in [0, 1]: CLIP normalisation, no resize or crop.

    Each image's embedding is independent of its batch-mates (eval mode). With ``pos_embedding="keep"`` the images
    are first resized (short side 224, bicubic, antialiased) and centre-cropped to 224x224, as CLIP's preprocessing.
    """
    if imgs.dim() != 4 or imgs.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(imgs.shape)}")
    x = imgs.to(model.text_features.device)
    if model.pos_embedding == "keep":
        side = int(round((model.visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5)) * 32
        h, w = x.shape[-2:]
        s = side / min(h, w)
        x = F.interpolate(x, size=(max(side, round(h * s)), max(side, round(w * s))), mode="bicubic",
                          align_corners=False, antialias=True).clamp(0, 1)
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[:, :, top:top + side, left:left + side]
    return model.embed(normalize(x))
