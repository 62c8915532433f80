"""``grepq prepare``: one folder per photograph with its distorted versions and their FSIM (docs/method.md §6).

Writes the layout of :mod:`grepq.data.layout` (which owns the names)::

    <out>/<name>/<name>_REF.png              the reference, 8-bit RGB
    <out>/<name>/<name>_<type>_<level>.png   the versions the recipe (:mod:`grepq.data.recipes`) gives
    <out>/<name>/fsim.npy                    (D, D) float64 FSIM between the D image files in sorted name order
                                             (the training loader's order), diagonal 1, from the 8-bit files
                                             (/ 255, as the official loader) by :func:`grepq.data.fsim.fsim_matrix`
    <out>/<name>/versions.json               that order, each file's KADIS id, type, level and parameter (and
                                             motion blur's angle, "random"), the settings and the grepq version
    <out>/prepare_report.json, .csv          done / already done / failed / ignored inputs, with reasons

``naming="kadis"`` writes the official loader's layout instead (``<name>.bmp/<name>_<id:02d>_<level:02d>.bmp``,
metadata in ``<out>/.grepq/``, the list ``LIVEFB.csv``). Guarantees: an item is written into ``<out>/.partial/``
and moved into place (a killed run leaves nothing half-done); an item is done only if its files are exactly those
``versions.json`` lists, ``fsim.npy`` is (D, D) and its settings equal the current ones (a folder made with other
settings fails and is left alone); reruns skip done items; each item's randomness comes from (seed, name) only, so
the files are byte-identical whatever ``workers`` and ``shard`` are; item k of the sorted names belongs to shard
``k % N``; every input not prepared is in the report with its reason. Images with a short side below ``min_size``
are refused, below 224 prepared with a warning (the LL fragment sampler upsamples them, as the official loader).
Two inputs with the same stem are refused (``on_collision="error"``) or named ``<stem>__<k>`` (``"suffix"``).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
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
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

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

__all__ = ["prepare", "PrepareSettings", "PrepareSummary", "item_seed", "check_item", "resolve_inputs",
           "FSIM_FILE", "VERSIONS_FILE", "PARTIAL_DIR", "MIN_SIZE", "FRAGMENT_SIZE", "LOSSLESS_EXTS"]

PathLike = Union[str, os.PathLike]

FORMAT_VERSION = 2  # layout version of an item folder (stored in versions.json)
LEGACY_FORMAT_VERSION = 1  # grepq's format before recipes, still written by recipe "fixed" with grepq naming
REPORT_STEM = "prepare_report"
MIN_SIZE = 32  # refuse images whose short side is smaller (FSIM's filters and 32-px mini-patches need more)
FRAGMENT_SIZE = 224  # 7 x 7 mini-patches of 32 (docs/method.md §2); smaller images are upsampled by the LL sampler
LOSSLESS_EXTS = ("png", "bmp", "tif", "tiff", "ppm")  # the versions must be stored losslessly
LIST_FILE_SUFFIXES = (".txt", ".lst", ".list")  # an input file with this suffix is a list of paths, one a line
_PIL_FORMATS = {"png": "PNG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF", "ppm": "PPM"}


@dataclass(frozen=True)
class PrepareSettings:
    """The options of :func:`prepare` (``grepq prepare --help``).

    ``recipe`` (a name of :mod:`grepq.data.recipes` or a Recipe; None: ``authors``, or ``grid`` when ``types`` /
    ``levels`` are given) with ``types``, ``levels``, ``n_types``, ``n_levels`` overriding its pools and counts;
    ``ext`` None = png (bmp with ``naming="kadis"``); ``shard=(i, N)``: items k with k % N == i in name order.
    """

    recipe: Optional[Union[str, Recipe]] = None
    types: Optional[Sequence[str]] = None
    levels: Optional[Sequence[int]] = None
    n_types: Optional[int] = None
    n_levels: Optional[int] = None
    seed: int = 0
    min_size: int = MIN_SIZE
    ext: Optional[str] = None
    naming: str = "grepq"
    workers: int = 1
    shard: Tuple[int, int] = (0, 1)
    progress: bool = True
    range_mode: str = DEFAULT_RANGE_MODE
    fsim_dtype: str = "float64"
    on_collision: str = "error"
    recursive: bool = False

    def checked(self) -> "PrepareSettings":
        """These settings with ``ext`` and ``shard`` resolved; a ValueError naming the first bad option."""
        ext = (self.ext or ("bmp" if self.naming == "kadis" else "png")).lower().lstrip(".")
        for what, value, choices in (("ext", ext, LOSSLESS_EXTS), ("naming", self.naming, NAMINGS),
                                     ("range_mode", self.range_mode, RANGE_MODES),
                                     ("fsim_dtype", self.fsim_dtype, ("float64", "float32"))):
            if value not in choices:
                kind = "a lossless format, " if what == "ext" else ""
                raise ValueError(f"{what}: expected {kind}one of {choices}, got {value!r}")
        for what, value, low in (("seed", self.seed, 0), ("min_size", self.min_size, 1), ("workers", self.workers, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{what}: expected an integer >= {low}, got {value!r}")
        try:
            i, n = (int(v) for v in self.shard)
        except (TypeError, ValueError):
            raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {self.shard!r}") from None
        if not 0 <= i < n:
            raise ValueError(f"shard: expected (i, N) with 0 <= i < N, got {self.shard!r}")
        return dataclasses.replace(self, ext=ext, shard=(i, n), seed=int(self.seed), min_size=int(self.min_size))

    def item_settings(self) -> Dict[str, Any]:
        """What changes an item's files: stored in versions.json and compared when resuming (``checked()`` first).

        Recipe ``fixed`` with grepq naming gives the settings grepq stored before recipes (format 1), so that
        those folders count as done and a rerun writes the same bytes.
        """
        recipe = self.recipe if isinstance(self.recipe, Recipe) else make_recipe(
            self.recipe, self.types, self.levels, self.n_types, self.n_levels)
        fsim = {"dtype": self.fsim_dtype, "data_range": 1.0, "chromatic": True, "diagonal": 1.0,
                "order": "sorted file names"}
        if recipe.name == "fixed" and self.naming == "grepq":
            return {"format": LEGACY_FORMAT_VERSION, "types": list(recipe.types),
                    "levels": [int(lv) for lv in recipe.levels], "seed": self.seed, "range_mode": self.range_mode,
                    "ext": self.ext, "fsim": fsim}
        return {"format": FORMAT_VERSION, "recipe": recipe.describe(), "seed": self.seed,
                "range_mode": self.range_mode, "ext": self.ext, "naming": self.naming, "fsim": fsim}


def item_seed(seed: int, name: str) -> int:
    """The seed of one item: 64 bits of SHA-256 of (global seed, item name). Independent of order and workers."""
    digest = hashlib.sha256(f"grepq.prepare\0{int(seed)}\0{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def _recipe_of(settings: Dict[str, Any]) -> Recipe:
    if settings["format"] == LEGACY_FORMAT_VERSION:
        return Recipe("fixed", tuple(settings["types"]), tuple(settings["levels"]))
    r = settings["recipe"]
    return Recipe(r["name"], tuple(r["types"]), tuple(r["levels"]), r["n_types"], r["n_levels"])


def _file_table(name: str, settings: Dict[str, Any], specs: Sequence[DistortionSpec],
                seed: int) -> List[Dict[str, Any]]:
    """The image files of an item (item seed ``seed``) with what each one is, in sorted file-name order (the FSIM
    matrix order); format 2 records the drawn parameters (motion_blur's angle) under "random"."""
    ext, legacy = settings["ext"], settings["format"] == LEGACY_FORMAT_VERSION
    naming = settings.get("naming", "grepq")
    rows = [{"file": reference_file(name, ext), "type": "reference", "level": None,
             ("value" if legacy else "parameter"): None, "kadis_id": None}]
    for spec in specs:
        kt, file = spec.kadis, version_file(name, spec, ext, naming)
        if legacy:  # the rows grepq wrote before recipes (format 1)
            rows.append({"file": file, "type": spec.type, "level": spec.level, "value": spec.value,
                         "kadis_id": kt.id})
            continue
        row = {"file": file, "type": spec.type, "kadis_id": kt.id, "kadis_function": kt.kadis_function,
               "level": spec.level, "parameter": spec.value, "parameter_meaning": kt.parameter}
        if kt.substitute:
            row["substitute"] = kt.substitute
        if spec.random_draws(seed):
            row["random"] = spec.random_draws(seed)
        rows.append(row)
    return sorted(rows, key=lambda r: r["file"])


def check_item(folder: PathLike, settings: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """State of an item folder: ("done", ""), or ("missing" | "incomplete" | "mismatch", why).

    Done = ``versions.json`` readable, the folder holds exactly the files it lists (plus ``fsim.npy`` and
    ``versions.json`` unless in the sidecar), ``fsim.npy`` is (D, D), and the stored settings equal ``settings``.
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


def resolve_inputs(inputs: Union[PathLike, Sequence[PathLike]], recursive: bool = False
                   ) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Image files from folders, image files and list files (``.txt``/``.lst``/``.list``: one path a line, relative
    to the list file's folder, ``#`` comments) -> (images, [(path, reason) of non-images and missing paths])."""
    paths: List[Path] = []
    for p in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        p = Path(p)
        if not (p.is_file() and p.suffix.lower() in LIST_FILE_SUFFIXES):
            paths.append(p)
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                paths.append(Path(line) if Path(line).is_absolute() else p.parent / line)
    return expand_inputs(paths, recursive=recursive)


def _assign_names(images: Sequence[Path], on_collision: str) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, str]]]:
    """(name, path) per input, sorted by name; and the inputs refused for their name."""
    if on_collision not in ("error", "suffix"):
        raise ValueError(f"on_collision: expected 'error' or 'suffix', got {on_collision!r}")
    by_stem: Dict[str, List[Path]] = {}
    for p in dict.fromkeys(Path(os.path.abspath(p)) for p in images):  # the same file given twice counts once
        by_stem.setdefault(p.stem, []).append(p)
    collisions = {stem: sorted(ps, key=str) for stem, ps in by_stem.items() if len(ps) > 1}
    if collisions and on_collision == "error":
        lines = "; ".join(f"{stem!r}: {[str(p) for p in ps]}" for stem, ps in sorted(collisions.items()))
        raise ValueError(f"inputs with the same file stem would share an output folder: {lines}. "
                         f"Rename them or pass on_collision='suffix'")
    named: Dict[str, Path] = {}
    refused: List[Tuple[str, str]] = []
    for stem, ps in by_stem.items():
        for k, p in enumerate(sorted(ps, key=str), start=1):
            name = f"{stem}__{k}" if stem in collisions else stem
            if not name or name.startswith("."):
                refused.append((str(p), f"file name {p.name!r}: an item name may not start with '.'"))
            elif name in named:
                raise ValueError(f"item name {name!r} is used by {named[name]} and {p} even after adding "
                                 f"suffixes; rename one of them")
            else:
                named[name] = p
    return sorted(named.items()), refused


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
    return arrays, _file_table(task.name, settings, specs, seed)


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
        options = {"compress_level": 6} if settings["ext"] == "png" else {}
        Image.fromarray(arr).save(partial / fname, format=_PIL_FORMATS[settings["ext"]], **options)
    order = [row["file"] for row in table]
    versions = torch.from_numpy(np.stack([arrays[f] for f in order])).permute(0, 3, 1, 2).to(torch.float64) / 255.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: identical bits in every worker layout
    try:
        matrix = fsim_matrix(versions, dtype=getattr(torch, settings["fsim"]["dtype"])).to(torch.float64).numpy()
    finally:
        torch.set_num_threads(threads)
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
    """What one ``prepare`` call did; the lists hold dicts with ``name``/``source`` (or ``path``) and ``reason``."""

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
    lists = {"done": summary.done, "skipped_done": summary.skipped_done, "failed": summary.failed,
             "ignored": summary.ignored, "warnings": summary.warnings}
    report = {"grepq_version": GREPQ_VERSION, "out_dir": str(summary.out_dir), "inputs": inputs, "shard": [i, n],
              "settings": settings, "min_size": min_size,
              "counts": {**{k: len(v) for k, v in lists.items()}, "other_shards": summary.other_shards},
              "seconds": round(summary.seconds, 3), **lists}
    path = summary.out_dir / f"{stem}.json"
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["status", "name", "source", "reason"])
    for status in ("done", "skipped_done", "failed", "ignored"):
        for r in lists[status]:
            writer.writerow([status, r.get("name", ""), r.get("source", r.get("path", "")), r.get("reason", "")])
    writer.writerows(["warning", r["name"], r["source"], r["warning"]] for r in summary.warnings)
    with atomic_write(path.with_suffix(".csv")) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _collect_tasks(inputs, out: Path, summary: PrepareSummary, opts: PrepareSettings,
                   settings: Dict[str, Any]) -> List[_Task]:
    """Resolve the inputs, report the ignored / refused / already done ones, and return this shard's tasks."""
    images, problems = resolve_inputs(inputs, recursive=opts.recursive)
    out_abs = Path(os.path.abspath(out))
    inside = [p for p in images if out_abs in Path(os.path.abspath(p)).parents]
    images = [p for p in images if out_abs not in Path(os.path.abspath(p)).parents]
    problems = list(problems) + [(str(p), "inside out_dir (an output of prepare, not an input)") for p in inside]
    for path, reason in problems:
        if reason.startswith("no such file"):
            summary.failed.append({"name": "", "source": path, "reason": reason})
        else:
            summary.ignored.append({"path": path, "reason": reason})
    items, refused = _assign_names(images, opts.on_collision)
    for path, reason in refused:
        summary.failed.append({"name": "", "source": path, "reason": reason})
    shard_i, shard_n = summary.shard
    tasks: List[_Task] = []
    for k, (name, path) in enumerate(items):
        if k % shard_n != shard_i:
            summary.other_shards += 1
            continue
        if opts.naming == "kadis" and "." in name:
            summary.failed.append({"name": name, "source": str(path), "reason": (
                "naming 'kadis': the official loader cuts a folder name at its first '.'; rename the file")})
            continue
        state, why = check_item(out / item_folder_name(name, opts.naming), settings)
        if state == "done":
            summary.skipped_done.append({"name": name, "source": str(path)})
        elif state == "mismatch":
            summary.failed.append({"name": name, "source": str(path), "reason": why})
        else:
            tasks.append(_Task(name, str(path), str(out), settings, opts.min_size))
    return tasks


def _run_tasks(tasks: List[_Task], workers: int, progress: bool, desc: str) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []
    with tqdm(total=len(tasks), desc=desc, unit="img", disable=not progress) as bar:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(_process(task))
                bar.update(1)
            return results
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
        with ctx.Pool(processes=min(workers, len(tasks)), initializer=_worker_init) as pool:
            for res in pool.imap_unordered(_process, tasks, chunksize=1):
                results.append(res)
                bar.update(1)
    return results


def prepare(inputs: Union[PathLike, Sequence[PathLike]], out_dir: PathLike,
            settings: Optional[PrepareSettings] = None, **options: Any) -> PrepareSummary:
    """Build the training folders for ``inputs`` (folders, image files or list files) under ``out_dir``.

    ``settings`` (default :class:`PrepareSettings`), with ``options`` (its field names) replacing fields. Runs
    ``workers`` spawned processes; returns a :class:`PrepareSummary` and writes the report files.
    """
    t0 = time.perf_counter()
    opts = dataclasses.replace(settings or PrepareSettings(), **options).checked()
    item_settings = opts.item_settings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary(out_dir=out, shard=opts.shard)
    tasks = _collect_tasks(inputs, out, summary, opts, item_settings)
    results = _run_tasks(tasks, opts.workers, opts.progress, f"prepare {opts.shard[0]}/{opts.shard[1]}")
    for res in sorted(results, key=lambda r: r["name"]):
        for warning in res.pop("warnings"):
            summary.warnings.append({"name": res["name"], "source": res["source"], "warning": warning})
        if res["status"] == "done":
            summary.done.append({"name": res["name"], "source": res["source"], "seconds": res["seconds"]})
        else:
            summary.failed.append({k: v for k, v in res.items() if k != "status"})
    with contextlib.suppress(OSError):  # other shards may still be using it
        (out / PARTIAL_DIR).rmdir()
    if opts.naming == "kadis":
        write_official_list(out)
    summary.seconds = time.perf_counter() - t0
    given = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    summary.report_path = _write_report(summary, item_settings, [str(p) for p in given], opts.min_size)
    return summary
