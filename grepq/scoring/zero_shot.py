"""Zero-shot quality (method.md §4): Q_L from a NIQE-style distance (Eq. 5-6), Q_H from prompts (Eq. 2),
their sum (Eq. 7).

All functions take already-built models; :class:`grepq.GRepQ` wires weights, files and devices around them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.high_level import HighLevelModel, normalize
from .settings import COV_EPS, K1, PATCH_SIZE, PATCH_STRIDE, SMALL_IMAGE_MODES

__all__ = [
    "PATCH_SIZE", "PATCH_STRIDE", "K1", "COV_EPS", "SMALL_IMAGE_MODES",
    "GaussianStats", "patch_grid", "iter_patch_chunks", "ll_patch_features", "fit_gaussian",
    "niqe_distance", "quality_from_distance", "ensure_min_size", "hl_embedding", "hl_embeddings",
    "ll_patch_features_many",
]

# PATCH_SIZE (R = 96), PATCH_STRIDE (48), K1 (0.01), COV_EPS (0.001), SMALL_IMAGE_MODES: grepq.scoring.settings


@dataclass
class GaussianStats:
    """Mean (1, C) and unbiased covariance (C, C) of a set of features, and how many there were."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def patch_grid(height: int, width: int, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE) -> tuple:
    """Number of patch rows and columns over an image; the remainder at the border is dropped."""
    if height < size or width < size:
        return 0, 0
    return (height - size) // stride + 1, (width - size) // stride + 1


def ensure_min_size(img: torch.Tensor, mode: str = "upsample", size: int = PATCH_SIZE,
                    stride: int = PATCH_STRIDE) -> torch.Tensor:
    """Make sure an image (3, H, W) gives at least 2 patches (a covariance needs two samples).

    Images that already give two or more patches are returned unchanged (so every image the official code can score
    gets the official score). For the others (the official code crashes on them): ``mode="upsample"`` (grepq's
    documented handling) resizes the image, keeping its aspect ratio, with bicubic interpolation so its short side is
    R + stride = 144 px (at least 2x2 patches); ``mode="error"`` raises a ValueError.
    """
    if mode not in SMALL_IMAGE_MODES:
        raise ValueError(f"small_image must be one of {SMALL_IMAGE_MODES}, got {mode!r}")
    h, w = img.shape[-2:]
    nh, nw = patch_grid(h, w, size, stride)
    if nh * nw >= 2:
        return img
    need = size + stride
    if mode == "error":
        raise ValueError(f"image of {w}x{h} pixels gives fewer than two {size}x{size} patches (stride {stride})")
    scale = need / min(h, w)
    new = (max(need, int(math.ceil(h * scale - 1e-9))), max(need, int(math.ceil(w * scale - 1e-9))))
    out = F.interpolate(img[None], size=new, mode="bicubic", align_corners=False)[0]
    return out.clamp(0.0, 1.0)


def iter_patch_chunks(img: torch.Tensor, chunk: int, size: int = PATCH_SIZE,
                      stride: int = PATCH_STRIDE) -> Iterator[torch.Tensor]:
    """Patches of (3, H, W) at the given stride, row-major, in chunks of at most ``chunk`` -> (n, 3, R, R) each.

    The patches are views of the image until a chunk is copied, so memory stays at one chunk whatever the image size.
    """
    return _patch_chunks([img], chunk, size, stride)


def _patch_chunks(imgs: Sequence[torch.Tensor], chunk: int, size: int, stride: int) -> Iterator[torch.Tensor]:
    """The patches of several images (3, H_i, W_i), image after image, each row-major, in chunks of ``chunk``
    (a chunk may span two images) -> (n, 3, R, R) each; one chunk is copied at a time."""
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
def ll_patch_features(model: nn.Module, img: torch.Tensor, chunk: int = 64, size: int = PATCH_SIZE,
                      stride: int = PATCH_STRIDE) -> torch.Tensor:
    """LL model output for every patch of an image: (3, H, W) in [0, 1] -> (N, C), computed ``chunk`` patches at a
    time."""
    return ll_patch_features_many(model, [img], chunk, size, stride)[0]


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


@torch.no_grad()
def hl_embedding(model: HighLevelModel, img: torch.Tensor) -> torch.Tensor:
    """HL embedding (E,) of a whole image (3, H, W) in [0, 1]: :func:`hl_embeddings` of a batch of one."""
    return hl_embeddings(model, img[None])[0]


@torch.no_grad()
def hl_embeddings(model: HighLevelModel, imgs: torch.Tensor) -> torch.Tensor:
    """HL embeddings (B, E) of whole images (B, 3, H, W) in [0, 1]: CLIP normalisation, no resize or crop
    (method.md §4).

    Each image's embedding is computed independently of the others in the batch (CLIP's ResNet in eval mode has no
    cross-sample operation); batching only changes the float32 summation order inside the convolutions.
    With ``pos_embedding="keep"`` the images are first resized (short side 224, bicubic, antialiased) and
    centre-cropped to 224x224, CLIP's own preprocessing, since the kept embedding fixes the input size.
    """
    if imgs.dim() != 4 or imgs.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(imgs.shape)}")
    device = model.text_features.device
    x = imgs.to(device)
    if model.pos_embedding == "keep":
        side = int(round((model.visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5)) * 32
        h, w = x.shape[-2:]
        s = side / min(h, w)
        x = F.interpolate(x, size=(max(side, round(h * s)), max(side, round(w * s))), mode="bicubic",
                          align_corners=False, antialias=True).clamp(0, 1)
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[:, :, top:top + side, left:left + side]
    return model.embed(normalize(x))


@torch.no_grad()
def ll_patch_features_many(model: nn.Module, imgs: Sequence[torch.Tensor], chunk: int = 64, size: int = PATCH_SIZE,
                           stride: int = PATCH_STRIDE) -> List[torch.Tensor]:
    """:func:`ll_patch_features` of several images (each (3, H_i, W_i)) -> a list of (N_i, C).

    The patches of all images are fed through the model ``chunk`` at a time, a chunk running across image
    boundaries, so small images fill the batches; memory stays at one chunk of patches. Each patch's features do
    not depend on its chunk-mates (the LL model is in eval mode), up to float32 summation order.
    """
    device = next(model.parameters()).device
    imgs = [img.to(device) for img in imgs]
    counts = []
    for img in imgs:
        nh, nw = patch_grid(img.shape[-2], img.shape[-1], size, stride)
        if nh * nw == 0:
            raise ValueError(f"image of {img.shape[-1]}x{img.shape[-2]} pixels holds no {size}x{size} patch")
        counts.append(nh * nw)
    feats = [model(p) for p in _patch_chunks(imgs, chunk, size, stride)]
    return list(torch.cat(feats).split(counts))
