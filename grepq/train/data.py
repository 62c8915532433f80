"""Training data of both models: image folders, the aligned fragment sampler (LL) and REF centre crops (HL).

Layout read (``data.root``): one folder per image, ``<root>/<name>/``, holding the image files of its versions.

* grepq's prepared layout (``grepq.data.prepare``): ``<name>_REF.png``, the distorted ``<name>_<type>_<level>.png``,
  ``fsim.npy`` (D x D FSIM between every pair of image files, in the order of ``versions.json``, else sorted
  file names) and ``versions.json`` (``{"files": [{"file": ...}, ...], ...}``).
* the official layout: a folder of versions and nothing else. FSIM is then computed in the loader with one
  ``piq.fsim(data_range=1.0)`` per pair in float64, as the official loader does (slow: ``similarity: compute``).

Hidden folders (``.partial`` of an interrupted prepare) and plain files at the root are skipped.

Randomness. Every random choice of a sample (fragment offsets, flips) comes from a local ``torch.Generator``
seeded from ``(seed, epoch, index)`` (:func:`sample_seed`); the samplers yield ``(epoch, index)`` pairs. The data
therefore do not depend on the number of DataLoader workers, on the number of processes, or on resuming.

Shapes: a version stack is (D, 3, H, W) float32 in [0, 1]; fragments are (D, 3, S, S), S = grid * patch.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from ..data.similarity import MEASURES, similarity_matrix
from ..io import IMAGE_EXTENSIONS, ImageReadError, read_image
from ..models.high_level import CLIP_MEAN, CLIP_STD

__all__ = [
    "DataError", "FRAGMENT_GRID", "FRAGMENT_PATCH", "FLIP_P", "REF_TAG", "FSIM_FILE", "VERSIONS_FILE",
    "sample_seed", "sample_generator", "list_image_folders", "folder_versions", "data_fingerprint",
    "upsample_min_side", "bilinear_resize", "fragment_offsets", "fragment_index", "sample_fragments", "fragment_views",
    "fsim_matrix_piq", "read_similarity", "LLTrainingDataset", "HLTrainingDataset", "EpochSampler",
    "hl_preprocess",
]

FRAGMENT_GRID = 7  # grid x grid cells (paper §4 "7x7 grids"; official get_spatial_fragments fragments_h/w = 7)
FRAGMENT_PATCH = 32  # mini-patch side (official fsize_h/w = 32) -> 7 * 32 = 224
FLIP_P = 0.5  # positive view: horizontal and vertical flips, p = 0.5 each (official RandomHorizontal/VerticalFlip)
REF_TAG = "_REF"  # the reference file's name contains "_REF" (official HL loader: 'REF' in the path)
FSIM_FILE = "fsim.npy"
#: Pair weights of Eq. 1 the LL loader provides (``ll.pair_weight``): FSIM (paper), Table 4's others, none.
PAIR_MEASURES = ("fsim",) + MEASURES + ("none",)
VERSIONS_FILE = "versions.json"
FSIM_DIAGONAL_TOL = 1e-6  # tolerance when checking a stored FSIM matrix (diagonal 1, symmetric, in [0, 1])


class DataError(ValueError):
    """Training data that cannot be used: a missing folder, unreadable files, inconsistent versions or FSIM."""


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
# Folders


def list_image_folders(root: Union[str, os.PathLike], limit: Optional[int] = None) -> List[Path]:
    """The image folders under ``root`` (sorted by name; hidden ones skipped), the first ``limit`` of them."""
    if root is None:
        raise DataError("no training data: set data.root (or --data) to a folder of image folders")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"training data root {root}: no such folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"training data root {root}: expected one folder per image (<root>/<name>/<name>_REF.png, "
                        f"...), found no folders")
    return folders[:limit] if limit is not None else folders


def data_fingerprint(folders: Sequence[Path]) -> Dict[str, object]:
    """Number and SHA-1 of the folder names: what a resumed run checks it is training on."""
    h = hashlib.sha1("\n".join(p.name for p in folders).encode("utf-8")).hexdigest()
    return {"count": len(folders), "sha1": h}


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def folder_versions(folder: Path) -> List[str]:
    """The image files of a folder in FSIM-matrix order: ``versions.json``'s list if present, else sorted names."""
    meta_path = folder / VERSIONS_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{meta_path}: unreadable ({type(exc).__name__}: {exc})") from None
        entries = meta.get("files") if isinstance(meta, dict) else meta
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{meta_path}: expected a non-empty list 'files' of the version files")
        names = []
        for e in entries:
            name = e.get("file") if isinstance(e, dict) else e
            if not isinstance(name, str):
                raise DataError(f"{meta_path}: expected file names (or {{'file': name}} entries), got {e!r}")
            names.append(name)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise DataError(f"{folder}: files listed in {VERSIONS_FILE} are missing: {missing}")
        return names
    names = sorted(n for n in os.listdir(folder) if _is_image(n) and (folder / n).is_file())
    if not names:
        raise DataError(f"{folder}: no image files")
    return names


def _check_fsim(matrix: np.ndarray, d: int, path: Path) -> np.ndarray:
    if matrix.shape != (d, d):
        raise DataError(f"{path}: expected a ({d}, {d}) FSIM matrix (one row per image file), got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise DataError(f"{path}: FSIM matrix holds non-finite values")
    if matrix.min() < -FSIM_DIAGONAL_TOL or matrix.max() > 1 + FSIM_DIAGONAL_TOL:
        raise DataError(f"{path}: FSIM values must lie in [0, 1], got min {matrix.min():.4g}, max {matrix.max():.4g}")
    if np.abs(np.diag(matrix) - 1).max() > FSIM_DIAGONAL_TOL:
        raise DataError(f"{path}: FSIM matrix diagonal must be 1")
    if np.abs(matrix - matrix.T).max() > FSIM_DIAGONAL_TOL:
        raise DataError(f"{path}: FSIM matrix must be symmetric")
    return matrix


def read_similarity(folder: Path, n_files: int) -> np.ndarray:
    """The stored (n_files, n_files) FSIM matrix of a folder, checked (finite, in [0, 1], symmetric, diagonal 1)."""
    path = folder / FSIM_FILE
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the stored FSIM matrix ({type(exc).__name__}: {exc})") from None
    return _check_fsim(np.asarray(matrix, dtype=np.float64), n_files, path)


def fsim_matrix_piq(stack: torch.Tensor) -> torch.Tensor:
    """FSIM between every pair of versions as the official loader computes it (the slow path).

    One ``piq.fsim(x_i, x_j, data_range=1.0)`` per pair of the lower triangle, in float64, symmetrised, diagonal 1.
    stack: (D, 3, H, W) in [0, 1] -> (D, D) float64.
    """
    import piq

    d = stack.shape[0]
    x = stack.to(torch.float64)
    out = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d):
        for j in range(i):
            out[i, j] = piq.fsim(x[i:i + 1], x[j:j + 1], data_range=1.0)
    out = out + out.t()
    out.fill_diagonal_(1.0)
    return out


# --------------------------------------------------------------------------------------------------------------
# Fragment sampler


def _linear_axis(n_in: int, n_out: int, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of 1-D linear interpolation, ``align_corners=False`` (PyTorch's convention)."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    w1 = (src - i0.to(torch.float64)).to(dtype)
    return i0, i1, 1 - w1, w1


def bilinear_resize(stack: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (..., H, W) to ``size``, as ``F.interpolate(mode="bilinear", align_corners=False)``
    (to ~1e-5: PyTorch computes the source coordinates in float32, grepq in float64), written with element-wise operations so the result is bit-identical for any number of threads
    (``F.interpolate``'s vectorised paths differ in the last bit between thread counts, and the data must not
    depend on the DataLoader's worker count)."""
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


def fragment_offsets(h: int, w: int, grid: int, patch: int, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
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
    """The anchor and positive views of one image's versions, aligned across versions (SPEC §2).

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


# --------------------------------------------------------------------------------------------------------------
# Datasets


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
    """Low-level training samples: one image folder -> its D versions as two fragment views and their FSIM.

    ``dataset[(epoch, index)]`` -> ``{"anchor": (D, 3, S, S), "positive": (D, 3, S, S), "similarity": (D, D)
    float32, "index": int, "name": str}``. Each version is decoded once per sample.

    Args:
        root: folder of image folders. limit: first N folders only.
        versions: "distorted" (the files without ``_REF``: paper D = 8) or "all" (every image file: official 9).
        similarity: where FSIM comes from: "stored" (``fsim.npy``), "compute" (piq per pair, official) or "auto"
            (used only when ``measure`` is "fsim").
        measure: the pair weight: "fsim" (paper), "ssim", "ms_ssim", "gmsd" (Table 4; computed from the decoded
            versions, :mod:`grepq.data.similarity`) or "none" (all zeros: InfoNCE, Table 4's "None" row).
        grid, patch, flip_p: fragment sampler parameters. seed: the run's seed.
    """

    def __init__(self, root, limit: Optional[int] = None, versions: str = "distorted", similarity: str = "auto",
                 grid: int = FRAGMENT_GRID, patch: int = FRAGMENT_PATCH, flip_p: float = FLIP_P, seed: int = 0,
                 measure: str = "fsim"):
        if versions not in ("distorted", "all"):
            raise ValueError(f"versions must be 'distorted' or 'all', got {versions!r}")
        if similarity not in ("auto", "stored", "compute"):
            raise ValueError(f"similarity must be 'auto', 'stored' or 'compute', got {similarity!r}")
        if measure not in PAIR_MEASURES:
            raise ValueError(f"measure must be one of {PAIR_MEASURES}, got {measure!r}")
        self.folders = list_image_folders(root, limit)
        self.versions, self.similarity, self.measure = versions, similarity, measure
        self.grid, self.patch, self.flip_p, self.seed = grid, patch, float(flip_p), int(seed)

    def __len__(self) -> int:
        return len(self.folders)

    def _select(self, folder: Path) -> Tuple[List[str], List[int]]:
        names = folder_versions(folder)
        if self.versions == "all":
            keep = list(range(len(names)))
        else:
            keep = [i for i, n in enumerate(names) if REF_TAG not in Path(n).stem]
        if len(keep) < 2:
            raise DataError(f"{folder}: {len(keep)} version(s) with versions={self.versions!r}; QACL needs at least "
                            f"2 (files: {names})")
        return names, keep

    def load(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Decode the selected versions of folder ``index``: (stack (D, 3, H, W), pair weights (D, D) float64)."""
        folder = self.folders[index]
        names, keep = self._select(folder)
        stack = _read_stack(folder, [names[i] for i in keep])
        if self.measure == "none":
            return stack, torch.zeros(len(keep), len(keep), dtype=torch.float64)
        if self.measure != "fsim":
            try:
                return stack, similarity_matrix(stack, self.measure)
            except ValueError as exc:
                raise DataError(f"{folder}: {exc}") from None
        stored = (folder / FSIM_FILE).is_file()
        if self.similarity == "stored" and not stored:
            raise DataError(f"{folder}: no {FSIM_FILE} (ll.similarity: stored); run grepq prepare, or use "
                            f"similarity 'compute' / 'auto'")
        if self.similarity == "compute" or (self.similarity == "auto" and not stored):
            sim = fsim_matrix_piq(stack)
        else:
            full = read_similarity(folder, len(names))
            sim = torch.from_numpy(full[np.ix_(keep, keep)].copy())
        return stack, sim

    def __getitem__(self, item) -> Dict[str, object]:
        epoch, index = _key(item)
        stack, sim = self.load(index)
        g = sample_generator(self.seed, epoch, index)
        anchor, positive, _ = fragment_views(stack, g, self.grid, self.patch, self.flip_p)
        return {"anchor": anchor.contiguous(), "positive": positive.contiguous(),
                "similarity": sim.to(torch.float32), "index": index, "name": self.folders[index].name}


def hl_preprocess(img: torch.Tensor, crop: int = 224, small_image: str = "pad") -> torch.Tensor:
    """HL training input (official order): ToTensor → CLIP Normalize → CenterCrop ``crop`` (no resize).

    img: (3, H, W) in [0, 1] -> (3, crop, crop). An image smaller than ``crop``: "pad" = torchvision's
    CenterCrop zero-pads the *normalised* tensor (so the border is the CLIP mean colour; official), "resize" =
    the short side is first resized to ``crop`` (bicubic, antialiased, clamped to [0, 1]).
    """
    from torchvision.transforms import functional as TF

    if small_image not in ("pad", "resize"):
        raise ValueError(f"small_image must be 'pad' or 'resize', got {small_image!r}")
    if small_image == "resize" and min(img.shape[-2:]) < crop:
        img = TF.resize(img, crop, interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp_(0, 1)
    mean = torch.tensor(CLIP_MEAN, dtype=img.dtype).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=img.dtype).view(3, 1, 1)
    return TF.center_crop((img - mean) / std, [crop, crop])


class HLTrainingDataset(Dataset):
    """High-level training samples: the reference (``*_REF*``) of each image folder, CLIP-normalised, centre-cropped.

    ``dataset[index]`` -> ``{"image": (3, crop, crop), "index": int, "name": str}``. No randomness.
    """

    def __init__(self, root, limit: Optional[int] = None, crop: int = 224, small_image: str = "pad"):
        self.folders = list_image_folders(root, limit)
        self.crop, self.small_image = crop, small_image

    def __len__(self) -> int:
        return len(self.folders)

    def reference(self, index: int) -> Path:
        folder = self.folders[index]
        refs = [n for n in sorted(os.listdir(folder)) if _is_image(n) and REF_TAG in Path(n).stem]
        if len(refs) != 1:
            raise DataError(f"{folder}: expected one reference image (a file name containing '{REF_TAG}'), "
                            f"found {refs or 'none'}")
        return folder / refs[0]

    def __getitem__(self, item) -> Dict[str, object]:
        _, index = _key(item)
        try:
            img = read_image(self.reference(index))
        except ImageReadError as exc:
            raise DataError(str(exc)) from None
        return {"image": hl_preprocess(img, self.crop, self.small_image), "index": index,
                "name": self.folders[index].name}


# --------------------------------------------------------------------------------------------------------------
# Sampler


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by seed + epoch, sharded by rank) yielding ``(epoch, index)`` pairs.

    ``set_epoch(e)`` as usual; ``set_start(k)`` skips this rank's first k indices of the epoch (resuming inside
    an epoch without loading the skipped samples). With one process it is a seeded shuffle of the whole set.
    """

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
