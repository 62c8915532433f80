"""``grepq tables RESULTS_DIR``: Markdown Tables 1-4 (measured beside the paper's numbers) and summary plots."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("tables", help="render Tables 1-4 and plots from result files of 'grepq eval'",
                       description="Render the paper's Tables 1-4 (beside the paper's numbers) and plots from the "
                                   "result files of 'grepq eval' into the results folder.")
    p.add_argument("results", help="folder of result JSON files (the --out of grepq eval)")
    p.add_argument("--output", default="tables.md", help="file name written inside the folder (default tables.md)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..eval import tables
    try:
        text = tables.render_all(args.results, args.output)
        if not args.no_plots:
            rows, _ = tables.load_rows(args.results)
            de_rows = [r for r in rows if r.get("protocol") == "data_efficient"]
            if de_rows:
                from ..eval.plots import plot_srcc_vs_labels
                plot_srcc_vs_labels(de_rows, str(Path(args.results) / "srcc_vs_labels.png"))
    except (ValueError, FileNotFoundError) as exc:
        print(f"grepq tables: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0
