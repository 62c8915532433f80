"""``grepq reproduce --config FILE``: the paper's Tables 1-4 from one YAML of weights and dataset folders.

Resumable (a killed run restarts at the first step not done), ``--dry-run`` lists the steps and the images each
dataset will read before any compute. The work is in :mod:`grepq.eval.reproduce`.
"""
from __future__ import annotations

import argparse
import sys

EPILOG = ("Example: grepq reproduce --config configs/reproduce_paper.yaml --dry-run, then without --dry-run. "
          "Every key and its source: grepq reproduce --config FILE --print-config.")


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="the paper's tables in one resumable run from one YAML file",
                       description="Run Tables 1-4 of the paper on the datasets of a YAML file and write the "
                                   "tables beside the paper's numbers, a report and run_info.json.", epilog=EPILOG)
    p.add_argument("--config", "-c", required=True,
                   help="YAML: weights, a root per dataset, tables (see configs/reproduce_paper.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override (applied last), e.g. datasets.clive.root=/data/ChallengeDB_release, "
                        "protocol.splits=3, weights.ll_variants.ssim=runs/ll_ssim/ll_weights.pt")
    p.add_argument("--dry-run", action="store_true",
                   help="list every step and the images each dataset will read, then stop (no compute)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--device", help="cpu, cuda or cuda:N (scoring.device)")
    p.add_argument("--out", help="output folder (output.out)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, dump_config, load_config
    from ..data.datasets import DatasetError
    from ..eval.schema import REPRODUCE_SCHEMA
    values = {k: v for k, v in (("scoring.device", args.device), ("output.out", args.out)) if v is not None}
    try:
        cfg = load_config(args.config, args.overrides, schema=REPRODUCE_SCHEMA, values=values)
        if args.print_config:
            sys.stdout.write(dump_config(cfg, comments=True, schema=REPRODUCE_SCHEMA))
            return 0
        from ..eval.reproduce import run_reproduce
        result = run_reproduce(cfg, dry_run=args.dry_run)
    except (ConfigError, DatasetError, ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        print(f"grepq reproduce: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        print(result["tables"])
        print(f"grepq reproduce: report {result['report']}", file=sys.stderr)
    return 0

