"""Reading any image file into a (3, H, W) float32 tensor in [0, 1], as the official ``ToTensor()(Image.open(p))``
reads an 8-bit RGB file (``uint8 / 255``). Other PIL modes:

- L, 1: grey repeated to R=G=B (the official ``torch.cat([x] * 3)``);
- LA, RGBA, PA: alpha dropped, colours as stored; P: palette applied (the official code reads the indices as grey);
- CMYK, YCbCr, ...: converted to RGB by PIL; I;16*, I: ``value / 65535`` grey; F: float grey clipped to [0, 1].

EXIF orientation: applied by default (a phone photo is scored as it displays); ``exif_orientation="ignore"`` keeps
the stored pixels, as the official code does. Files without the tag read the same either way. A file PIL cannot
decode raises :class:`ImageReadError`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

PathLike = Union[str, os.PathLike]

#: File endings treated as images when a folder is searched.
IMAGE_EXTENSIONS = (
    ".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".gif", ".jp2", ".j2k",
)

#: CLIP's input normalisation per RGB channel of images in [0, 1] (OpenAI CLIP; the official GRepQ code too).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageReadError(OSError):
    """An image file could not be read. ``path`` names the file, ``reason`` says why."""

    def __init__(self, path: PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) array of a PIL image of any mode: uint8 for 8-bit modes, float32 in [0, 1] otherwise."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("L", "1"):
        grey = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(img, dtype=np.float64)
        if mode == "I" and grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ValueError(f"32-bit integer image with values outside 0..65535 (min {grey.min()}, max {grey.max()})")
        return np.repeat((grey / 65535.0).astype(np.float32)[:, :, None], 3, axis=2)
    if mode == "F":
        grey = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    # LA, RGBA, PA, P, CMYK, YCbCr, LAB, HSV, RGBX, ...
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 or float32 array -> float32 tensor (3, H, W); uint8 / 255 in place (one float32 copy)."""
    out = np.empty((arr.shape[2], arr.shape[0], arr.shape[1]), dtype=np.float32)
    np.copyto(out, arr.transpose(2, 0, 1))
    if arr.dtype == np.uint8:
        out /= np.float32(255.0)
    return torch.from_numpy(out)


def _oriented(img: Image.Image, exif_orientation: str) -> Image.Image:
    """``img`` turned as its EXIF orientation tag says (``"apply"``), or as stored (``"ignore"``)."""
    if exif_orientation not in ("apply", "ignore"):
        raise ValueError(f"exif_orientation must be 'apply' or 'ignore', got {exif_orientation!r}")
    if exif_orientation == "apply" and img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        return ImageOps.exif_transpose(img)
    return img


def as_image_tensor(x, name: str, exif_orientation: str = "apply") -> torch.Tensor:
    """An in-memory image as a float32 tensor (3, H, W) in [0, 1], the same numbers as its file would give.

    ``x``: a PIL image, a numpy array (H, W, 3) or (H, W) grey, or a tensor (3, H, W); uint8 is divided by 255,
    float must be finite and in [0, 1]. Anything else: a ValueError naming ``name``.
    """
    if isinstance(x, Image.Image):
        return _array_to_tensor(_pil_to_array(_oriented(x, exif_orientation)))
    if isinstance(x, torch.Tensor):
        if x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"{name}: expected a tensor (3, H, W) or a batch (N, 3, H, W), got {tuple(x.shape)}")
        x = x.detach().cpu()
        arr = (x.float() if x.is_floating_point() else x).permute(1, 2, 0).numpy()
    else:
        arr = np.repeat(x[:, :, None], 3, axis=2) if x.ndim == 2 else x
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"{name}: expected an array (H, W, 3) or (H, W), got {x.shape}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 values, or float values in [0, 1], got {arr.dtype}")
    if arr.dtype != np.uint8 and not np.isfinite(arr).all():
        raise ValueError(f"{name}: holds NaN or infinite values")
    if arr.dtype != np.uint8 and arr.size and (arr.min() < 0 or arr.max() > 1):
        hint = " (divide by 255?)" if 1 < arr.max() <= 255 else ""
        raise ValueError(f"{name}: float values must be in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]{hint}")
    return _array_to_tensor(arr)


def read_image(path: PathLike, exif_orientation: str = "apply") -> torch.Tensor:
    """An image file as a float32 tensor (3, H, W) in [0, 1]; :class:`ImageReadError` if missing or undecodable."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _pil_to_array(_oriented(img, exif_orientation))
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from None
    # the decoded PIL image is released before the float32 tensor is made (peak memory of large photographs)
    return _array_to_tensor(arr)


def list_images(folder: PathLike, recursive: bool = False) -> List[Path]:
    """Image files (by :data:`IMAGE_EXTENSIONS`) in ``folder``, sorted by name; other files left out silently."""
    return expand_inputs([folder], recursive)[0]


def expand_inputs(paths: Sequence[PathLike], recursive: bool = False) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """``(images, skipped)`` from image files and folders: images in the order given (a folder's sorted by name);
    ``skipped``: (path, reason) of folder entries that are not images, empty folders and missing paths."""
    images: List[Path] = []
    skipped: List[Tuple[str, str]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            entries = sorted(e for e in p.glob(pattern) if e.is_file())
            found = [e for e in entries if e.suffix.lower() in IMAGE_EXTENSIONS]
            for e in entries:
                if e.suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append((str(e), "not an image file (by its extension)"))
            if not found:
                skipped.append((str(p), "folder holds no image files"))
            images.extend(found)
        elif p.is_file():
            images.append(p)
        else:
            skipped.append((str(p), "no such file or folder"))
    return images, skipped
