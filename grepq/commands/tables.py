"""``grepq tables RESULTS_DIR``: Markdown Tables 1-4 (measured beside the paper's numbers) and summary plots."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("tables", help="render Tables 1-4 and plots from result files of 'grepq eval'",
                       description="Read every result JSON under a folder (recursively) and write the paper's "
                                   "Tables 1-4 there, measured beside the paper's numbers, and srcc_vs_labels.png. "
                                   "Exit status 1 when a result file cannot be read (it is named) or none is found.")
    p.add_argument("results", help="folder of result JSON files (the --out of grepq eval)")
    p.add_argument("--output", default="tables.md", help="file name written inside the folder (default tables.md)")
    p.add_argument("--no-plots", action="store_true", help="do not write srcc_vs_labels.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..eval import tables
    try:
        text, loaded = tables.render_all(args.results, args.output)
        de_rows = [r for r in loaded.rows if r.get("protocol") == "data_efficient"]
        if de_rows and not args.no_plots:
            from ..eval.plots import plot_srcc_vs_labels
            plot_srcc_vs_labels(de_rows, str(Path(args.results) / "srcc_vs_labels.png"))
    except (ValueError, FileNotFoundError) as exc:
        print(f"grepq tables: {exc}", file=sys.stderr)
        return 2
    print(text)
    for path, why in loaded.unreadable:
        print(f"grepq tables: warning: {path} is not in the tables: {why}", file=sys.stderr)
    if not loaded.files:
        print(f"grepq tables: no result file in {args.results}", file=sys.stderr)
    return 1 if loaded.unreadable or not loaded.files else 0
