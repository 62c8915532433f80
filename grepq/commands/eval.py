"""``grepq eval zeroshot|data-efficient|cross-dataset``: the paper's protocols (docs/method.md §5, Tables 1-4).

Settings come from the evaluation schema (:data:`grepq.eval.schema.EVAL_SCHEMA`): its defaults (each key's source
named: paper, official or grepq), then a YAML file (``--config``), then the command-line options (each maps to
one key, :data:`EVAL_OPTIONS`), then ``--set key.sub=value``. ``--print-config`` shows the result.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, Optional, Tuple

import yaml

from ..config import ConfigError
from ..scoring.settings import scoring_keys
from .score import add_weight_options

PROTOCOLS = ("zeroshot", "data-efficient", "cross-dataset")


def key_value_options(items: Any) -> Dict[str, Any]:
    """``--dataset-option k=v`` options -> ``{k: v}`` (values parsed as YAML)."""
    out = {}
    for item in ([items] if isinstance(items, str) else list(items)):
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"expected KEY=VALUE loader options, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


#: ``grepq eval`` option name (argparse dest) -> configuration key and a converter of the option's value.
EVAL_OPTIONS: Dict[str, Tuple[str, Optional[Callable[[Any], Any]]]] = {
    **{o: (f"data.{o}", None) for o in ("dataset", "root", "source", "source_root", "limit")},
    "dataset_option": ("data.options", key_value_options), "source_option": ("data.source_options", key_value_options),
    **{o: (f"protocol.{o}", None) for o in ("regressor", "alphas", "alpha_selection", "n_train", "splits", "seed",
                                            "feature_sets", "pair_weight", "plcc_fit", "cv_folds", "regressor_file",
                                            "allow_weight_mismatch")},
    "save_regressor": ("output.save_regressor", None),
    **{o: (f"output.{o}", None) for o in ("out", "cache_every")},
    "cache": ("output.cache", lambda v: None if str(v).lower() == "none" else v),
    "no_plots": ("output.plots", lambda v: not v),
    "no_official_clive_resize": ("scoring.official_clive_resize", lambda v: not v),
    **{f"{o}_weights": (f"weights.{o}", None) for o in ("ll", "hl", "clip")},
    **{o: (f"weights.{o}", None) for o in ("pristine", "save_pristine")},
    **{o: (f"scoring.{o}", None) for o in scoring_keys()},
}


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate on a dataset: zeroshot, data-efficient or cross-dataset",
                       description="Run one of the paper's evaluation protocols; results go to --out as JSON/CSV "
                                   "(rendered by 'grepq tables'). Every option is a key of the evaluation "
                                   "configuration (grepq eval PROTOCOL --print-config lists them with their sources).")
    p.add_argument("protocol", choices=PROTOCOLS, help="the protocol: " + ", ".join(PROTOCOLS))
    p.add_argument("--config", help="YAML file of the evaluation configuration (sections weights, scoring, data, "
                                    "protocol, output) or a preset name (eval_table1, eval_table3, ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override, e.g. protocol.plcc_fit=cubic (applied last)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--dataset", help="dataset name (clive, koniq10k, live, csiq, pipal, flive, spaq, tid2013, "
                                     "kadid10k, agiqa3k, csv) (data.dataset)")
    p.add_argument("--root", help="the dataset's folder as its owners distribute it (data.root)")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="loader option, e.g. include_training=true (CLIVE), resolution=512x384 (KonIQ) (data.options)")
    p.add_argument("--source", help="cross-dataset: the dataset the regressor is fit on (data.source)")
    p.add_argument("--source-root", help="cross-dataset: its folder (data.source_root)")
    p.add_argument("--source-option", action="append", metavar="KEY=VALUE",
                   help="loader option of the source (data.source_options)")
    p.add_argument("--limit", type=int, help="use only the first N images of each dataset (data.limit)")
    p.add_argument("--out", help="folder for result files (output.out; default: results)")
    p.add_argument("--cache", help="feature cache folder (output.cache; default: .grepq_cache; 'none' to disable)")
    p.add_argument("--cache-every", type=int, metavar="N",
                   help="write the feature cache every N images (output.cache_every; default 50)")
    p.add_argument("--regressor", choices=("ridge", "svr"), help="ridge (official README, default) or svr (paper)")
    p.add_argument("--alpha-selection", choices=("cv", "oracle", "fixed"),
                   help="cv on the training labels (default), best-on-test labelled 'oracle', or fixed (one alpha)")
    p.add_argument("--alphas", help="alpha grid (protocol.alphas; official README: 0.1,1,10,100)")
    p.add_argument("--n-train", help="label counts (protocol.n_train; paper: 50,100,200)")
    p.add_argument("--splits", type=int, help="random splits, median reported (protocol.splits; paper: 10)")
    p.add_argument("--seed", type=int, help="seed of the splits (protocol.seed; default 0)")
    p.add_argument("--feature-sets", help="comma list of hl+ll, hl, ll (default: all for data-efficient, "
                                          "hl+ll for cross-dataset)")
    p.add_argument("--pair-weight", help="the LL model's pair weight (Eq. 1), stored with the result (Table 4; "
                                         "protocol.pair_weight)")
    p.add_argument("--plcc-fit", choices=("none", "cubic", "logistic4"),
                   help="PLCC of the regression protocols (protocol.plcc_fit; default none = raw Pearson)")
    p.add_argument("--save-regressor", metavar="FILE",
                   help="cross-dataset: also save the regressor fit on the source (output.save_regressor; a "
                        "grepq regressor file, as written by grepq fit)")
    p.add_argument("--regressor-file", metavar="FILE",
                   help="cross-dataset: test this saved regressor (grepq fit or --save-regressor) on --dataset "
                        "instead of fitting one on a source (protocol.regressor_file)")
    p.add_argument("--allow-weight-mismatch", action="store_true", default=None,
                   help="with --regressor-file: warn instead of refusing weights other than the regressor's")
    p.add_argument("--no-official-clive-resize", action="store_true", default=None,
                   help="do not resize CLIVE's 1024.JPG and 1113.JPG to 500x500 as the official loader does")
    p.add_argument("--no-plots", action="store_true", default=None, help="write no plots (output.plots)")
    add_weight_options(p)
    p.add_argument("--shard", metavar="I/N",
                   help="only extract the features of share I of N (0 <= I < N) of the images into --cache and exit; "
                        "once all N are done, the same command without --shard runs the protocol (see below)")
    # every option maps to a configuration key; None = not given (the configuration's value stands)
    p.set_defaults(func=run, **{dest: None for dest in EVAL_OPTIONS})
    p.epilog = SCALE_OUT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter


SCALE_OUT_HELP = """\
Several processes or machines (grepq/parallel.py): the dataset's images are cut into N contiguous shares, whose
features all go into one --cache folder (part files named by share).
  torchrun --nproc_per_node 4 -m grepq eval zeroshot --dataset flive --root /data/FLIVE --device cuda [...]
      each process extracts its share on cuda:LOCAL_RANK (or on the CPU with --device cpu); after a barrier,
      rank 0 reads the whole cache and runs the protocol once.
  grepq eval zeroshot ... --shard I/N       (one independent job per I = 0..N-1, e.g. a Slurm array)
  grepq eval zeroshot ...                   (the same command without --shard, once all N jobs are done)
      the last run finds every image's features cached and runs the protocol (images a shard did not finish
      are computed there). A killed share run again resumes from the cache.
"""


def _config(args: argparse.Namespace):
    """The resolved configuration: defaults, --config, the options given, --set overrides."""
    from ..config import load_config
    from ..eval.schema import EVAL_SCHEMA
    values = {}
    for dest, (key, convert) in EVAL_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            values[key] = convert(value) if convert is not None else value
    return load_config(args.config, args.overrides, schema=EVAL_SCHEMA, values=values)


def _scale_out(args: argparse.Namespace, cfg):
    """The :class:`grepq.parallel.ScaleOut` of a run with --shard or under torchrun (it chooses the device), or
    None."""
    from .. import parallel
    if args.shard is None and not parallel.under_torchrun():
        return None
    if cfg["output"]["cache"] is None or str(cfg["output"]["cache"]).lower() == "none":
        raise ValueError("--shard and torchrun put the shares' features into the feature cache: --cache cannot be none")
    return parallel.start(args.shard, cfg["scoring"]["device"])


def _extract_share(so, scorer, datasets, opts) -> bool:
    """Features of this process's share of every dataset into the cache; True if this process then runs the
    protocol (rank 0 of a torchrun job without --shard, after the others finished)."""
    from ..eval import runner
    for ds in datasets:
        fs = runner.dataset_features(scorer, ds, opts, shard=so.shard)
        print(f"grepq eval: {so.describe()}: features of {len(fs)} of {len(ds)} images of {ds.name} in "
              f"{fs.cache_dir}", file=sys.stderr)
    so.barrier()
    if not so.merges and so.independent:
        print("grepq eval: when all shards are done, run the same command without --shard: it reads the cached "
              "features and runs the protocol", file=sys.stderr)
    return so.merges


def run(args: argparse.Namespace) -> int:
    from ..config import dump_config
    from ..data.datasets import DatasetError
    from ..eval.from_config import eval_datasets, feature_options, run_eval, scorer_from_config
    from ..eval.schema import EVAL_SCHEMA
    so = None
    try:
        cfg = _config(args)
        if args.print_config:
            sys.stdout.write(dump_config(cfg, comments=True, schema=EVAL_SCHEMA))
            return 0
        target, source = eval_datasets(args.protocol, cfg)
        so = _scale_out(args, cfg)
        scorer = scorer_from_config(cfg, device=None if so is None else str(so.device))
        shares = [d for d in (source, target) if d is not None]
        if so is not None and not _extract_share(so, scorer, shares, feature_options(cfg)):
            return 0
        result = run_eval(args.protocol, cfg, scorer, target, source)
    except (ConfigError, ValueError, FileNotFoundError, DatasetError, RuntimeError, OSError) as exc:
        print(f"grepq eval: {exc}", file=sys.stderr)
        return 2
    finally:
        if so is not None:
            so.close()
    rows = result.medians if getattr(result, "medians", None) else result.rows
    keys = [k for k in ("predictor", "feature_set", "n_train", "srcc", "plcc", "krcc",
                        "alpha_selection") if rows and k in rows[0]]
    print("\t".join(keys))
    for r in rows:
        print("\t".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    print(f"results written to {cfg['output']['out']}", file=sys.stderr)
    return 0

