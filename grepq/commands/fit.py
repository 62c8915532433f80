"""``grepq fit``: a quality predictor (GRepQ_D) from your own labelled images, saved as a regressor file.

Labels come from any dataset loader (``--dataset NAME --root DIR``) or a CSV of image paths and scores (``--csv``;
relative paths are resolved against the CSV's folder). Features: the weights options of ``grepq score``, through
the feature cache. Alpha: cross-validation on the labels, as the data-efficient protocol (docs/method.md §5).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .score import add_weight_options, scorer_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit a quality predictor on your labelled images (writes a regressor file)",
                       description="Fit ridge (default) or linear SVR on GRepQ features of labelled images; alpha by "
                                   "cross-validation on the labels. Use the file with 'grepq score --regressor'.")
    src = p.add_argument_group("labels (one of --csv or --dataset/--root)")
    src.add_argument("--csv", help="CSV file of image paths and scores (paths relative to the CSV's folder)")
    src.add_argument("--image-column", default="image", help="CSV column of image paths (default: image)")
    src.add_argument("--score-column", default="mos", help="CSV column of scores (default: mos)")
    src.add_argument("--ref-column", help="CSV column of reference-scene ids (CV folds by scene)")
    src.add_argument("--polarity", choices=("mos", "dmos"), default="mos",
                     help="CSV scores: mos = higher is better (default), dmos = lower is better")
    src.add_argument("--dataset", help="dataset name (clive, koniq10k, live, ..., csv), as in 'grepq eval'")
    src.add_argument("--root", help="the dataset's folder")
    src.add_argument("--dataset-option", action="append", metavar="KEY=VALUE", help="loader option, as in 'grepq eval'")
    src.add_argument("--limit", type=int, help="use only the first N labelled images")
    p.add_argument("--output", "-o", required=True, help="regressor file to write (.json)")
    p.add_argument("--feature-set", choices=("hl+ll", "hl", "ll"), default="hl+ll",
                   help="features of Table 1 (default hl+ll = [HL | LL], 1152-d)")
    p.add_argument("--regressor", choices=("ridge", "svr"), default="ridge", help="ridge (official README, default) or "
                                                                                    "svr (paper's linear SVR)")
    p.add_argument("--alphas", help="alpha grid, comma-separated (default: the official README's 0.1,1,10,100)")
    p.add_argument("--cv-folds", type=int, help="folds of the cross-validation choosing alpha (default 5)")
    p.add_argument("--cv-criterion", choices=("mse", "srcc"), default="mse", help="CV criterion (default mse)")
    p.add_argument("--standardize", action="store_true",
                   help="unit-variance feature columns (default off, as official)")
    p.add_argument("--seed", type=int, default=0, help="seed of the CV folds (default 0: split 0 of the protocol)")
    p.add_argument("--cache", default=".grepq_cache", help="feature cache folder (default .grepq_cache; 'none')")
    add_weight_options(p)
    p.set_defaults(func=run)


def load_labels(args: argparse.Namespace):
    """The labelled images of ``--csv`` or ``--dataset/--root`` as an IQADataset."""
    from ..data.datasets import load_csv, load_dataset
    from .eval import key_value_options as _dataset_options

    if bool(args.csv) == bool(args.dataset):
        raise ValueError("give either --csv FILE or --dataset NAME --root DIR")
    if args.csv:
        data = load_csv(args.csv, image_column=args.image_column, score_column=args.score_column,
                        polarity=args.polarity, ref_column=args.ref_column)
        return data if args.limit is None else data.head(args.limit)
    if not args.root:
        raise ValueError("--dataset needs --root (the dataset's folder)")
    return load_dataset(args.dataset, args.root, limit=args.limit, **_dataset_options(args.dataset_option or []))


def run(args: argparse.Namespace) -> int:
    from ..data.datasets import DatasetError
    from ..eval.regression import RegressionSettings
    from ..eval.runner import fit_on_dataset

    try:
        given = {"alphas": None if args.alphas is None else [float(a) for a in args.alphas.split(",")],
                 "cv_folds": args.cv_folds}
        settings = RegressionSettings(regressor=args.regressor, cv_criterion=args.cv_criterion,
                                      standardize=args.standardize, seed=args.seed,
                                      **{k: v for k, v in given.items() if v is not None})
        dataset = load_labels(args)
        scorer = scorer_from_args(args)
        cache = None if str(args.cache).lower() == "none" else Path(args.cache)
        source = ({"kind": "csv", "path": str(Path(args.csv).absolute()), "image_column": args.image_column,
                   "score_column": args.score_column} if args.csv else
                  {"kind": "dataset", "name": dataset.name, "root": str(dataset.root)})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reg = fit_on_dataset(scorer, dataset, settings, feature_set=args.feature_set, cache_dir=cache,
                                 source=source)
        for w in caught:
            print(f"grepq fit: warning: {w.message}", file=sys.stderr)
        reg.save(args.output)
    except (ValueError, FileNotFoundError, DatasetError, RuntimeError, OSError) as exc:
        print(f"grepq fit: {exc}", file=sys.stderr)
        return 2
    cv = reg.info.get("cv")
    print(f"fit {reg.describe()}")
    print(f"alpha = {reg.info['alpha']:g} chosen from {list(settings.alphas)} by {settings.alpha_selection}")
    if cv:
        print(f"CV estimate ({cv['folds']} folds, pooled out-of-fold, optimistic: alpha chosen on the same folds): "
              f"SRCC {cv['srcc']:.4f}  PLCC {cv['plcc']:.4f}")
    print(f"regressor written to {args.output}", file=sys.stderr)
    return 0
