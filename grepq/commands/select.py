"""``grepq select``: which photos to label first (greedy k-center on GRepQ features, :mod:`grepq.eval.selection`)."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import List

from .score import add_weight_options, scorer_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("select", help="choose which photos to label (greedy k-center on GRepQ features)",
                       description="Pick --budget images that cover the feature space (greedy k-center on the "
                                   "standardised [HL | LL] features 'grepq fit' uses; Gonzalez 1985, Sener & "
                                   "Savarese 2018) and write them in selection order to a CSV: image,order,distance.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders of images (the candidates)")
    p.add_argument("--budget", type=int, required=True, help="how many images to select")
    p.add_argument("--out", "-o", required=True, help="CSV file to write (columns image, order, distance)")
    p.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="PATH",
                   help="images already labelled (paths among the inputs, or .txt/.csv lists of them: one path per "
                        "line, or the CSV's 'image' column, else its first; relative to the list's folder): they "
                        "count as centres and are never selected")
    p.add_argument("--seed", type=int, default=0, help="seed of the first pick when nothing is excluded (default 0)")
    p.add_argument("--feature-set", choices=("hl+ll", "hl", "ll"), default="hl+ll",
                   help="features to cover (default hl+ll = [HL | LL], as grepq fit)")
    p.add_argument("--cache", default=".grepq_cache", help="feature cache folder (default .grepq_cache; 'none')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_weight_options(p)
    p.set_defaults(func=run)


def excluded_paths(items: List[str]) -> List[str]:
    """``--exclude`` values: image paths, and the paths listed in .txt/.csv files."""
    out = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in path.read_text().splitlines()]
            out += [str(path.parent / ln) for ln in lines if ln and not ln.startswith("#")]
        elif path.suffix.lower() == ".csv":
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
            col = rows[0].index("image") if rows and "image" in rows[0] else 0
            start = 1 if rows and "image" in rows[0] else 0
            out += [str(path.parent / r[col]) for r in rows[start:] if r and r[col].strip()]
        else:
            out.append(item)
    return out


def run(args: argparse.Namespace) -> int:
    from ..eval.selection import select_images

    try:
        scorer = scorer_from_args(args)
        cache = None if str(args.cache).lower() == "none" else Path(args.cache)
        rows, failed = select_images(scorer, args.paths, args.budget, exclude=excluded_paths(args.exclude),
                                     seed=args.seed, feature_set=args.feature_set, cache_dir=cache,
                                     progress=not args.no_progress)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        print(f"grepq select: {exc}", file=sys.stderr)
        return 2
    for path, why in failed:
        print(f"grepq select: left out {path}: {why}", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "order", "distance"])
        w.writeheader()
        w.writerows(rows)
    print(f"grepq select: {len(rows)} images in selection order written to {args.out}", file=sys.stderr)
    return 0
