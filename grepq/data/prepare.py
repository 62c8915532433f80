"""Synthesise the low-level training set: one folder per image with its distorted versions and their FSIM.

``prepare(inputs, out_dir)`` turns a folder of photographs (or a list file of paths) into::

    <out>/<name>/<name>_REF.png                   the reference, 8-bit RGB
    <out>/<name>/<name>_<type>_<level>.png        len(types) x len(levels) distorted versions (8 by default)
    <out>/<name>/fsim.npy                         (D, D) float64 FSIM between the D = 9 image files, in the
                                                  order of their sorted file names (the order the training
                                                  loader reads them), diagonal 1 (as the official loader)
    <out>/<name>/versions.json                    that order, each file's distortion and parameter, the
                                                  settings and the grepq version
    <out>/prepare_report.json, .csv               done / already done / failed / ignored inputs, with reasons

The FSIM matrix is computed from the 8-bit files as written (values / 255 in float64, as the official
loader's ``skimage.io.imread(...) / 255``) with :func:`grepq.data.fsim.fsim_matrix`, which equals
``piq.fsim(x, y, data_range=1.0)`` per pair.

Note for the official loader: it reads *every* file of an image folder as an image (``sorted(os.listdir)``),
so it cannot read these folders as they are (``fsim.npy`` and ``versions.json`` are not images); grepq's
loader reads the image files and ``fsim.npy``.

Guarantees
----------
* **Atomic items.** An item is written into ``<out>/.partial/<name>/`` and moved into place with
  ``os.replace`` once complete. A killed run leaves at most a ``.partial`` folder, which never counts as
  done and is cleared when the item is redone.
* **Done means complete.** An item is done only if its folder holds exactly the files ``versions.json``
  lists (plus ``fsim.npy`` and ``versions.json``), ``fsim.npy`` is a (D, D) matrix, and the settings stored
  in ``versions.json`` equal the current ones. An incomplete folder is redone; a complete folder made with
  *other* settings is reported as failed and left untouched (delete it or use another ``out_dir``).
* **Resumable, idempotent.** A second run skips done items ("skipped_done" in the report).
* **Deterministic.** Each item's seed is derived from the global ``seed`` and the item's *name*
  (SHA-256), never from its position, worker or shard, and FSIM runs single-threaded per item, so the
  files are byte-identical whatever ``workers`` and ``shard`` are.
* **Shardable.** Items are sorted by name; item k (0-based) belongs to shard ``k % N`` of ``shard=(i, N)``.
  Shards may run at the same time on the same ``out_dir``; each writes its own report
  (``prepare_report.shard-<i>-of-<N>.json``).
* **Nothing dropped silently.** Unreadable files, images whose short side is below ``min_size``, files
  skipped for their extension and missing paths are all listed in the report with a reason.

Image size. The official LL fragment sampler upsamples (bilinear) an image whose short side is below
224 = 7 x 32 (SPEC §2) rather than rejecting it, so small images are usable: ``min_size`` (default 32) is
only a floor below which an image is refused (FSIM's log-Gabor filters and the 32-pixel mini-patches make
no sense on a few pixels), and images with a short side below 224 are prepared with a warning in the report.

Names. An item's name is its file's stem. Two inputs with the same stem (``a.jpg`` and ``a.png``, or the
same file name in two folders) would collide: ``on_collision="error"`` (default) refuses to start and
lists them; ``on_collision="suffix"`` names each of them ``<stem>__<k>`` (k = 1, 2, ... in the order of
their full paths) and records the source path in ``versions.json``. Stems starting with "." are refused
(hidden folders are skipped by loaders).

Command line: ``python -m grepq.data.prepare INPUT... --out DIR [--workers N] [--shard I/N] ...``
(``--help`` lists the options). Exit status 0 if no input failed, 2 otherwise (see the report).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from grepq import __version__ as GREPQ_VERSION
from grepq.data.distortions import (DEFAULT_LEVELS, DEFAULT_RANGE_MODE, DEFAULT_TYPES, DISTORTION_KADIS_IDS,
                                    RANGE_MODES, distortion_specs, distortion_stack)
from grepq.data.fsim import fsim_matrix
from grepq.io import ImageReadError, expand_inputs, read_image

__all__ = ["prepare", "PrepareSummary", "item_seed", "check_item", "resolve_inputs", "main",
           "FSIM_FILE", "VERSIONS_FILE", "PARTIAL_DIR", "MIN_SIZE", "FRAGMENT_SIZE", "LOSSLESS_EXTS"]

PathLike = Union[str, os.PathLike]

FORMAT_VERSION = 1  # layout version of an item folder (stored in versions.json)
FSIM_FILE = "fsim.npy"
VERSIONS_FILE = "versions.json"
PARTIAL_DIR = ".partial"  # <out>/.partial/<name>/: items being written
REPORT_STEM = "prepare_report"
REF_TAG = "REF"  # <name>_REF.<ext>: the reference (the official HL loader picks the file whose path contains 'REF')
MIN_SIZE = 32  # default floor of the short side, pixels (see the module docstring)
FRAGMENT_SIZE = 224  # 7 x 7 grid of 32 x 32 mini-patches (SPEC §2); smaller images are upsampled by the LL sampler
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


def _settings(types: Sequence[str], levels: Sequence[int], seed: int, range_mode: str, ext: str,
              fsim_dtype: str) -> Dict[str, Any]:
    # Everything that changes an item's files; stored in versions.json and compared when resuming.
    return {
        "format": FORMAT_VERSION,
        "types": list(types),
        "levels": [int(l) for l in levels],
        "seed": int(seed),
        "range_mode": range_mode,
        "ext": ext,
        "fsim": {"dtype": fsim_dtype, "data_range": 1.0, "chromatic": True, "diagonal": 1.0,
                 "order": "sorted file names"},
    }


def _file_table(name: str, settings: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The image files of an item, in sorted file-name order (the FSIM matrix order)."""
    ext = settings["ext"]
    rows = [{"file": f"{name}_{REF_TAG}.{ext}", "type": "reference", "level": None, "value": None,
             "kadis_id": None}]
    for spec in distortion_specs(settings["types"], settings["levels"]):
        rows.append({"file": f"{name}_{spec.name}.{ext}", "type": spec.type, "level": spec.level,
                     "value": spec.value, "kadis_id": DISTORTION_KADIS_IDS[spec.type]})
    return sorted(rows, key=lambda r: r["file"])


def check_item(folder: PathLike, settings: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """State of an item folder: ``("done", "")``, ``("missing", why)``, ``("incomplete", why)`` or ``("mismatch", why)``.

    Done = ``versions.json`` readable, the folder's files are exactly those it lists plus ``fsim.npy`` and
    ``versions.json``, ``fsim.npy`` is (D, D), and (if ``settings`` is given) the stored settings equal them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "missing", "no folder"
    try:
        meta = json.loads((folder / VERSIONS_FILE).read_text(encoding="utf-8"))
        files = [row["file"] for row in meta["files"]]
        stored = meta["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return "incomplete", f"{VERSIONS_FILE} missing or unreadable ({type(exc).__name__})"
    present = set(os.listdir(folder))
    expected = set(files) | {FSIM_FILE, VERSIONS_FILE}
    if present != expected:
        missing, extra = sorted(expected - present), sorted(present - expected)
        return "incomplete", f"files differ from {VERSIONS_FILE}: missing {missing}, unexpected {extra}"
    try:
        matrix = np.load(folder / FSIM_FILE, allow_pickle=False)
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


def _process(task: _Task) -> Dict[str, Any]:
    """Make one item folder. Returns a result record (status 'done' or 'failed'); never raises for bad input."""
    start = time.perf_counter()
    result: Dict[str, Any] = {"name": task.name, "source": task.source, "status": "failed", "reason": "",
                              "warnings": []}
    out_dir = Path(task.out_dir)
    partial = out_dir / PARTIAL_DIR / task.name
    final = out_dir / task.name
    try:
        try:
            ref = read_image(task.source)  # (3, H, W) float32 in [0, 1]
        except ImageReadError as exc:
            result["reason"] = f"unreadable: {exc.reason}"
            return result
        h, w = ref.shape[-2:]
        if min(h, w) < task.min_size:
            result["reason"] = (f"too small: {h}x{w} pixels, short side {min(h, w)} < min_size {task.min_size}")
            return result
        if min(h, w) < FRAGMENT_SIZE:
            result["warnings"].append(f"short side {min(h, w)} < {FRAGMENT_SIZE}: the LL fragment sampler "
                                      f"will upsample it (bilinear), as the official loader does")
        settings = task.settings
        ref_u8 = np.round(ref.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)  # 8-bit reference (H, W, 3)
        seed = item_seed(settings["seed"], task.name)
        stack = distortion_stack(ref_u8.astype(np.float32) / 255.0, settings["types"], settings["levels"],
                                 seed=seed, range_mode=settings["range_mode"])
        ext = settings["ext"]
        arrays = {f"{task.name}_{REF_TAG}.{ext}": ref_u8}
        for dname, img in stack:
            arrays[f"{task.name}_{dname}.{ext}"] = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
        table = _file_table(task.name, settings)
        if sorted(arrays) != [row["file"] for row in table]:  # guards the naming scheme against itself
            raise RuntimeError(f"internal error: files {sorted(arrays)} do not match {table}")

        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        for fname, arr in arrays.items():
            _save_image(arr, partial / fname, ext)
        order = [row["file"] for row in table]
        versions = torch.from_numpy(np.stack([arrays[f] for f in order])).permute(0, 3, 1, 2).to(torch.float64) / 255.0
        with _torch_threads(1):  # one thread: identical bits in every worker layout
            matrix = fsim_matrix(versions, dtype=getattr(torch, settings["fsim"]["dtype"])).to(torch.float64).numpy()
        np.save(partial / FSIM_FILE, matrix, allow_pickle=False)
        meta = {"name": task.name, "source": task.source, "size": [int(h), int(w)], "item_seed": seed,
                "files": table, "settings": settings, "grepq_version": GREPQ_VERSION}
        (partial / VERSIONS_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

        if final.exists():  # an incomplete folder from an earlier run (done/mismatch items are never given here)
            shutil.rmtree(final)
        os.replace(partial, final)
        result["status"] = "done"
        return result
    except Exception as exc:  # one bad item must not stop a 5,000-image run; it is reported with the reason
        result["reason"] = f"error: {type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=5)
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)
        return result
    finally:
        result["seconds"] = round(time.perf_counter() - start, 3)


def _worker_init() -> None:
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class PrepareSummary:
    """What one ``prepare`` call did. Lists hold dicts with at least ``name``/``source`` (or ``path``) and ``reason``."""

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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["status", "name", "source", "reason"])
    for status, rows in (("done", summary.done), ("skipped_done", summary.skipped_done),
                         ("failed", summary.failed), ("ignored", summary.ignored)):
        for r in rows:
            writer.writerow([status, r.get("name", ""), r.get("source", r.get("path", "")), r.get("reason", "")])
    for r in summary.warnings:
        writer.writerow(["warning", r["name"], r["source"], r["warning"]])
    csv_path = path.with_suffix(".csv")
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, csv_path)
    return path


def prepare(inputs: Union[PathLike, Sequence[PathLike]], out_dir: PathLike, *,
            types: Sequence[str] = DEFAULT_TYPES, levels: Sequence[int] = DEFAULT_LEVELS, seed: int = 0,
            min_size: int = MIN_SIZE, ext: str = "png", workers: int = 1, shard: Tuple[int, int] = (0, 1),
            progress: bool = True, range_mode: str = DEFAULT_RANGE_MODE, fsim_dtype: str = "float64",
            on_collision: str = "error", recursive: bool = False) -> PrepareSummary:
    """Build the training folders for ``inputs`` (folders, image files or list files) under ``out_dir``.

    ``types`` x ``levels`` distortions (names and levels of :mod:`grepq.data.distortions`) per image, written
    next to the 8-bit reference as lossless ``ext`` files, with ``fsim.npy`` and ``versions.json`` (module
    docstring). ``workers`` processes (spawned) work in parallel; ``shard=(i, N)`` restricts the run to the
    items k with k % N == i in name order. Returns a :class:`PrepareSummary` and writes the report files.
    """
    t0 = time.perf_counter()
    ext = ext.lower().lstrip(".")
    if ext not in LOSSLESS_EXTS:
        raise ValueError(f"ext: expected a lossless format, one of {LOSSLESS_EXTS}, got {ext!r}")
    if range_mode not in RANGE_MODES:
        raise ValueError(f"range_mode: expected one of {RANGE_MODES}, got {range_mode!r}")
    if fsim_dtype not in ("float64", "float32"):
        raise ValueError(f"fsim_dtype: expected 'float64' or 'float32', got {fsim_dtype!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size: expected a positive integer, got {min_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    try:
        shard_i, shard_n = (int(shard[0]), int(shard[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {shard!r}") from None
    if len(shard) != 2 or shard_n < 1 or not 0 <= shard_i < shard_n:
        raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {shard!r}")
    distortion_specs(types, levels)  # clear errors for unknown types / levels before any work
    settings = _settings(types, levels, int(seed), range_mode, ext, fsim_dtype)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary(out_dir=out, shard=(shard_i, shard_n))
    images, problems = resolve_inputs(inputs, recursive=recursive)
    out_abs = Path(os.path.abspath(out))
    inside = [p for p in images if out_abs in Path(os.path.abspath(p)).parents]
    images = [p for p in images if out_abs not in Path(os.path.abspath(p)).parents]
    problems = list(problems) + [(str(p), "inside out_dir (an output of prepare, not an input)") for p in inside]
    for path, reason in problems:
        entry = {"path": path, "reason": reason}
        if reason.startswith("no such file"):
            summary.failed.append({"name": "", "source": path, "reason": reason})
        else:
            summary.ignored.append(entry)
    items, refused = _assign_names(images, on_collision)
    for path, reason in refused:
        summary.failed.append({"name": "", "source": path, "reason": reason})

    tasks: List[_Task] = []
    for k, (name, path) in enumerate(items):
        if k % shard_n != shard_i:
            summary.other_shards += 1
            continue
        state, why = check_item(out / name, settings)
        if state == "done":
            summary.skipped_done.append({"name": name, "source": str(path)})
        elif state == "mismatch":
            summary.failed.append({"name": name, "source": str(path), "reason": why})
        else:
            tasks.append(_Task(name=name, source=str(path), out_dir=str(out), settings=settings,
                               min_size=int(min_size)))

    results: List[Dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc=f"prepare {shard_i}/{shard_n}", unit="img", disable=not progress)
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

    for res in sorted(results, key=lambda r: r["name"]):
        for warning in res.pop("warnings"):
            summary.warnings.append({"name": res["name"], "source": res["source"], "warning": warning})
        if res["status"] == "done":
            summary.done.append({"name": res["name"], "source": res["source"], "seconds": res["seconds"]})
        else:
            summary.failed.append({k: v for k, v in res.items() if k != "status"})
    with contextlib.suppress(OSError):  # other shards may still be using it
        (out / PARTIAL_DIR).rmdir()
    summary.seconds = time.perf_counter() - t0
    summary.report_path = _write_report(summary, settings, [str(p) for p in (
        [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)], int(min_size))
    return summary


# ------------------------------------------------------------------------------------------------ command line


def _parse_shard(text: str) -> Tuple[int, int]:
    try:
        i, n = text.split("/")
        return int(i), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of :func:`prepare` (shared by ``grepq prepare`` and ``python -m grepq.data.prepare``)."""
    parser.add_argument("inputs", nargs="+", help="image folders, image files or list files (.txt: one path a line)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--types", default=",".join(DEFAULT_TYPES),
                        help=f"comma-separated distortion types (default {','.join(DEFAULT_TYPES)})")
    parser.add_argument("--levels", default=",".join(str(l) for l in DEFAULT_LEVELS),
                        help="comma-separated KADIS levels 1..5 (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="global seed (default %(default)s)")
    parser.add_argument("--min-size", type=int, default=MIN_SIZE, help="refuse images whose short side is smaller")
    parser.add_argument("--ext", default="png", choices=LOSSLESS_EXTS)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default %(default)s)")
    parser.add_argument("--shard", type=_parse_shard, default=(0, 1), help="I/N: this run does items k %% N == I")
    parser.add_argument("--range-mode", default=DEFAULT_RANGE_MODE, choices=RANGE_MODES)
    parser.add_argument("--fsim-dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--on-collision", default="error", choices=("error", "suffix"))
    parser.add_argument("--recursive", action="store_true", help="search input folders recursively")
    parser.add_argument("--no-progress", action="store_true")


def run_args(args: argparse.Namespace) -> int:
    """Run :func:`prepare` from parsed options. Returns the exit status (0: no failures, 2: some inputs failed)."""
    levels = []
    for tok in args.levels.split(","):
        try:
            levels.append(int(tok))
        except ValueError:
            print(f"--levels: expected integers 1..5, got {tok!r}", file=sys.stderr)
            return 2
    summary = prepare(args.inputs, args.out, types=[t for t in args.types.split(",") if t], levels=levels,
                      seed=args.seed, min_size=args.min_size, ext=args.ext, workers=args.workers,
                      shard=args.shard, progress=not args.no_progress, range_mode=args.range_mode,
                      fsim_dtype=args.fsim_dtype, on_collision=args.on_collision, recursive=args.recursive)
    print(summary)
    for row in summary.failed:
        print(f"failed: {row.get('source')}: {row.get('reason')}", file=sys.stderr)
    return 0 if summary.ok else 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line of :func:`prepare`. Returns the exit status (0: no failures, 2: some inputs failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m grepq.data.prepare",
        description="Synthesise the GRepQ low-level training set: distorted versions + FSIM per image.")
    add_arguments(parser)
    return run_args(parser.parse_args(argv))


if __name__ == "__main__":
    # Run the function of the imported module (not of __main__), so that spawned workers unpickle its types.
    from grepq.data.prepare import main as _main

    sys.exit(_main())
