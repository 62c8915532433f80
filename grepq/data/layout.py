"""The training-set layout: how a prepared folder is named and read, for ``grepq prepare`` (the writer) and the
training loaders (the readers). A training root holds one folder per image::

    <root>/<item>/<name>_REF.<ext>                    the reference (REF_TAG)
    <root>/<item>/<name>_<type>_<level>.<ext>         a distorted version, grepq naming, or
    <root>/<item>/<name>_<id:02d>_<level:02d>.<ext>   KADIS naming (KADIS id, level)
    <meta>/fsim.npy                                   (D, D) FSIM between the D image files in versions.json's order
    <meta>/versions.json                              that order, each file's KADIS id, level, parameter and drawn
                                                      angle (motion blur), the settings and the grepq version

``<meta>`` is the item folder, or for the official loader's layout (``naming="kadis"``: item folders
``<name>.bmp`` holding only the 9 images, listed in ``<root>/LIVEFB.csv``) the sidecar ``<root>/.grepq/<item>/``.
Hidden folders and files at the root are not items. A folder of images without metadata (the official layout) is
read too: its versions are its image files in sorted name order.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..utils import atomic_write
from .io import IMAGE_EXTENSIONS

__all__ = ["DataError", "REF_TAG", "FSIM_FILE", "VERSIONS_FILE", "PARTIAL_DIR", "SIDECAR_DIR", "OFFICIAL_LIST",
           "NAMINGS", "FSIM_DIAGONAL_TOL", "reference_file", "version_file", "item_folder_name", "meta_dir",
           "is_image", "is_reference", "list_image_folders", "data_fingerprint", "folder_versions",
           "check_fsim", "stored_fsim_path", "read_fsim_matrix", "write_official_list"]

PathLike = Union[str, os.PathLike]

REF_TAG = "_REF"  # <name>_REF.<ext>: the reference (the official HL loader picks the file whose path contains 'REF')
FSIM_FILE = "fsim.npy"
VERSIONS_FILE = "versions.json"
PARTIAL_DIR = ".partial"  # <root>/.partial/<item>/: items being written
SIDECAR_DIR = ".grepq"  # <root>/.grepq/<item>/: fsim.npy and versions.json of the official loader's layout
OFFICIAL_LIST = "LIVEFB.csv"  # the official loader's list of items (column im_loc)
NAMINGS = ("grepq", "kadis")
FSIM_DIAGONAL_TOL = 1e-6  # tolerance when checking a stored FSIM matrix (diagonal 1, symmetric, in [0, 1])


class DataError(ValueError):
    """Training data that cannot be used: a missing folder, unreadable files, inconsistent versions or FSIM."""


def reference_file(name: str, ext: str) -> str:
    """File name of an item's reference: ``<name>_REF.<ext>``."""
    return f"{name}{REF_TAG}.{ext}"


def version_file(name: str, spec, ext: str, naming: str = "grepq") -> str:
    """File name of a version (``spec``: a DistortionSpec): ``<name>_<type>_<level>.<ext>`` (grepq) or
    ``<name>_<id:02d>_<level:02d>.<ext>`` (kadis)."""
    if naming == "grepq":
        return f"{name}_{spec.name}.{ext}"
    if naming == "kadis":
        return f"{name}_{spec.kadis_name}.{ext}"
    raise ValueError(f"naming: expected one of {NAMINGS}, got {naming!r}")


def item_folder_name(name: str, naming: str = "grepq") -> str:
    """The item folder of image ``name``: ``<name>`` (grepq) or ``<name>.bmp`` (the official loader's folders)."""
    if naming not in NAMINGS:
        raise ValueError(f"naming: expected one of {NAMINGS}, got {naming!r}")
    return f"{name}.bmp" if naming == "kadis" else name


def meta_dir(folder: PathLike, naming: Optional[str] = None) -> Path:
    """Where an item's ``fsim.npy`` / ``versions.json`` live: the place ``naming`` uses; without it, the folder if
    it holds either file, else the sidecar ``<root>/.grepq/<item>/`` if it exists, else the folder."""
    folder = Path(folder)
    sidecar = folder.parent / SIDECAR_DIR / folder.name
    if naming is not None:
        return sidecar if naming == "kadis" else folder
    if (folder / VERSIONS_FILE).is_file() or (folder / FSIM_FILE).is_file():
        return folder
    return sidecar if sidecar.is_dir() else folder


def is_image(name: str) -> bool:
    """Whether a file name is an image file (by extension; hidden files are not)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def is_reference(name: str) -> bool:
    """Whether an image file name is a reference (its stem contains ``_REF``)."""
    return REF_TAG in Path(name).stem


def list_image_folders(root: Optional[PathLike], limit: Optional[int] = None) -> List[Path]:
    """The item folders under ``root`` (sorted by name; hidden ones skipped), the first ``limit`` of them."""
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


def _listed_versions(folder: Path, meta_path: Path) -> List[str]:
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
        raise DataError(f"{folder}: files listed in {meta_path.name} are missing: {missing}")
    return names


def folder_versions(folder: Path) -> List[str]:
    """The image files of an item folder in FSIM-matrix order: ``versions.json``'s list if there is one (in the
    folder or its sidecar), else the sorted image file names."""
    meta_path = meta_dir(folder) / VERSIONS_FILE
    if meta_path.is_file():
        return _listed_versions(folder, meta_path)
    names = sorted(n for n in os.listdir(folder) if is_image(n) and (folder / n).is_file())
    if not names:
        raise DataError(f"{folder}: no image files")
    return names


def check_fsim(matrix: np.ndarray, d: int, path: Path) -> np.ndarray:
    """A stored FSIM matrix, checked: (d, d), finite, in [0, 1], symmetric, diagonal 1; DataError otherwise."""
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


def stored_fsim_path(folder: Path) -> Path:
    """Path of an item's ``fsim.npy`` (in the folder or its sidecar; it may not exist)."""
    return meta_dir(folder) / FSIM_FILE


def read_fsim_matrix(folder: Path, n_files: int) -> np.ndarray:
    """The stored (n_files, n_files) FSIM matrix of a folder, checked by :func:`check_fsim`."""
    path = stored_fsim_path(folder)
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the stored FSIM matrix ({type(exc).__name__}: {exc})") from None
    return check_fsim(np.asarray(matrix, dtype=np.float64), n_files, path)


def write_official_list(root: PathLike) -> Path:
    """Write ``<root>/LIVEFB.csv`` (column ``im_loc``, as the official loader reads it): the complete
    ``<name>.bmp`` items (with a sidecar ``versions.json``), sorted, atomically."""
    root = Path(root)
    names = sorted(p.name[:-len(".bmp")] for p in root.iterdir() if p.is_dir() and p.name.endswith(".bmp")
                   and (root / SIDECAR_DIR / p.name / VERSIONS_FILE).is_file())
    path = root / OFFICIAL_LIST
    with atomic_write(path) as tmp:
        tmp.write_text("im_loc\n" + "".join(f"{n}.bmp\n" for n in names), encoding="utf-8")
    return path
