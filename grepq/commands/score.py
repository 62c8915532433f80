"""``grepq score PATH...``: zero-shot Q_L, Q_H and GRepQ_Z of images and folders (with ``--regressor``: q_pred).

Output: CSV (header and one row per scored image, nothing else) with the run's metadata in ``<stem>.meta.json``
beside it, or JSON ``{"meta": {...}, "scores": [rows]}``; the metadata keys are listed in :func:`run_meta`.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional

from ..scoring.settings import RELEASED_FILES, check_device, scoring_keys
from ..version import __version__

#: The output columns (q_pred only with --regressor), described in the metadata.
COLUMNS = {
    "image": "the image file, as given (folders expanded)",
    "q_low": "Q_L, low-level zero-shot quality (paper Eq. 6; higher is better; empty if not computed)",
    "q_high": "Q_H, high-level zero-shot quality (paper Eq. 2; higher is better; empty if not computed)",
    "q_total": "GRepQ_Z = Q_L + Q_H (paper Eq. 7)",
    "q_pred": "the regressor's prediction, on its labels' scale (see regressor.polarity)",
    "upsampled": "1 if the image was scored upsampled (smaller than two 96x96 patches or CLIP's 32 px), else 0",
}
#: Errors reported as "grepq score: message" with exit status 2.
_KNOWN_ERRORS = (ValueError, FileNotFoundError, RuntimeError, TypeError, OSError)


def add_weight_options(p: argparse.ArgumentParser) -> None:
    """The weight files and scoring options of ``grepq score``, ``eval`` and ``fit`` (scoring ones from
    :func:`grepq.scoring.settings.scoring_keys`)."""
    p.add_argument("--ll-weights",
                   help="low-level weights: the official low_level_model_weights.tar or a grepq checkpoint")
    p.add_argument("--hl-weights", help="high-level weights: the official high_level_model_weights.pth or a grepq "
                                        "checkpoint ('stock-clip' scores with CLIP's own image encoder)")
    p.add_argument("--clip-weights", help="CLIP weights: RN50.pt, a state dict file, or a model name "
                                          "(default: $GREPQ_CLIP_WEIGHTS, else RN50 from CLIP's cache)")
    p.add_argument("--pristine", help="pristine patches: the official .hdf5 file or a folder of pristine images")
    p.add_argument("--save-pristine", help="with a pristine folder: also write the selected patches to this .hdf5")
    for name, key in scoring_keys().items():
        flag = "--" + name.replace("_", "-")
        if key.type is bool:
            p.add_argument(flag, action="store_true", help=key.doc)
        elif key.items is not None:
            p.add_argument(flag, default=",".join(key.default), help=f"{key.doc}; comma list (default: %(default)s)")
        else:
            shown = "" if key.default is None else " (default: %(default)s)"
            p.add_argument(flag, type=key.type, choices=key.choices, default=key.default, help=key.doc + shown)




def _components(args: argparse.Namespace) -> List[str]:
    return [c.strip() for c in args.components.split(",") if c.strip()]


def scorer_from_args(args: argparse.Namespace, device: Optional[str] = None):
    """A :class:`grepq.GRepQ` from the options of :func:`add_weight_options` (``device`` replaces ``--device``)."""
    from ..api import GRepQ
    settings = {name: getattr(args, name) for name in scoring_keys()}
    settings["components"] = _components(args)
    settings["device"] = device or args.device
    settings["progress"] = not getattr(args, "no_progress", False)
    needs = {"ll": [("--ll-weights", args.ll_weights, "low_level_model_weights.tar"),
                    ("--pristine", args.pristine, "pristine_patches_096_0.75_0.80.hdf5")],
             "hl": [("--hl-weights", args.hl_weights, "high_level_model_weights.pth")]}
    for comp in settings["components"]:
        for flag, value, file in needs.get(comp, []):
            if value is None:
                raise ValueError(f"no {flag}: give the released {file} ({RELEASED_FILES}), or leave out the {comp} "
                                 "component (--components)")
    # --cache-dir / --no-cache are grepq score's; eval and fit use the default cache folder
    cache = False if getattr(args, "no_cache", False) else (getattr(args, "cache_dir", None) or True)
    return GRepQ.from_files(ll_weights=args.ll_weights, hl_weights=args.hl_weights, clip_weights=args.clip_weights,
                            pristine=args.pristine, save_pristine=args.save_pristine, cache=cache, **settings)


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="zero-shot quality of images and folders (Q_L, Q_H, GRepQ_Z)",
                       description="Zero-shot GRepQ scores: one row per image with image, q_low, q_high, q_total "
                                   "(and q_pred with --regressor), upsampled.",
                       epilog=SCALE_OUT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files and/or folders of images")
    add_weight_options(p)
    p.add_argument("--output", "-o", help="write .csv (with its metadata in <stem>.meta.json beside it) or .json "
                                          "(default: CSV to standard output)")
    p.add_argument("--recursive", "-r", action="store_true", help="search folders' subfolders too")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--maps", metavar="DIR", help="write each image's quality map into DIR: <name>-<hash>.npy "
                   "(float32, the patch grid) and .png (overlay with a colour bar); needs the ll component")
    p.add_argument("--report", metavar="DIR", help="then write the HTML report of --output into DIR "
                                                   "(as 'grepq report OUTPUT --out DIR')")
    p.add_argument("--shard", metavar="I/N", help="score only share I of N (0 <= I < N) of the images and write it "
                   "to OUTPUT.shard-I-of-N.jsonl (see 'Several processes or machines' below)")
    p.add_argument("--merge-shards", action="store_true",
                   help="write --output from the finished parts OUTPUT.shard-*-of-N.jsonl, rows in input order, "
                        "then delete the parts (no PATH or weights needed)")
    p.add_argument("--regressor", metavar="FILE", help="a regressor file of 'grepq fit': adds q_pred (on its labels' "
                                                       "scale; polarity in the metadata)")
    p.add_argument("--allow-weight-mismatch", action="store_true",
                   help="with --regressor: predict even if the weights differ from the ones it was fit on (warns)")
    p.add_argument("--feature-cache", default="none", metavar="DIR",
                   help="with --regressor: keep the images' features in this feature cache (as grepq eval's "
                        "--cache; default none)")
    p.add_argument("--cache-dir", default=None,
                   help="where the pristine statistics and prompt embeddings are kept between runs (default: "
                        "$GREPQ_CACHE_DIR, else $XDG_CACHE_HOME/grepq, else ~/.cache/grepq)")
    p.add_argument("--no-cache", action="store_true",
                   help="compute the pristine statistics and prompt embeddings afresh, reading and writing no cache "
                        "(same scores)")
    p.set_defaults(func=run)


SCALE_OUT_HELP = """\
Several processes or machines (grepq/parallel.py):
  The images (folders expanded, in input order) are cut into N contiguous shares.
  torchrun --nproc_per_node 4 -m grepq score PATH... -o scores.csv --device cuda [...]
      each process scores its share on cuda:LOCAL_RANK (or on the CPU with --device cpu) into
      scores.csv.shard-<rank>-of-4.jsonl; rank 0 then writes scores.csv (rows in input order, the file one
      process writes) and deletes the parts.
  grepq score PATH... -o scores.csv --shard I/N [...]      (one independent job per I = 0..N-1; in a Slurm
                                                          array --array=0-(N-1): --shard $SLURM_ARRAY_TASK_ID/N)
  grepq score --merge-shards -o scores.csv                (once all N jobs are done)
      each job writes scores.csv.shard-I-of-N.jsonl; the merge writes scores.csv and deletes the parts.
  A killed share run again with the same command resumes from its part. Failed images are reported by the
  job and by the merge, and make the exit status 1, as in one process.
"""


def run_meta(args: argparse.Namespace, scorer, skipped: List[dict], regressor=None) -> dict:
    """The run's metadata; :func:`write_scores` adds "columns", "failed" and "upsampled", --maps "maps"."""
    reg = None
    if regressor is not None:
        labels = regressor.info.get("labels") or {}
        reg = {"file": str(args.regressor), "polarity": regressor.polarity,
               "label_range": [labels.get("min"), labels.get("max")], "feature_set": regressor.feature_set,
               "regressor": regressor.info.get("regressor"), "alpha": regressor.info.get("alpha")}
    settings = dict(scorer.settings.as_dict(), pos_embedding=args.pos_embedding)
    command = shlex.join(["grepq", *getattr(args, "argv", sys.argv[1:])])
    return {"grepq_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "cwd": os.getcwd(), "command": command, "settings": settings, "weights": scorer.fingerprints(),
            "regressor": reg, "skipped": skipped, "maps": None}


def write_scores(rows: List[dict], meta: dict, output: Optional[str]) -> None:
    """Scored rows (:func:`grepq.eval.score_shards.row_dict`, q_pred with a regressor) and the metadata to .csv +
    ``<stem>.meta.json``, to .json, or as CSV to standard output (no metadata)."""
    columns = [c for c in COLUMNS if c != "q_pred" or meta["regressor"] is not None]
    ok = [{c: r[c] for c in columns} for r in rows if not r.get("error")]
    meta = dict(meta, columns={c: COLUMNS[c] for c in columns},
                failed=[{"image": r["image"], "reason": r["error"]} for r in rows if r.get("error")],
                upsampled=[r["image"] for r in ok if r["upsampled"]])
    if output is None:
        _write_csv(sys.stdout, columns, ok)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"meta": meta, "scores": ok}, indent=1) + "\n")
        return
    with open(path, "w", newline="") as fh:
        _write_csv(fh, columns, ok)
    path.with_name(path.stem + ".meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def _write_csv(fh, columns: List[str], rows: List[dict]) -> None:
    w = csv.DictWriter(fh, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _KNOWN_ERRORS as exc:
        print(f"grepq score: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from ..eval.score_shards import row_dict, score_items
    from ..parallel import ShardError, under_torchrun
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--output must end in .csv or .json, got {args.output}")
    check_device(args.device)
    scaled = args.shard is not None or args.merge_shards or under_torchrun()
    if scaled and (args.regressor or args.maps):
        raise ValueError("--regressor and --maps do not combine with --shard, --merge-shards or torchrun (score the "
                         "shards, then run them on the images in one process)")
    if (scaled or args.report) and not args.output:
        raise ValueError("--shard, --merge-shards, torchrun and --report write files next to --output FILE "
                         "(.csv or .json): give one")
    if args.merge_shards:
        if args.paths or args.shard is not None:
            raise ShardError("--merge-shards takes no PATH or --shard: the part files list their images")
        return _merge(args)
    if not args.paths:
        raise ValueError("give at least one image file or folder (PATH)")
    items, skipped = score_items(args.paths, args.recursive)
    if scaled:
        return _run_scaled(args, items, skipped)
    if args.maps and args.regressor:
        raise ValueError("--maps does not combine with --regressor: write the maps in a run without it")
    if args.regressor:
        return _run_with_regressor(args, items, skipped)
    if args.maps and "ll" not in _components(args):
        raise ValueError("--maps draws Q_L's per-patch distances: it needs the ll component")
    scorer = scorer_from_args(args)
    scored = scorer.score(items, on_error="record", maps=bool(args.maps))
    meta = run_meta(args, scorer, skipped)
    if args.maps:
        meta["maps"] = save_maps(scored, args.maps, scorer.settings)
    return _finish(args, [row_dict(r, scorer.settings) for r in scored], meta)


def _finish(args: argparse.Namespace, rows: List[dict], meta: dict) -> int:
    """Write the output (and --report), tell what failed and was skipped; the exit status (1 if an image failed)."""
    write_scores(rows, meta, args.output)
    if args.report:
        from ..eval.report import write_report
        write_report(args.output, args.report, progress=not args.no_progress)
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        print(f"grepq score: failed: {r['error']}", file=sys.stderr)
    if meta["skipped"]:
        print(f"grepq score: skipped {len(meta['skipped'])} paths (not images, empty folders, subfolders without "
              f"--recursive): {', '.join(s['path'] for s in meta['skipped'][:5])}"
              f"{' ...' if len(meta['skipped']) > 5 else ''}", file=sys.stderr)
    if failed:
        print(f"grepq score: {len(failed)} of {len(rows)} images failed; {len(rows) - len(failed)} scored",
              file=sys.stderr)
    if not rows:
        print("grepq score: no images found", file=sys.stderr)
        return 1
    return 1 if failed else 0


def save_maps(rows: list, out_dir: str, settings) -> dict:
    """Each scored row's ``quality_map`` into ``out_dir`` as ``<stem>-<hash of its path>.npy`` (float32 (nh, nw))
    and ``.png`` (the photo with the map over it, :func:`grepq.scoring.maps.save_map_png`); the files by image."""
    import numpy as np

    from ..data.io import read_image
    from ..scoring.maps import save_map_png
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: Dict[str, Dict[str, str]] = {}
    for r in rows:
        if r.error is not None or r.quality_map is None:
            continue
        stem = f"{Path(r.image).stem}-{hashlib.sha1(r.image.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
        np.save(out / f"{stem}.npy", r.quality_map.values.numpy().astype(np.float32))
        image = read_image(r.image, settings.exif_orientation)  # save_map_png upsamples a small one as Q_L does
        save_map_png(image, r.quality_map, out / f"{stem}.png", title=Path(r.image).name,
                     size=settings.patch_size, stride=settings.patch_stride)
        files[r.image] = {"npy": str(out / f"{stem}.npy"), "png": str(out / f"{stem}.png")}
    return {"dir": str(out), "files": files}


def _run_scaled(args: argparse.Namespace, items: List[str], skipped: List[dict]) -> int:
    """--shard and torchrun: score this process's share into its part; rank 0 of a torchrun job then merges."""
    from .. import parallel
    from ..eval import score_shards
    so = parallel.start(args.shard, args.device)
    try:
        scorer = scorer_from_args(args, str(so.device))
        meta = run_meta(args, scorer, skipped)
        rows = score_shards.score_share(scorer, items, so.shard, args.output, meta)
        so.barrier()
        if so.merges:
            return _merge(args)
    except _KNOWN_ERRORS as exc:
        raise parallel.ShardError(f"{so.describe()}: {exc}") from exc
    finally:
        so.close()
    if not so.independent:
        return 0  # rank 0 merged and reported for the whole job
    failed = [r["error"] for r in rows if r.get("error")]
    for why in failed:
        print(f"grepq score: failed: {why}", file=sys.stderr)
    print(f"grepq score: {so.describe()}: {len(rows) - len(failed)} of {len(rows)} images scored into "
          f"{score_shards.score_part_path(args.output, so.shard)}; when all shards are done: "
          f"grepq score --merge-shards -o {args.output}", file=sys.stderr)
    return 1 if failed else 0


def _merge(args: argparse.Namespace) -> int:
    from ..eval.score_shards import merge_score_parts
    rows, parts, meta = merge_score_parts(args.output)
    status = _finish(args, rows, meta)
    for p in parts:
        p.unlink(missing_ok=True)
    return status


def _run_with_regressor(args: argparse.Namespace, items: List[str], skipped: List[dict]) -> int:
    """Zero-shot scores plus q_pred of ``--regressor FILE``."""
    from ..eval.regressor import Regressor, predict_images
    from ..eval.score_shards import image_upsampled

    reg = Regressor.load(args.regressor)
    missing = [c for c in reg.feature_set.split("+") if c not in _components(args)]
    if missing:
        raise ValueError(f"the regressor {args.regressor} was fit on {reg.feature_set} features, but --components "
                         f"{args.components} does not compute {' and '.join(missing)}: add it to --components")
    scorer = scorer_from_args(args)
    cache = None if str(args.feature_cache).lower() == "none" else Path(args.feature_cache)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        rows, failed = predict_images(scorer, reg, items, cache_dir=cache, allow_mismatch=args.allow_weight_mismatch,
                                      progress=scorer.settings.progress)
    for w in caught:
        print(f"grepq score: warning: {w.message}", file=sys.stderr)
    rows = [dict(r, upsampled=image_upsampled(r["image"], scorer.settings)) for r in rows]
    rows += [{"image": str(p), "error": f"{p}: {why}"} for p, why in failed]
    return _finish(args, rows, run_meta(args, scorer, skipped, reg))
