"""``grepq score PATH...``: zero-shot Q_L, Q_H and GRepQ_Z of images and folders (with ``--regressor``: q_pred)."""
from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from ..scoring.settings import scoring_keys

FIELDS = ("image", "q_low", "q_high", "q_total")
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


def scorer_from_args(args: argparse.Namespace, device: Optional[str] = None):
    """A :class:`grepq.GRepQ` from the options of :func:`add_weight_options` (``device`` replaces ``--device``)."""
    from ..api import GRepQ
    settings = {name: getattr(args, name) for name in scoring_keys()}
    settings["components"] = [c.strip() for c in args.components.split(",") if c.strip()]
    settings["device"] = device or args.device
    # --cache-dir / --no-cache are grepq score's; eval and fit use the default cache folder
    cache = False if getattr(args, "no_cache", False) else (getattr(args, "cache_dir", None) or True)
    return GRepQ.from_files(ll_weights=args.ll_weights, hl_weights=args.hl_weights, clip_weights=args.clip_weights,
                            pristine=args.pristine, save_pristine=args.save_pristine, cache=cache, **settings)


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="zero-shot quality of images and folders (Q_L, Q_H, GRepQ_Z)",
                       description="Zero-shot GRepQ scores: one row per image with image, q_low, q_high, q_total.",
                       epilog=SCALE_OUT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files and/or folders of images")
    add_weight_options(p)
    p.add_argument("--output", "-o", help="write .csv or .json (default: CSV to standard output)")
    p.add_argument("--shard", metavar="I/N", help="score only share I of N (0 <= I < N) of the images and write it "
                   "to OUTPUT.shard-I-of-N.jsonl (see 'Several processes or machines' below)")
    p.add_argument("--merge-shards", action="store_true",
                   help="write --output from the finished parts OUTPUT.shard-*-of-N.jsonl, rows in input order, "
                        "then delete the parts (no PATH or weights needed)")
    p.add_argument("--regressor", metavar="FILE", help="a regressor file of 'grepq fit': adds q_pred (on its labels' "
                                                       "scale; polarity in the CSV's first line / the JSON)")
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


def write_rows(rows: List[dict], output: Optional[str], columns=FIELDS, comment: str = "",
               json_head: Optional[dict] = None) -> None:
    """Rows to .csv (``comment`` first) or .json (a list, or ``json_head`` plus "rows"); no output: CSV to stdout."""
    if output is not None and Path(output).suffix.lower() == ".json":
        rows = [{k: r[k] for k in columns} for r in rows]
        data = rows if json_head is None else dict(json_head, rows=rows)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(data, indent=1) + "\n")
        return
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    fh = sys.stdout if output is None else open(output, "w", newline="")
    try:
        fh.write(comment)
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    finally:
        if output is not None:
            fh.close()


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except _KNOWN_ERRORS as exc:
        print(f"grepq score: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from ..parallel import ShardError, under_torchrun
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--output must end in .csv or .json, got {args.output}")
    scaled = args.shard is not None or args.merge_shards or under_torchrun()
    if args.regressor and scaled:
        raise ValueError("--regressor does not combine with --shard, --merge-shards or torchrun (score the shards, "
                         "then run --regressor on the images in one process)")
    if scaled and not args.output:
        raise ShardError("--shard, --merge-shards and torchrun write part files next to --output FILE "
                         "(.csv or .json): give one")
    if args.merge_shards:
        if args.paths or args.shard is not None:
            raise ShardError("--merge-shards takes no PATH or --shard: the part files list their images")
        return _merge(args.output)
    if not args.paths:
        raise ValueError("give at least one image file or folder (PATH)")
    if args.regressor:
        return _run_with_regressor(args)
    if scaled:
        return _run_scaled(args)
    rows = scorer_from_args(args).score(args.paths, on_error="record")
    return report(rows, args.output)


def report(rows: list, output: Optional[str]) -> int:
    """Write the scored rows, name the failed images on standard error; the exit status (1 if any failed)."""
    ok = [r.as_dict() for r in rows if r.error is None]
    failed = [r.error for r in rows if r.error is not None]
    write_rows(ok, output)
    return _tell_failed(failed, len(rows))


def _tell_failed(failed: List[str], n: int) -> int:
    for why in failed:
        print(f"grepq score: failed: {why}", file=sys.stderr)
    if failed:
        print(f"grepq score: {len(failed)} of {n} images failed; {n - len(failed)} scored", file=sys.stderr)
    if not n:
        print("grepq score: no images found", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _run_scaled(args: argparse.Namespace) -> int:
    """--shard and torchrun: score this process's share into its part; rank 0 of a torchrun job then merges."""
    from .. import parallel
    from ..eval import score_shards
    so = parallel.start(args.shard, args.device)
    try:
        rows = score_shards.score_share(scorer_from_args(args, str(so.device)), args.paths, so.shard, args.output)
        so.barrier()
        if so.merges:
            return _merge(args.output)
    except _KNOWN_ERRORS as exc:
        raise parallel.ShardError(f"{so.describe()}: {exc}") from exc
    finally:
        so.close()
    if not so.independent:
        return 0  # rank 0 merged and reported for the whole job
    failed = [r.error for r in rows if r.error is not None]
    for why in failed:
        print(f"grepq score: failed: {why}", file=sys.stderr)
    print(f"grepq score: {so.describe()}: {len(rows) - len(failed)} of {len(rows)} images scored into "
          f"{score_shards.score_part_path(args.output, so.shard)}; when all shards are done: "
          f"grepq score --merge-shards -o {args.output}", file=sys.stderr)
    return 1 if failed else 0


def _merge(output: str) -> int:
    from ..eval.score_shards import merge_score_parts
    rows, parts = merge_score_parts(output)
    status = report(rows, output)
    for p in parts:
        p.unlink(missing_ok=True)
    return status


def _run_with_regressor(args: argparse.Namespace) -> int:
    """Zero-shot scores plus q_pred of ``--regressor FILE``; the regressor's scale and polarity with them."""
    from ..eval.regressor import Regressor, predict_images
    from ..eval.results import json_clean

    reg = Regressor.load(args.regressor)
    scorer = scorer_from_args(args)
    cache = None if str(args.feature_cache).lower() == "none" else Path(args.feature_cache)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        rows, failed = predict_images(scorer, reg, args.paths, cache_dir=cache,
                                      allow_mismatch=args.allow_weight_mismatch)
    for w in caught:
        print(f"grepq score: warning: {w.message}", file=sys.stderr)
    info = reg.info
    meta = {"file": str(args.regressor), "polarity": reg.polarity, "higher_is_better": reg.polarity == "mos",
            "labels": info.get("labels"), "feature_set": reg.feature_set, "regressor": info.get("regressor"),
            "alpha": info.get("alpha")}
    better = "higher" if reg.polarity == "mos" else "lower"
    comment = (f"# q_pred: {info.get('regressor')} regressor {args.regressor} on {reg.feature_set} features; "
               f"labels' scale ({reg.polarity}, {better} is better)\n")
    write_rows(rows, args.output, FIELDS + ("q_pred",), comment, {"q_pred": json_clean(meta)})
    return _tell_failed([f"{p}: {why}" for p, why in failed], len(rows) + len(failed))
