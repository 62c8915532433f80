"""Pristine patches for Q_L (docs/method.md §4): selection as the official code does it, and its HDF5 format.

From each pristine image: non-overlapping R x R patches (border remainder dropped); keep those whose sharpness
exceeds ``sharpness`` x the image's sharpest, then of those the ones whose colourfulness exceeds ``colorfulness`` x
the most colourful. HDF5 format (official ``pristine_patches_096_0.75_0.80.hdf5``): dataset ``data``, float32,
(N, 3, R, R) in [0, 1].

Enough patches: Σ_p is a 128 x 128 covariance of the LL features, singular below 129 patches, and a sample
covariance of C dimensions from N samples spreads its eigenvalues by about (1 ± sqrt(C/N))² (Marchenko–Pastur):
at N = 10·C = 1,280 the smallest are still about half their true size. Below :data:`MIN_PRISTINE_PATCHES` grepq warns.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.io import ImageReadError, list_images, read_image
from ..utils import atomic_write
from .settings import COLORFULNESS_THRESHOLD, PATCH_SIZE, SHARPNESS_THRESHOLD

log = logging.getLogger("grepq")

#: Fewer pristine patches than this (10 x the 128 LL feature dimensions) get a warning (module doc).
MIN_PRISTINE_PATCHES = 10 * 128
#: Sharpness window: 7x7 Gaussian, σ = 7/6 (official ``select_patches``).
SHARPNESS_WINDOW = 7
SHARPNESS_SIGMA = 7.0 / 6.0
#: ITU-R 601 luma weights of torchvision's ``Grayscale`` (used by the official sharpness).
GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def sharpness(patches: torch.Tensor) -> torch.Tensor:
    """Sum of the local standard deviation of each patch's grey image (zero padding). (N, 3, R, R) -> (N,)."""
    w = torch.tensor(GREY_WEIGHTS, dtype=patches.dtype, device=patches.device).view(1, 3, 1, 1)
    grey = (patches * w).sum(1, keepdim=True)
    g = (torch.arange(SHARPNESS_WINDOW, dtype=torch.float32) - (SHARPNESS_WINDOW - 1) / 2.0) ** 2
    k = torch.exp(-(g[None, :] + g[:, None]) / (2 * SHARPNESS_SIGMA ** 2))
    k = (k / k.sum()).to(dtype=patches.dtype, device=patches.device).view(1, 1, SHARPNESS_WINDOW, SHARPNESS_WINDOW)
    mu = F.conv2d(grey, k, padding=SHARPNESS_WINDOW // 2)
    ex2 = F.conv2d(grey ** 2, k, padding=SHARPNESS_WINDOW // 2)
    return (ex2 - mu ** 2).abs().sqrt().sum(dim=(1, 2, 3))


def colorfulness(patches: torch.Tensor) -> torch.Tensor:
    """Hasler–Süsstrunk colourfulness without the 0.3 factor, std unbiased: rg = |R − G|, yb = |(R + G)/2 − B|,
    sqrt(σ_rg² + σ_yb²) + sqrt(μ_rg² + μ_yb²). (N, 3, R, R) -> (N,)."""
    r, g, b = patches[:, 0], patches[:, 1], patches[:, 2]
    rg = (r - g).abs().flatten(1)
    yb = (0.5 * (r + g) - b).abs().flatten(1)
    std_root = torch.sqrt(rg.std(dim=1) ** 2 + yb.std(dim=1) ** 2)
    mean_root = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std_root + mean_root


def select_patches(img: torch.Tensor, patch_size: int = PATCH_SIZE, sharpness_threshold: float = SHARPNESS_THRESHOLD,
                   colorfulness_threshold: float = COLORFULNESS_THRESHOLD) -> Tuple[torch.Tensor, str]:
    """The selected pristine patches of one image (3, H, W) in [0, 1] -> ((K, 3, R, R) row-major, why K = 0 or "").

    (The official code shuffles each image's patches first; the statistics of Eq. 5-6 do not depend on order.)
    """
    h, w = img.shape[-2:]
    if min(h, w) < patch_size:
        return img.new_zeros(0, 3, patch_size, patch_size), f"{w}x{h}: smaller than one {patch_size}x{patch_size} patch"
    patches = img.unfold(1, patch_size, patch_size).unfold(2, patch_size, patch_size)   # (3, nh, nw, R, R)
    patches = patches.permute(1, 2, 0, 3, 4).reshape(-1, 3, patch_size, patch_size)
    s = sharpness(patches)
    patches = patches[s > sharpness_threshold * s.max()]
    if patches.shape[0] == 0:
        return patches, "no patch passes the sharpness threshold (zero sharpness everywhere)"
    c = colorfulness(patches)
    patches = patches[c > colorfulness_threshold * c.max()]
    return patches, "" if patches.shape[0] else "no patch passes the colourfulness threshold (a grey image)"


def select_pristine_patches(images: Union[str, Path, Sequence[Union[str, Path]]], patch_size: int = PATCH_SIZE,
                            sharpness_threshold: float = SHARPNESS_THRESHOLD,
                            colorfulness_threshold: float = COLORFULNESS_THRESHOLD,
                            progress: bool = True,
                            exif_orientation: str = "apply") -> Tuple[torch.Tensor, List[Tuple[str, str]]]:
    """Pristine patches (N, 3, R, R) float32 from a folder (or list) of images, and ``skipped``: (path, reason) of
    images unreadable or giving no patch. Raises if no patch at all was selected; warns below
    :data:`MIN_PRISTINE_PATCHES`."""
    if isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"pristine image folder not found: {folder}")
        paths = list_images(folder)
        if not paths:
            raise ValueError(f"{folder}: holds no image files to select pristine patches from")
    else:
        paths = [Path(p) for p in images]
    chosen: List[torch.Tensor] = []
    skipped: List[Tuple[str, str]] = []
    for p in tqdm(paths, desc="pristine patches", disable=not progress):
        try:
            img = read_image(p, exif_orientation)
        except ImageReadError as exc:
            skipped.append((str(p), exc.reason))
            continue
        sel, why = select_patches(img, patch_size, sharpness_threshold, colorfulness_threshold)
        if why:
            skipped.append((str(p), why))
        else:
            chosen.append(sel)
    if not chosen:
        raise ValueError(f"no pristine patch selected from {len(paths)} images (skipped: {skipped[:3]})")
    patches = torch.cat(chosen)
    n = patches.shape[0]
    if n < MIN_PRISTINE_PATCHES:
        why = "singular (below 129; only the 0.001·I stabiliser keeps Q_L defined)" if n < 129 else "poorly estimated"
        log.warning("only %d pristine patches from %d images: their 128 x 128 covariance (Σ_p, Eq. 5) is %s; "
                    "grepq asks for %d (10 x 128, docs/method.md §4): add pristine images", n, len(paths), why,
                    MIN_PRISTINE_PATCHES)
    return patches, skipped


def write_pristine_hdf5(patches: torch.Tensor, path: Union[str, Path]) -> Path:
    """Write (N, 3, R, R) patches in the official format (dataset ``data``, float32). Atomic (temp file + rename)."""
    path = Path(path)
    if patches.dim() != 4 or patches.shape[1] != 3 or patches.shape[2] != patches.shape[3]:
        raise ValueError(f"expected patches of shape (N, 3, R, R), got {tuple(patches.shape)}")
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("data", data=patches.detach().cpu().numpy().astype(np.float32))
    return path


def read_pristine_hdf5(path: Union[str, Path]) -> torch.Tensor:
    """Pristine patches (N, 3, R, R) float32 from the official HDF5 format, checked (shape, N >= 2, in [0, 1])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pristine patch file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise ValueError(f"{path}: no dataset 'data' (found {list(f.keys())}); expected the official "
                                 f"pristine-patch format")
            arr = np.asarray(f["data"][:], dtype=np.float32)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    if arr.ndim != 4 or arr.shape[1] != 3 or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"{path}: dataset 'data' must be (N, 3, R, R), got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{path}: needs at least 2 patches for a covariance, got {arr.shape[0]}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{path}: patch values must be finite and in [0, 1], got [{arr.min()}, {arr.max()}]")
    return torch.from_numpy(arr)


def load_pristine(source: Union[str, Path], save_to: Union[str, Path, None] = None, progress: bool = True,
                  patch_size: int = PATCH_SIZE, exif_orientation: str = "apply") -> torch.Tensor:
    """Pristine patches from an HDF5 file or a folder of pristine images (selected, then saved to ``save_to``)."""
    source = Path(source)
    if not source.is_dir():
        return read_pristine_hdf5(source)
    patches, _ = select_pristine_patches(source, patch_size, progress=progress, exif_orientation=exif_orientation)
    if save_to is not None:
        write_pristine_hdf5(patches, save_to)
    return patches
