"""``grepq report SCORES --out DIR``: a static HTML page of a scoring run (:mod:`grepq.eval.report`)."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="a static HTML report of 'grepq score' output (thumbnails sorted by score)",
                       description="Write DIR/index.html: the images of a 'grepq score' run as thumbnails sorted "
                                   "best first (q_pred if present, else GRepQ_Z), their scores and quality maps, a "
                                   "histogram and the run's metadata. Opens from disk, no server or network.")
    p.add_argument("scores", metavar="SCORES",
                   help="the scores file of 'grepq score': .csv (with its sidecar scores.csv -> scores.meta.json "
                        "if present) or .json")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="folder to write index.html, thumbs/ and maps/ into (existing thumbnails are reused)")
    p.add_argument("--title", default=None, help="page title (default: 'GRepQ scores: <file name>')")
    p.add_argument("--thumb-size", type=int, default=256, metavar="PX",
                   help="longest side of the thumbnails in pixels (default 256)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while making thumbnails")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..eval.report import write_report
    try:
        index = write_report(args.scores, args.out, title=args.title, thumb_size=args.thumb_size,
                             progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as exc:
        print(f"grepq report: {exc}", file=sys.stderr)
        return 2
    print(index)
    return 0
