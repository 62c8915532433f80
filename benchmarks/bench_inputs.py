"""The photographs the benchmarks use, and how each benchmark names them in its output and JSON.

A folder of photographs is given with ``--photos DIR`` or the environment variable ``GREPQ_BENCH_PHOTOS``. When a
folder has ``train``/``val``/``test`` subfolders (BSDS500's layout) a benchmark that asks for a split reads that
subfolder, otherwise every photograph under the folder. A folder that is given but missing, or holds no
photograph, is an error: the benchmark stops rather than switching to other inputs. With neither, the benchmarks
use the photographs that scikit-image ships ("scikit-image data") and say so.

What was read is recorded (:func:`describe`): ``inputs`` is ``"folder <name>"`` (the folder's own name only, so no
machine's path gets into a result file) or ``"scikit-image data"``, ``files`` the file names (relative to the
folder) or the scikit-image function names, and ``count``.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ENV = "GREPQ_BENCH_PHOTOS"
SKIMAGE = "scikit-image data"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm")
#: scikit-image's colour photographs, in the order the benchmarks take them.
SKIMAGE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                 "motorcycle_left")

#: Names read in this process, by role ("test", "pristine", ...), in order, without repeats.
_USED: Dict[str, Dict[str, None]] = {}


class PhotoFolderError(ValueError):
    """A photo folder was named but cannot be used (missing, not a folder, or without photographs)."""


def add_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--photos", metavar="DIR", default=None,
                    help=f"folder of photographs (default: ${ENV}; without either, scikit-image's photographs)")


def folder() -> Optional[Path]:
    """The photo folder in use (``$GREPQ_BENCH_PHOTOS``), or None for scikit-image's photographs. Raises
    :class:`PhotoFolderError` when it is set but is not a folder."""
    value = os.environ.get(ENV, "")
    if not value:
        return None
    p = Path(value).expanduser()
    if not p.is_dir():
        raise PhotoFolderError(f"photo folder {value!r} (--photos or ${ENV}) does not exist or is not a folder; "
                               f"name an existing folder, or neither, to use scikit-image's photographs")
    return p.resolve()


def select(arg: Optional[str]) -> Optional[Path]:
    """Resolve ``--photos`` (``arg``) or ``$GREPQ_BENCH_PHOTOS`` and export the result to ``$GREPQ_BENCH_PHOTOS``, so
    that subprocesses read the same folder. Exits with an error message when the folder is missing."""
    if arg:
        os.environ[ENV] = str(Path(arg).expanduser().resolve())
    try:
        return folder()
    except PhotoFolderError as exc:
        raise SystemExit(f"error: {exc}") from None


def use_skimage() -> None:
    """Use scikit-image's photographs in this process whatever the environment says."""
    os.environ.pop(ENV, None)


def source_key() -> str:
    """A short name of the input source, for cache folders: "skimage" or the folder's name and a hash of its path."""
    f = folder()
    if f is None:
        return "skimage"
    import hashlib

    return f"{f.name}-{hashlib.sha1(str(f).encode()).hexdigest()[:8]}"


def files(split: Optional[str] = None) -> List[Path]:
    """The photographs of the folder in use (``split`` subfolder when there is one), sorted by path."""
    f = folder()
    if f is None:
        raise PhotoFolderError("no photo folder is in use")
    root = f / split if split and (f / split).is_dir() else f
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not found:
        raise PhotoFolderError(f"no photographs ({', '.join(EXTENSIONS)}) in {root}")
    return found


def note(role: str, names: List[str]) -> None:
    """Record that ``names`` were read for ``role``."""
    seen = _USED.setdefault(role, {})
    for n in names:
        seen[n] = None


def relative_name(path: Path) -> str:
    f = folder()
    try:
        return Path(path).resolve().relative_to(f).as_posix() if f is not None else Path(path).name
    except ValueError:
        return Path(path).name


def load(split: Optional[str], n: int, role: str = "photos") -> List[np.ndarray]:
    """Up to ``n`` uint8 (H, W, 3) photographs of the folder in use, or all of scikit-image's photographs (the
    caller makes more from them when it needs more); the names are recorded under ``role``."""
    from PIL import Image

    if folder() is not None:
        out = []
        chosen = files(split)[:n]
        for p in chosen:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        note(role, [relative_name(p) for p in chosen])
        return out
    import skimage.data

    out = []
    for name in SKIMAGE_NAMES:
        img = getattr(skimage.data, name)() if name != "motorcycle_left" else skimage.data.stereo_motorcycle()[0]
        img = np.repeat(img[:, :, None], 3, 2) if img.ndim == 2 else img[:, :, :3]
        out.append(np.ascontiguousarray(img))
    note(role, [f"skimage.data.{n}" for n in SKIMAGE_NAMES[:n]])
    return out


def describe() -> Dict[str, object]:
    """``{"inputs", "files", "count"}`` (and ``files_by_role`` when more than one role was read) for a result."""
    f = folder()
    names: Dict[str, None] = {}
    for seen in _USED.values():
        names.update(seen)
    out: Dict[str, object] = {"inputs": f"folder {f.name}" if f is not None else SKIMAGE,
                              "files": list(names), "count": len(names)}
    if len(_USED) > 1:
        out["files_by_role"] = {role: list(seen) for role, seen in _USED.items()}
    return out


def remember(path: Path, role: str) -> None:
    """Write the names recorded for ``role`` next to a cached input (``path``), so a later run that reuses the
    cache still reports them (:func:`recall`)."""
    Path(path).write_text(json.dumps({"source": source_key(), "role": role, "files": list(_USED.get(role, {}))}))


def recall(path: Path, role: str) -> bool:
    """If ``path`` (written by :func:`remember`) belongs to the input source in use, record its names under ``role``
    and return True; otherwise False (the cached input must be rebuilt)."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    if saved.get("source") != source_key():
        return False
    note(role, saved.get("files", []))
    return True
