"""Synthesise the low-level training set: one folder per image with its distorted versions and their FSIM.

``prepare(inputs, out_dir)`` turns a folder of photographs (or a list file of paths) into the layout of
:mod:`grepq.data.layout` (which owns the names; the training loaders read it)::

    <out>/<name>/<name>_REF.png                   the reference, 8-bit RGB
    <out>/<name>/<name>_<type>_<level>.png        the distorted versions the recipe gives (8 by default)
    <out>/<name>/fsim.npy                         (D, D) float64 FSIM between the D = 9 image files, in the
                                                  order of their sorted file names (the order the training
                                                  loader reads them), diagonal 1 (as the official loader)
    <out>/<name>/versions.json                    that order, each file's KADIS id, type, level and parameter,
                                                  the settings (recipe, seed, ...) and the grepq version
    <out>/prepare_report.json, .csv               done / already done / failed / ignored inputs, with reasons

Which versions each image gets is its **recipe** (:mod:`grepq.data.recipes`): ``authors`` (default: the
authors' 4 of 12 KADIS types x 2 of levels 2..5, drawn per image), ``authors-no-denoise``, ``fixed``
(grepq's earlier 4 types x levels 2 and 4, bit for bit as before, for old runs), ``grid`` and ``random``
(free choice). ``naming="kadis"`` writes the authors' files instead: ``<out>/<name>.bmp/<name>_REF.bmp``
and ``<name>_<id:02d>_<level:02d>.bmp`` (nothing else in the folder), ``fsim.npy`` and ``versions.json``
in ``<out>/.grepq/<name>.bmp/`` and the list ``<out>/LIVEFB.csv``, so that the official loader reads the
output unchanged (and grepq's loaders too).

The FSIM matrix is computed from the 8-bit files as written (values / 255 in float64, as the official
loader's ``skimage.io.imread(...) / 255``) with :func:`grepq.data.fsim.fsim_matrix`, which equals
``piq.fsim(x, y, data_range=1.0)`` per pair.

Guarantees
----------
* **Atomic items.** An item is written into ``<out>/.partial/<name>/`` and moved into place with
  ``os.replace`` once complete. A killed run leaves at most a ``.partial`` folder, which never counts as
  done and is cleared when the item is redone.
* **Done means complete.** An item is done only if its folder holds exactly the files ``versions.json``
  lists (plus ``fsim.npy`` and ``versions.json``, or those two in the sidecar), ``fsim.npy`` is a (D, D)
  matrix, and the settings stored in ``versions.json`` equal the current ones. An incomplete folder is
  redone; a complete folder made with *other* settings is reported as failed and left untouched (delete it
  or use another ``out_dir``).
* **Resumable, idempotent.** A second run skips done items ("skipped_done" in the report).
* **Deterministic.** Each item's seed is derived from the global ``seed`` and the item's *name*
  (SHA-256), never from its position, worker or shard; the recipe's draw and every distortion's random
  numbers come from it; FSIM runs single-threaded per item. The files are byte-identical whatever
  ``workers`` and ``shard`` are.
* **Shardable.** Items are sorted by name; item k (0-based) belongs to shard ``k % N`` of ``shard=(i, N)``.
  Shards may run at the same time on the same ``out_dir``; each writes its own report
  (``prepare_report.shard-<i>-of-<N>.json``).
* **Nothing dropped silently.** Unreadable files, images whose short side is below ``min_size``, files
  skipped for their extension and missing paths are all listed in the report with a reason.

Image size. The official LL fragment sampler upsamples (bilinear) an image whose short side is below
224 = 7 x 32 (docs/method.md §2) rather than rejecting it, so small images are usable: ``min_size`` (default 32) is
only a floor below which an image is refused (FSIM's log-Gabor filters and the 32-pixel mini-patches make
no sense on a few pixels), and images with a short side below 224 are prepared with a warning in the report.

Names. An item's name is its file's stem. Two inputs with the same stem (``a.jpg`` and ``a.png``, or the
same file name in two folders) would collide: ``on_collision="error"`` (default) refuses to start and
lists them; ``on_collision="suffix"`` names each of them ``<stem>__<k>`` (k = 1, 2, ... in the order of
their full paths) and records the source path in ``versions.json``. Stems starting with "." are refused
(hidden folders are skipped by loaders), and so are stems containing "." with ``naming="kadis"`` (the
official loader cuts folder names at the first dot).

Command line: ``grepq prepare INPUT... --out DIR [--recipe R] [--workers N] [--shard I/N] ...``
(:mod:`grepq.commands.prepare`; ``--help`` lists the options). Exit status 0 if no input failed, 2 otherwise.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..utils import atomic_write
from ..version import __version__ as GREPQ_VERSION
from .distortions import DEFAULT_RANGE_MODE, RANGE_MODES, DistortionSpec, distort_specs
from .fsim import fsim_matrix
from .io import ImageReadError, expand_inputs, read_image
from .layout import (
    FSIM_FILE,
    NAMINGS,
    PARTIAL_DIR,
    SIDECAR_DIR,
    VERSIONS_FILE,
    item_folder_name,
    meta_dir,
    reference_file,
    version_file,
    write_official_list,
)
from .recipes import Recipe, make_recipe

__all__ = ["prepare", "PrepareSummary", "item_seed", "check_item", "resolve_inputs",
           "FSIM_FILE", "VERSIONS_FILE", "PARTIAL_DIR", "MIN_SIZE", "FRAGMENT_SIZE", "LOSSLESS_EXTS"]

PathLike = Union[str, os.PathLike]

FORMAT_VERSION = 2  # layout version of an item folder (stored in versions.json); recipe "fixed" writes format 1
LEGACY_FORMAT_VERSION = 1  # grepq's format before recipes: every type x level, the settings of _legacy_settings
REPORT_STEM = "prepare_report"
MIN_SIZE = 32  # default floor of the short side, pixels (see the module docstring)
FRAGMENT_SIZE = 224  # 7 x 7 grid of 32 x 32 mini-patches (method.md §2); smaller images are upsampled by the LL sampler
LOSSLESS_EXTS = ("png", "bmp", "tif", "tiff", "ppm")  # the versions must be stored losslessly
LIST_FILE_SUFFIXES = (".txt", ".lst", ".list")  # an input file with this suffix is a list of paths, one a line
_PIL_FORMATS = {"png": "PNG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF", "ppm": "PPM"}


# ------------------------------------------------------------------------------------------------ helpers


def item_seed(seed: int, name: str) -> int:
    """The seed of one item: 64 bits of SHA-256 of (global seed, item name). Independent of order and workers."""
    digest = hashlib.sha256(f"grepq.prepare\0{int(seed)}\0{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _fsim_settings(fsim_dtype: str) -> Dict[str, Any]:
    return {"dtype": fsim_dtype, "data_range": 1.0, "chromatic": True, "diagonal": 1.0, "order": "sorted file names"}


def _settings(recipe: Recipe, seed: int, range_mode: str, ext: str, fsim_dtype: str, naming: str) -> Dict[str, Any]:
    """Everything that changes an item's files; stored in versions.json and compared when resuming.

    Recipe ``fixed`` with grepq naming gives exactly the settings grepq stored before recipes existed (format 1),
    so that folders prepared then count as done and a rerun writes the same bytes.
    """
    if recipe.name == "fixed" and naming == "grepq":
        return {"format": LEGACY_FORMAT_VERSION, "types": list(recipe.types),
                "levels": [int(lv) for lv in recipe.levels], "seed": int(seed), "range_mode": range_mode,
                "ext": ext, "fsim": _fsim_settings(fsim_dtype)}
    return {"format": FORMAT_VERSION, "recipe": recipe.describe(), "seed": int(seed), "range_mode": range_mode,
            "ext": ext, "naming": naming, "fsim": _fsim_settings(fsim_dtype)}


def _recipe_of(settings: Dict[str, Any]) -> Recipe:
    if settings["format"] == LEGACY_FORMAT_VERSION:
        return Recipe("fixed", tuple(settings["types"]), tuple(settings["levels"]))
    r = settings["recipe"]
    return Recipe(r["name"], tuple(r["types"]), tuple(r["levels"]), r["n_types"], r["n_levels"])


def _version_row(spec: DistortionSpec, file: str, legacy_format: bool) -> Dict[str, Any]:
    if legacy_format:  # the rows grepq wrote before recipes (format 1)
        return {"file": file, "type": spec.type, "level": spec.level, "value": spec.value, "kadis_id": spec.kadis.id}
    kt = spec.kadis
    row = {"file": file, "type": spec.type, "kadis_id": kt.id, "kadis_function": kt.kadis_function,
           "level": spec.level, "parameter": spec.value, "parameter_meaning": kt.parameter}
    if kt.substitute:
        row["substitute"] = kt.substitute
    return row


def _file_table(name: str, settings: Dict[str, Any], specs: Sequence[DistortionSpec]) -> List[Dict[str, Any]]:
    """The image files of an item with what each one is, in sorted file-name order (the FSIM matrix order)."""
    ext, legacy_format = settings["ext"], settings["format"] == LEGACY_FORMAT_VERSION
    naming = settings.get("naming", "grepq")
    ref = {"file": reference_file(name, ext), "type": "reference", "level": None,
           ("value" if legacy_format else "parameter"): None, "kadis_id": None}
    rows = [ref] + [_version_row(spec, version_file(name, spec, ext, naming), legacy_format) for spec in specs]
    return sorted(rows, key=lambda r: r["file"])


def check_item(folder: PathLike, settings: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """State of an item folder: ``("done", "")``, ``("missing", why)``, ``("incomplete", why)`` or ``("mismatch",
    why)``.

    Done = ``versions.json`` readable, the folder's files are exactly those it lists (plus ``fsim.npy`` and
    ``versions.json`` unless those are in the sidecar, :func:`grepq.data.layout.meta_dir`), ``fsim.npy`` is
    (D, D), and (if ``settings`` is given) the stored settings equal them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "missing", "no folder"
    meta = meta_dir(folder, settings.get("naming", "grepq") if settings else None)
    try:
        stored_meta = json.loads((meta / VERSIONS_FILE).read_text(encoding="utf-8"))
        files = [row["file"] for row in stored_meta["files"]]
        stored = stored_meta["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return "incomplete", f"{VERSIONS_FILE} missing or unreadable ({type(exc).__name__})"
    present = set(os.listdir(folder))
    expected = set(files) | ({FSIM_FILE, VERSIONS_FILE} if meta == folder else set())
    if present != expected:
        missing, extra = sorted(expected - present), sorted(present - expected)
        return "incomplete", f"files differ from {VERSIONS_FILE}: missing {missing}, unexpected {extra}"
    try:
        matrix = np.load(meta / FSIM_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return "incomplete", f"{FSIM_FILE} unreadable ({type(exc).__name__})"
    if matrix.shape != (len(files), len(files)):
        return "incomplete", f"{FSIM_FILE} has shape {matrix.shape}, expected {(len(files), len(files))}"
    if settings is not None and stored != settings:
        return "mismatch", (f"already prepared with other settings ({stored}); current settings are {settings}: "
                            f"delete {folder} or use another out_dir")
    return "done", ""


def _read_list_file(path: Path) -> List[Path]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line)
        out.append(p if p.is_absolute() else path.parent / p)
    return out


def resolve_inputs(inputs: Union[PathLike, Sequence[PathLike]], recursive: bool = False
                   ) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Image files from folders, image files and list files (``.txt``/``.lst``/``.list``: one path a line,
    relative to the list file's folder, ``#`` comments). Returns ``(images, problems)`` with ``problems`` a
    list of ``(path, reason)`` (non-image files, missing paths)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: List[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_file() and p.suffix.lower() in LIST_FILE_SUFFIXES:
            paths.extend(_read_list_file(p))
        else:
            paths.append(p)
    return expand_inputs(paths, recursive=recursive)


def _assign_names(images: Sequence[Path], on_collision: str) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, str]]]:
    """(name, path) per input, sorted by name; and the inputs refused for their name."""
    by_stem: Dict[str, List[Path]] = {}
    for p in dict.fromkeys(Path(os.path.abspath(p)) for p in images):  # the same file given twice counts once
        by_stem.setdefault(p.stem, []).append(p)
    named: Dict[str, Path] = {}
    refused: List[Tuple[str, str]] = []
    collisions = {stem: sorted(ps, key=str) for stem, ps in by_stem.items() if len(ps) > 1}
    if collisions and on_collision == "error":
        lines = "; ".join(f"{stem!r}: {[str(p) for p in ps]}" for stem, ps in sorted(collisions.items()))
        raise ValueError(f"inputs with the same file stem would share an output folder: {lines}. "
                         f"Rename them or pass on_collision='suffix'")
    if on_collision not in ("error", "suffix"):
        raise ValueError(f"on_collision: expected 'error' or 'suffix', got {on_collision!r}")
    for stem, ps in by_stem.items():
        for k, p in enumerate(sorted(ps, key=str), start=1):
            name = f"{stem}__{k}" if stem in collisions else stem
            if not name or name.startswith("."):
                refused.append((str(p), f"file name {p.name!r}: an item name may not start with '.'"))
                continue
            if name in named:
                raise ValueError(f"item name {name!r} is used by {named[name]} and {p} even after adding "
                                 f"suffixes; rename one of them")
            named[name] = p
    return sorted(named.items()), refused


def _save_image(arr: np.ndarray, path: Path, ext: str) -> None:
    img = Image.fromarray(arr, mode="RGB")
    if ext == "png":
        img.save(path, format="PNG", compress_level=6)
    else:
        img.save(path, format=_PIL_FORMATS[ext])


# ------------------------------------------------------------------------------------------------ one item


@dataclass
class _Task:
    name: str
    source: str
    out_dir: str
    settings: Dict[str, Any]
    min_size: int


def _read_reference(task: _Task, result: Dict[str, Any]) -> Optional[np.ndarray]:
    """The 8-bit reference (H, W, 3) of a task, or None with ``result["reason"]`` set (unreadable, too small)."""
    try:
        ref = read_image(task.source)  # (3, H, W) float32 in [0, 1]
    except ImageReadError as exc:
        result["reason"] = f"unreadable: {exc.reason}"
        return None
    h, w = ref.shape[-2:]
    if min(h, w) < task.min_size:
        result["reason"] = f"too small: {h}x{w} pixels, short side {min(h, w)} < min_size {task.min_size}"
        return None
    if min(h, w) < FRAGMENT_SIZE:
        result["warnings"].append(f"short side {min(h, w)} < {FRAGMENT_SIZE}: the LL fragment sampler "
                                  f"will upsample it (bilinear), as the official loader does")
    return np.round(ref.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def _make_versions(task: _Task, ref_u8: np.ndarray, seed: int) -> Tuple[Dict[str, np.ndarray], List[Dict[str, Any]]]:
    """The 8-bit image of every file of the item (by file name) and the file table (sorted, FSIM order)."""
    settings = task.settings
    specs = _recipe_of(settings).draw(seed)
    ext, naming = settings["ext"], settings.get("naming", "grepq")
    arrays = {reference_file(task.name, ext): ref_u8}
    for spec, img in distort_specs(ref_u8.astype(np.float32) / 255.0, specs, seed, range_mode=settings["range_mode"]):
        arrays[version_file(task.name, spec, ext, naming)] = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    table = _file_table(task.name, settings, specs)
    if sorted(arrays) != [row["file"] for row in table]:  # guards the naming scheme against itself
        raise RuntimeError(f"internal error: files {sorted(arrays)} do not match {table}")
    return arrays, table


def _write_item(task: _Task, arrays: Dict[str, np.ndarray], table: List[Dict[str, Any]], meta: Dict[str, Any]) -> None:
    """Write the item into ``.partial`` (images, fsim.npy, versions.json), then move it into place atomically."""
    settings, out_dir = task.settings, Path(task.out_dir)
    naming = settings.get("naming", "grepq")
    folder = item_folder_name(task.name, naming)
    partial, final = out_dir / PARTIAL_DIR / folder, out_dir / folder
    partial_meta = partial if naming == "grepq" else out_dir / PARTIAL_DIR / f"{folder}{SIDECAR_DIR}"
    for d in {partial, partial_meta}:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    for fname, arr in arrays.items():
        _save_image(arr, partial / fname, settings["ext"])
    order = [row["file"] for row in table]
    versions = torch.from_numpy(np.stack([arrays[f] for f in order])).permute(0, 3, 1, 2).to(torch.float64) / 255.0
    with _torch_threads(1):  # one thread: identical bits in every worker layout
        matrix = fsim_matrix(versions, dtype=getattr(torch, settings["fsim"]["dtype"])).to(torch.float64).numpy()
    np.save(partial_meta / FSIM_FILE, matrix, allow_pickle=False)
    (partial_meta / VERSIONS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if partial_meta != partial:  # the sidecar first: an image folder without it is incomplete and redone
        sidecar = meta_dir(final, naming)
        if sidecar.exists():
            shutil.rmtree(sidecar)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial_meta, sidecar)
    if final.exists():  # an incomplete folder from an earlier run (done/mismatch items are never given here)
        shutil.rmtree(final)
    os.replace(partial, final)


def _process(task: _Task) -> Dict[str, Any]:
    """Make one item folder. Returns a result record (status 'done' or 'failed'); never raises for bad input."""
    start = time.perf_counter()
    result: Dict[str, Any] = {"name": task.name, "source": task.source, "status": "failed", "reason": "",
                              "warnings": []}
    partial = Path(task.out_dir) / PARTIAL_DIR / item_folder_name(task.name, task.settings.get("naming", "grepq"))
    try:
        ref_u8 = _read_reference(task, result)
        if ref_u8 is None:
            return result
        seed = item_seed(task.settings["seed"], task.name)
        arrays, table = _make_versions(task, ref_u8, seed)
        meta = {"name": task.name, "source": task.source, "size": [int(s) for s in ref_u8.shape[:2]],
                "item_seed": seed, "files": table, "settings": task.settings, "grepq_version": GREPQ_VERSION}
        _write_item(task, arrays, table, meta)
        result["status"] = "done"
        return result
    except Exception as exc:  # one bad item must not stop a 5,000-image run; it is reported with the reason
        result["reason"] = f"error: {type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=5)
        for d in (partial, partial.with_name(partial.name + SIDECAR_DIR)):
            with contextlib.suppress(OSError):
                shutil.rmtree(d)
        return result
    finally:
        result["seconds"] = round(time.perf_counter() - start, 3)


def _worker_init() -> None:
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class PrepareSummary:
    """What one ``prepare`` call did. Lists hold dicts with at least ``name``/``source`` (or ``path``) and
    ``reason``."""

    out_dir: Path
    shard: Tuple[int, int]
    done: List[Dict[str, Any]] = field(default_factory=list)
    skipped_done: List[Dict[str, Any]] = field(default_factory=list)
    failed: List[Dict[str, Any]] = field(default_factory=list)
    ignored: List[Dict[str, Any]] = field(default_factory=list)
    warnings: List[Dict[str, Any]] = field(default_factory=list)
    other_shards: int = 0
    report_path: Optional[Path] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no input of this shard failed."""
        return not self.failed

    def __str__(self) -> str:
        return (f"prepare shard {self.shard[0]}/{self.shard[1]} -> {self.out_dir}: {len(self.done)} done, "
                f"{len(self.skipped_done)} already done, {len(self.failed)} failed, {len(self.ignored)} ignored, "
                f"{len(self.warnings)} warnings, {self.other_shards} in other shards ({self.seconds:.1f} s); "
                f"report {self.report_path}")


def _write_report(summary: PrepareSummary, settings: Dict[str, Any], inputs: List[str], min_size: int) -> Path:
    i, n = summary.shard
    stem = REPORT_STEM if n == 1 else f"{REPORT_STEM}.shard-{i}-of-{n}"
    report = {
        "grepq_version": GREPQ_VERSION,
        "out_dir": str(summary.out_dir),
        "inputs": inputs,
        "shard": [i, n],
        "settings": settings,
        "min_size": min_size,
        "counts": {"done": len(summary.done), "skipped_done": len(summary.skipped_done),
                   "failed": len(summary.failed), "ignored": len(summary.ignored),
                   "warnings": len(summary.warnings), "other_shards": summary.other_shards},
        "seconds": round(summary.seconds, 3),
        "done": summary.done,
        "skipped_done": summary.skipped_done,
        "failed": summary.failed,
        "ignored": summary.ignored,
        "warnings": summary.warnings,
    }
    path = summary.out_dir / f"{stem}.json"
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["status", "name", "source", "reason"])
    for status, rows in (("done", summary.done), ("skipped_done", summary.skipped_done),
                         ("failed", summary.failed), ("ignored", summary.ignored)):
        for r in rows:
            writer.writerow([status, r.get("name", ""), r.get("source", r.get("path", "")), r.get("reason", "")])
    for r in summary.warnings:
        writer.writerow(["warning", r["name"], r["source"], r["warning"]])
    with atomic_write(path.with_suffix(".csv")) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _check_options(seed, min_size, workers, shard, range_mode, fsim_dtype, ext, naming) -> Tuple[int, int]:
    """Clear errors for bad options before any work; returns the shard (i, N)."""
    if ext not in LOSSLESS_EXTS:
        raise ValueError(f"ext: expected a lossless format, one of {LOSSLESS_EXTS}, got {ext!r}")
    if naming not in NAMINGS:
        raise ValueError(f"naming: expected one of {NAMINGS}, got {naming!r}")
    if range_mode not in RANGE_MODES:
        raise ValueError(f"range_mode: expected one of {RANGE_MODES}, got {range_mode!r}")
    if fsim_dtype not in ("float64", "float32"):
        raise ValueError(f"fsim_dtype: expected 'float64' or 'float32', got {fsim_dtype!r}")
    for what, value, low in (("seed", seed, 0), ("min_size", min_size, 1), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{what}: expected an integer >= {low}, got {value!r}")
    try:
        shard_i, shard_n = (int(shard[0]), int(shard[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {shard!r}") from None
    if len(shard) != 2 or shard_n < 1 or not 0 <= shard_i < shard_n:
        raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {shard!r}")
    return shard_i, shard_n


def _collect_tasks(inputs, out: Path, summary: PrepareSummary, settings: Dict[str, Any], on_collision: str,
                   recursive: bool, min_size: int) -> List[_Task]:
    """Resolve the inputs, report the ignored / refused / already done ones, and return this shard's tasks."""
    images, problems = resolve_inputs(inputs, recursive=recursive)
    out_abs = Path(os.path.abspath(out))
    inside = [p for p in images if out_abs in Path(os.path.abspath(p)).parents]
    images = [p for p in images if out_abs not in Path(os.path.abspath(p)).parents]
    problems = list(problems) + [(str(p), "inside out_dir (an output of prepare, not an input)") for p in inside]
    for path, reason in problems:
        if reason.startswith("no such file"):
            summary.failed.append({"name": "", "source": path, "reason": reason})
        else:
            summary.ignored.append({"path": path, "reason": reason})
    items, refused = _assign_names(images, on_collision)
    for path, reason in refused:
        summary.failed.append({"name": "", "source": path, "reason": reason})
    naming = settings.get("naming", "grepq")
    shard_i, shard_n = summary.shard
    tasks: List[_Task] = []
    for k, (name, path) in enumerate(items):
        if k % shard_n != shard_i:
            summary.other_shards += 1
            continue
        if naming == "kadis" and "." in name:
            summary.failed.append({"name": name, "source": str(path), "reason": (
                "naming 'kadis': the official loader cuts a folder name at its first '.'; rename the file")})
            continue
        state, why = check_item(out / item_folder_name(name, naming), settings)
        if state == "done":
            summary.skipped_done.append({"name": name, "source": str(path)})
        elif state == "mismatch":
            summary.failed.append({"name": name, "source": str(path), "reason": why})
        else:
            tasks.append(_Task(name=name, source=str(path), out_dir=str(out), settings=settings,
                               min_size=int(min_size)))
    return tasks


def _run_tasks(tasks: List[_Task], workers: int, progress: bool, desc: str) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc=desc, unit="img", disable=not progress)
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(_process(task))
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
            with ctx.Pool(processes=min(workers, len(tasks)), initializer=_worker_init) as pool:
                for res in pool.imap_unordered(_process, tasks, chunksize=1):
                    results.append(res)
                    bar.update(1)
    finally:
        bar.close()
    return results


def prepare(inputs: Union[PathLike, Sequence[PathLike]], out_dir: PathLike, *, recipe: Optional[str] = None,
            types: Optional[Sequence[str]] = None, levels: Optional[Sequence[int]] = None,
            n_types: Optional[int] = None, n_levels: Optional[int] = None, seed: int = 0,
            min_size: int = MIN_SIZE, ext: Optional[str] = None, naming: str = "grepq", workers: int = 1,
            shard: Tuple[int, int] = (0, 1), progress: bool = True, range_mode: str = DEFAULT_RANGE_MODE,
            fsim_dtype: str = "float64", on_collision: str = "error", recursive: bool = False) -> PrepareSummary:
    """Build the training folders for ``inputs`` (folders, image files or list files) under ``out_dir``.

    ``recipe`` (:mod:`grepq.data.recipes`; default ``authors``, or ``grid`` when ``types``/``levels`` are given
    without a recipe) says which distortions each image gets; ``types``, ``levels``, ``n_types`` and ``n_levels``
    override its pools and counts. The versions are written next to the 8-bit reference as lossless ``ext``
    files (default png; bmp with ``naming="kadis"``, the official loader's layout), with ``fsim.npy`` and
    ``versions.json`` (module docstring). ``workers`` processes (spawned) work in parallel; ``shard=(i, N)``
    restricts the run to the items k with k % N == i in name order. Returns a :class:`PrepareSummary` and
    writes the report files.
    """
    t0 = time.perf_counter()
    ext = (ext or ("bmp" if naming == "kadis" else "png")).lower().lstrip(".")
    shard_i, shard_n = _check_options(seed, min_size, workers, shard, range_mode, fsim_dtype, ext, naming)
    recipe_obj = recipe if isinstance(recipe, Recipe) else make_recipe(recipe, types, levels, n_types, n_levels)
    settings = _settings(recipe_obj, int(seed), range_mode, ext, fsim_dtype, naming)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary(out_dir=out, shard=(shard_i, shard_n))
    tasks = _collect_tasks(inputs, out, summary, settings, on_collision, recursive, min_size)
    results = _run_tasks(tasks, workers, progress, f"prepare {shard_i}/{shard_n}")
    for res in sorted(results, key=lambda r: r["name"]):
        for warning in res.pop("warnings"):
            summary.warnings.append({"name": res["name"], "source": res["source"], "warning": warning})
        if res["status"] == "done":
            summary.done.append({"name": res["name"], "source": res["source"], "seconds": res["seconds"]})
        else:
            summary.failed.append({k: v for k, v in res.items() if k != "status"})
    with contextlib.suppress(OSError):  # other shards may still be using it
        (out / PARTIAL_DIR).rmdir()
    if naming == "kadis":
        write_official_list(out)
    summary.seconds = time.perf_counter() - t0
    summary.report_path = _write_report(summary, settings, [str(p) for p in (
        [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)], int(min_size))
    return summary
