"""``grepq score PATH...``: zero-shot Q_L, Q_H and GRepQ_Z for images and folders."""
from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from ..models import POS_EMBEDDING_MODES

FIELDS = ("image", "q_low", "q_high", "q_total")


def add_weight_options(p: argparse.ArgumentParser) -> None:
    """The weight options ``grepq score`` and ``grepq eval`` share."""
    p.add_argument("--ll-weights",
                   help="low-level weights: the official low_level_model_weights.tar or a grepq checkpoint")
    p.add_argument("--hl-weights",
                   help="high-level weights: the official high_level_model_weights.pth or a grepq checkpoint "
                                        "('stock-clip' scores with CLIP's own image encoder)")
    p.add_argument("--clip-weights", help="CLIP weights: RN50.pt, a state dict file, or a model name "
                                          "(default: $GREPQ_CLIP_WEIGHTS, else RN50 from CLIP's cache)")
    p.add_argument("--pristine", help="pristine patches: the official .hdf5 file or a folder of pristine images")
    p.add_argument("--save-pristine", help="with a pristine folder: also write the selected patches to this .hdf5")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--pos-embedding", choices=POS_EMBEDDING_MODES, default="drop",
                   help="CLIP attention-pool positional embedding (default: drop, as the official evaluation)")
    p.add_argument("--components", default="low,high", help="which scores to compute: low,high (default), low or high")
    p.add_argument("--chunk-size", type=int, default=64, help="LL patches per forward pass (memory; not results)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="consecutive images of one size per forward pass (default: 1 on CPU, 8 on CUDA; "
                        "scores equal to float32 rounding)")
    p.add_argument("--max-batch-pixels", type=int, default=4_000_000, help="pixel budget of one batch (default 4e6)")
    p.add_argument("--decode-workers", type=int, default=0,
                   help="threads decoding the next images while the models run (default 0)")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                   help="mixed precision of the models (default off = float32, the reference; bf16/fp16 are faster "
                        "on recent GPUs and change scores by rounding)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format (faster convolutions on recent GPUs; same scores to rounding)")
    p.add_argument("--small-image", choices=("upsample", "error"), default="upsample",
                   help="images giving fewer than two 96x96 patches: upsample to 144 px short side (default) or fail")


def scorer_from_args(args: argparse.Namespace):
    from ..api import GRepQ
    components = [c.strip() for c in args.components.split(",") if c.strip()]
    # --cache-dir / --no-cache are grepq score's; grepq eval (sharing this function) uses the default cache folder
    no_cache, cache_dir = getattr(args, "no_cache", False), getattr(args, "cache_dir", None)
    return GRepQ.from_files(
        ll_weights=args.ll_weights, hl_weights=args.hl_weights, clip_weights=args.clip_weights,
        pristine=args.pristine, save_pristine=args.save_pristine, device=args.device,
        cache=False if no_cache else (cache_dir or True),
        pos_embedding=args.pos_embedding, components=components, chunk_size=args.chunk_size,
        batch_size=args.batch_size, max_batch_pixels=args.max_batch_pixels, decode_workers=args.decode_workers,
        amp=args.amp, channels_last=args.channels_last,
        small_image=args.small_image,
    )


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


def write_rows(rows: List[dict], output: str | None) -> None:
    """Rows of FIELDS to a .csv/.json file, or CSV on standard output."""
    if output is None:
        w = csv.DictWriter(sys.stdout, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([{k: r[k] for k in FIELDS} for r in rows], indent=1) + "\n")
    elif path.suffix.lower() == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    else:
        raise SystemExit(f"grepq score: --output must end in .csv or .json, got {output}")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "regressor", None):
        return _run_with_regressor(args)
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        print(f"grepq score: --output must end in .csv or .json, got {args.output}", file=sys.stderr)
        return 2
    from ..parallel import under_torchrun
    if args.shard is not None or args.merge_shards or under_torchrun():
        return _run_scaled(args)
    if not args.paths:
        print("grepq score: give at least one image file or folder (PATH)", file=sys.stderr)
        return 2
    try:
        scorer = scorer_from_args(args)
    except (ValueError, FileNotFoundError, RuntimeError, TypeError) as exc:
        print(f"grepq score: {exc}", file=sys.stderr)
        return 2
    rows = scorer.score(args.paths, on_error="record")
    return report(rows, args.output)


def report(rows: list, output: str | None) -> int:
    """Write the scored rows, name the failed images on standard error; the exit status (1 if any failed)."""
    ok = [r.as_dict() for r in rows if r.error is None]
    failed = [r for r in rows if r.error is not None]
    write_rows(ok, output)
    for r in failed:
        print(f"grepq score: failed: {r.error}", file=sys.stderr)
    if failed:
        print(f"grepq score: {len(failed)} of {len(rows)} images failed; {len(ok)} scored", file=sys.stderr)
    if not rows:
        print("grepq score: no images found", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _run_scaled(args: argparse.Namespace) -> int:
    """--shard, --merge-shards and torchrun (:mod:`grepq.parallel`): score a share into its part
    (:mod:`grepq.eval.score_shards`); merge the parts."""
    from .. import parallel
    from ..eval import score_shards
    try:
        if not args.output:
            raise parallel.ShardError("--shard, --merge-shards and torchrun write part files next to --output FILE "
                                   "(.csv or .json): give one")
        if args.merge_shards:
            if args.paths or args.shard is not None:
                raise parallel.ShardError("--merge-shards takes no PATH or --shard: the part files list their images")
            return _merge(args.output)
        if not args.paths:
            raise parallel.ShardError("give at least one image file or folder (PATH)")
        so = parallel.start(args.shard, args.device)
    except (ValueError, RuntimeError) as exc:
        print(f"grepq score: {exc}", file=sys.stderr)
        return 2
    try:
        args.device = str(so.device)
        scorer = scorer_from_args(args)
        rows = score_shards.score_share(scorer, args.paths, so.shard, args.output)
        so.barrier()
        if so.merges:
            return _merge(args.output)
    except (ValueError, FileNotFoundError, RuntimeError, TypeError, OSError) as exc:
        print(f"grepq score: {so.describe()}: {exc}", file=sys.stderr)
        return 2
    finally:
        so.close()
    if not so.independent:
        return 0  # rank 0 merged and reported for the whole job
    failed = [r for r in rows if r.error is not None]
    for r in failed:
        print(f"grepq score: failed: {r.error}", file=sys.stderr)
    print(f"grepq score: {so.describe()}: {len(rows) - len(failed)} of {len(rows)} images scored into "
          f"{score_shards.score_part_path(args.output, so.shard)}; when all shards are done: "
          f"grepq score --merge-shards -o {args.output}", file=sys.stderr)
    return 1 if failed else 0


def _merge(output: str) -> int:
    from ..eval.score_shards import merge_score_parts
    from ..parallel import ShardError
    try:
        merged = merge_score_parts(output)
    except ShardError as exc:
        print(f"grepq score: {exc}", file=sys.stderr)
        return 2
    status = report(merged.rows, output)
    merged.remove_parts()
    return status


def _write_pred_rows(rows: List[dict], output: Optional[str], regressor, reg_path: str) -> None:
    """Rows with q_pred to a .csv/.json file, or CSV on standard output; the regressor's scale and polarity with
    them."""
    from ..eval.results import json_clean

    columns = ["image", "q_low", "q_high", "q_total", "q_pred"]
    better = "higher" if regressor.polarity == "mos" else "lower"
    meta = {"file": str(reg_path), "polarity": regressor.polarity, "higher_is_better": regressor.polarity == "mos",
            "labels": regressor.info.get("labels"), "feature_set": regressor.feature_set,
            "regressor": regressor.info.get("regressor"), "alpha": regressor.info.get("alpha")}
    if output is not None and Path(output).suffix.lower() == ".json":
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps({"q_pred": json_clean(meta), "rows": rows}, indent=1) + "\n")
        return
    comment = (f"# q_pred: {regressor.info.get('regressor')} regressor {reg_path} on {regressor.feature_set} features; "
               f"labels' scale ({regressor.polarity}, {better} is better)\n")
    fh = sys.stdout if output is None else open(output, "w", newline="")
    try:
        fh.write(comment)
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    finally:
        if output is not None:
            fh.close()


def _run_with_regressor(args: argparse.Namespace) -> int:
    """``grepq score ... --regressor FILE``: zero-shot scores plus q_pred; exit 2 on a bad file or refused weights,
    1 if an image failed."""
    from ..eval.regressor import Regressor, predict_images

    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        print(f"grepq score: --output must end in .csv or .json, got {args.output}", file=sys.stderr)
        return 2
    if getattr(args, "shard", None) is not None or getattr(args, "merge_shards", False):
        print("grepq score: --regressor does not combine with --shard/--merge-shards (score the shards, then "
              "run --regressor on the images in one process)", file=sys.stderr)
        return 2
    if not args.paths:
        print("grepq score: give at least one image file or folder (PATH)", file=sys.stderr)
        return 2
    try:
        reg = Regressor.load(args.regressor)
        scorer = scorer_from_args(args)
        cache = None if str(args.feature_cache).lower() == "none" else Path(args.feature_cache)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            rows, failed = predict_images(scorer, reg, args.paths, cache_dir=cache,
                                          allow_mismatch=args.allow_weight_mismatch)
        for w in caught:
            print(f"grepq score: warning: {w.message}", file=sys.stderr)
    except (ValueError, FileNotFoundError, RuntimeError, TypeError, OSError) as exc:
        print(f"grepq score: {exc}", file=sys.stderr)
        return 2
    _write_pred_rows(rows, args.output, reg, args.regressor)
    for p, why in failed:
        print(f"grepq score: failed: {p}: {why}", file=sys.stderr)
    if not rows and not failed:
        print("grepq score: no images found", file=sys.stderr)
        return 1
    return 1 if failed else 0
