"""``grepq prepare``: synthesise the training set (distorted versions + FSIM per image), docs/method.md §6; the
work is :func:`grepq.data.prepare.prepare`."""
from __future__ import annotations

import argparse
import sys
from typing import List, Tuple

__all__ = ["add_parser", "run"]


def _parse_shard(text: str) -> Tuple[int, int]:
    try:
        i, n = text.split("/")
        return int(i), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {text!r}") from None


def _parse_levels(text: str) -> List[int]:
    try:
        return [int(tok) for tok in text.split(",") if tok]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers 1..5, got {text!r}") from None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.distortions import AUTHORS_TYPES, DEFAULT_RANGE_MODE, RANGE_MODES
    from ..data.layout import NAMINGS
    from ..data.prepare import LOSSLESS_EXTS, MIN_SIZE
    from ..data.recipes import DEFAULT_RECIPE, RECIPES

    parser.add_argument("inputs", nargs="+", help="image folders, image files or list files (.txt: one path a line)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--recipe", choices=RECIPES, default=None,
                        help=f"which distortions each image gets (default {DEFAULT_RECIPE}: the authors' 4 of 12 "
                             f"KADIS types x 2 of levels 2-5 per image; 'grid' when only --types/--levels are given; "
                             f"'fixed': grepq's earlier 4 types x levels 2,4, for old runs)")
    parser.add_argument("--types", default=None,
                        help=f"comma-separated distortion types: the recipe's pool "
                             f"(authors: {','.join(AUTHORS_TYPES)})")
    parser.add_argument("--levels", type=_parse_levels, default=None,
                        help="comma-separated KADIS levels 1..5: the recipe's pool")
    parser.add_argument("--n-types", type=int, default=None, help="types drawn per image (recipe random; authors 4)")
    parser.add_argument("--n-levels", type=int, default=None, help="levels drawn per type (recipe random; authors 2)")
    parser.add_argument("--naming", choices=NAMINGS, default="grepq",
                        help="grepq: <name>/<name>_<type>_<level>.png with fsim.npy; kadis: the official loader's "
                             "layout (<name>.bmp/<name>_<id>_<level>.bmp, metadata in .grepq/, LIVEFB.csv)")
    parser.add_argument("--seed", type=int, default=0, help="global seed (default %(default)s)")
    parser.add_argument("--min-size", type=int, default=MIN_SIZE, help="refuse images whose short side is smaller")
    parser.add_argument("--ext", default=None, choices=LOSSLESS_EXTS, help="image format (default png; kadis: bmp)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default %(default)s)")
    parser.add_argument("--shard", type=_parse_shard, default=(0, 1), help="I/N: this run does items k %% N == I")
    parser.add_argument("--range-mode", default=DEFAULT_RANGE_MODE, choices=RANGE_MODES,
                        help="kadis: values mapped as KADIS's imdist_generator.m; clip: clipped to [0, 1] "
                             "(default %(default)s)")
    parser.add_argument("--fsim-dtype", default="float64", choices=("float64", "float32"),
                        help="precision of the stored FSIM matrix (default %(default)s)")
    parser.add_argument("--on-collision", default="error", choices=("error", "suffix"),
                        help="two inputs with one file name: refuse (error) or name them <stem>__<k> (suffix)")
    parser.add_argument("--recursive", action="store_true", help="search input folders recursively")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub) -> None:
    p = sub.add_parser("prepare", help="synthesise the training set: distorted versions and FSIM per image",
                       description="A folder of photos becomes one folder per image: the reference, its distorted "
                                   "versions (the recipe's KADIS distortions) and the FSIM matrix between every pair "
                                   "(computed once). Parallel (--workers), shardable (--shard I/N), resumable.")
    _add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run :func:`grepq.data.prepare.prepare` from parsed options. Exit status 0 (no failures) or 2."""
    from ..data.prepare import PrepareSettings, prepare

    types = [t for t in args.types.split(",") if t] if args.types is not None else None
    settings = PrepareSettings(recipe=args.recipe, types=types, levels=args.levels, n_types=args.n_types,
                               n_levels=args.n_levels, seed=args.seed, min_size=args.min_size, ext=args.ext,
                               naming=args.naming, workers=args.workers, shard=args.shard,
                               progress=not args.no_progress, range_mode=args.range_mode,
                               fsim_dtype=args.fsim_dtype, on_collision=args.on_collision,
                               recursive=args.recursive)
    summary = prepare(args.inputs, args.out, settings)
    print(summary)
    for row in summary.failed:
        print(f"failed: {row.get('source')}: {row.get('reason')}", file=sys.stderr)
    return 0 if summary.ok else 2

