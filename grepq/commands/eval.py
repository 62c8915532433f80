"""``grepq eval zeroshot|data-efficient|cross-dataset``: the paper's protocols on a dataset (SPEC §5, Tables 1-4).

Options can also come from a YAML file (``--config``): its keys are the long option names (with ``_`` or ``-``);
an unknown key is an error. Options given on the command line win over the file.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

from .score import add_weight_options, scorer_from_args

PROTOCOLS = ("zeroshot", "data-efficient", "cross-dataset")


def _dataset_options(pairs):
    out = {}
    for item in pairs or []:
        if "=" not in item:
            raise ValueError(f"--dataset-option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate on a dataset: zeroshot, data-efficient or cross-dataset",
                       description="Run one of the paper's evaluation protocols; results go to --out as JSON/CSV "
                                   "(rendered by 'grepq tables').")
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("--config", help="YAML file of options (keys = long option names)")
    p.add_argument("--dataset", help="dataset name (clive, koniq10k, live, csiq, pipal, flive, spaq, tid2013, "
                                     "kadid10k, agiqa3k, csv)")
    p.add_argument("--root", help="the dataset's folder as its owners distribute it")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="loader option, e.g. include_training=true (CLIVE), resolution=512x384 (KonIQ)")
    p.add_argument("--source", help="cross-dataset: the dataset the regressor is fit on")
    p.add_argument("--source-root", help="cross-dataset: its folder")
    p.add_argument("--source-option", action="append", metavar="KEY=VALUE", help="loader option of the source")
    p.add_argument("--limit", type=int, help="use only the first N images of each dataset (quick runs)")
    p.add_argument("--out", default="results", help="folder for result files (default: results)")
    p.add_argument("--cache", default=".grepq_cache", help="feature cache folder (default: .grepq_cache; 'none' to disable)")
    p.add_argument("--cache-every", type=int, default=None, metavar="N",
                   help="write the feature cache every N images (default 50): a killed run loses at most N-1")
    p.add_argument("--regressor", choices=("ridge", "svr"), default="ridge", help="ridge (official README) or svr (paper)")
    p.add_argument("--alpha-selection", choices=("cv", "oracle"), default="cv",
                   help="cv on the training labels (default) or best-on-test, labelled 'oracle'")
    p.add_argument("--alphas", default="0.1,1,10,100", help="alpha grid (official README: 0.1,1,10,100)")
    p.add_argument("--n-train", default="50,100,200", help="label counts (paper: 50,100,200)")
    p.add_argument("--splits", type=int, default=10, help="random splits, median reported (paper: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature-sets", default=None, help="comma list of hl+ll, hl, ll (default: all for data-efficient, "
                                                         "hl+ll for cross-dataset)")
    p.add_argument("--variant", help="label stored with the result, e.g. the LL model's similarity measure (Table 4)")
    p.add_argument("--no-official-clive-resize", action="store_true",
                   help="do not resize CLIVE's 1024.JPG and 1113.JPG to 500x500 as the official loader does")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--shard", metavar="I/N",
                   help="only extract the features of share I of N (0 <= I < N) of the images into --cache and exit; "
                        "once all N are done, the same command without --shard runs the protocol (see below)")
    add_weight_options(p)
    p.set_defaults(func=run, _parser=p)
    p.epilog = SCALE_OUT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter


SCALE_OUT_HELP = """\
Several processes or machines (grepq/scale.py): the dataset's images are cut into N contiguous shares, whose
features all go into one --cache folder (part files named by share).
  torchrun --nproc_per_node 4 -m grepq eval zeroshot --dataset flive --root /data/FLIVE --device cuda [...]
      each process extracts its share on cuda:LOCAL_RANK (or on the CPU with --device cpu); after a barrier,
      rank 0 reads the whole cache and runs the protocol once.
  grepq eval zeroshot ... --shard I/N       (one independent job per I = 0..N-1, e.g. a Slurm array)
  grepq eval zeroshot ...                   (the same command without --shard, once all N jobs are done)
      the last run finds every image's features cached and runs the protocol (images a shard did not finish
      are computed there). A killed share run again resumes from the cache.
"""


def _apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill options left at their defaults from the YAML file (strict keys)."""
    data = yaml.safe_load(Path(args.config).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{args.config}: expected a mapping of option names to values")
    valid = {a.dest for a in parser._actions if a.dest not in ("help", "config", "protocol")}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in valid:
            close = difflib.get_close_matches(dest, sorted(valid), n=1)
            raise ValueError(f"{args.config}: unknown option {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        if getattr(args, dest) == parser.get_default(dest):
            if isinstance(value, list):
                value = ",".join(str(v) for v in value) if dest not in ("dataset_option", "source_option") else [str(v) for v in value]
            setattr(args, dest, value)


def _scale_out(args: argparse.Namespace):
    """The :class:`grepq.scale.ScaleOut` of a run with --shard or under torchrun (its device replaces --device),
    else None."""
    from .. import scale
    if args.shard is None and not scale.under_torchrun():
        return None
    if str(args.cache).lower() == "none":
        raise ValueError("--shard and torchrun put the shares' features into the feature cache: --cache cannot be none")
    so = scale.start(args.shard, args.device)
    args.device = str(so.device)
    return so


def _extract_share(so, scorer, datasets, common) -> bool:
    """Features of this process's share of every dataset into the cache; True if this process then runs the
    protocol (rank 0 of a torchrun job without --shard, after the others finished)."""
    from ..eval import runner
    for ds in datasets:
        fs = runner.dataset_features(scorer, ds, shard=so.shard, **common)
        print(f"grepq eval: {so.describe()}: features of {len(fs)} of {len(ds)} images of {ds.name} in "
              f"{fs.cache_dir}", file=sys.stderr)
    so.barrier()
    if not so.merges and so.independent:
        print("grepq eval: when all shards are done, run the same command without --shard: it reads the cached "
              "features and runs the protocol", file=sys.stderr)
    return so.merges


def run(args: argparse.Namespace) -> int:
    from ..data.datasets import DatasetError, load_dataset
    from ..eval import runner
    so = None
    try:
        if args.config:
            _apply_config(args, args._parser)
        if not args.dataset or not args.root:
            raise ValueError("--dataset and --root are required (on the command line or in --config)")
        if args.protocol == "cross-dataset" and not (args.source and args.source_root):
            raise ValueError("cross-dataset needs --source and --source-root (the dataset the regressor is fit on)")
        if args.cache_every is not None:
            if int(args.cache_every) < 1:
                raise ValueError(f"--cache-every expects a positive number of images, got {args.cache_every}")
        components = [c.strip() for c in args.components.split(",") if c.strip()]
        args.components = ",".join(components)
        target = load_dataset(args.dataset, args.root, limit=args.limit, **_dataset_options(args.dataset_option))
        source = None
        if args.protocol == "cross-dataset":
            source = load_dataset(args.source, args.source_root, limit=args.limit, **_dataset_options(args.source_option))
        so = _scale_out(args)
        scorer = scorer_from_args(args)
        cache = None if str(args.cache).lower() == "none" else Path(args.cache)
        common = dict(cache_dir=cache, official_clive_resize=not args.no_official_clive_resize,
                      cache_every=None if args.cache_every is None else int(args.cache_every))
        if so is not None and not _extract_share(so, scorer, [d for d in (source, target) if d is not None], common):
            return 0
        alphas = [float(a) for a in str(args.alphas).split(",")]
        if args.protocol == "zeroshot":
            result = runner.run_zero_shot(scorer, target, Path(args.out), plots=not args.no_plots, **common)
        elif args.protocol == "data-efficient":
            fsets = args.feature_sets.split(",") if args.feature_sets else [
                f for f in ("hl+ll", "hl", "ll") if (f != "hl+ll" or len(components) == 2) and
                (f == "hl+ll" or {"hl": "high", "ll": "low"}[f] in components)]
            result = runner.run_data_efficient(
                scorer, target, Path(args.out), plots=not args.no_plots, feature_sets=fsets, variant=args.variant,
                n_train_list=[int(n) for n in str(args.n_train).split(",")], n_splits=args.splits, seed=args.seed,
                regressor=args.regressor, alphas=alphas, alpha_selection=args.alpha_selection, **common)
        else:
            fsets = args.feature_sets.split(",") if args.feature_sets else ["hl+ll" if len(components) == 2 else
                                                                             {"high": "hl", "low": "ll"}[components[0]]]
            result = runner.run_cross_dataset(scorer, source, target, Path(args.out), feature_sets=fsets,
                                              regressor=args.regressor, alphas=alphas,
                                              alpha_selection=args.alpha_selection, seed=args.seed, **common)
    except (ValueError, FileNotFoundError, DatasetError, RuntimeError, OSError) as exc:
        print(f"grepq eval: {exc}", file=sys.stderr)
        return 2
    finally:
        if so is not None:
            so.close()
    rows = result.medians if getattr(result, "medians", None) else result.rows
    keys = [k for k in ("predictor", "feature_set", "n_train", "srcc", "plcc", "krcc", "alpha_selection") if rows and k in rows[0]]
    print("\t".join(keys))
    for r in rows:
        print("\t".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    print(f"results written to {args.out}", file=sys.stderr)
    return 0
