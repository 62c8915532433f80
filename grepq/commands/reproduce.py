"""``grepq reproduce --config FILE``: the paper's Tables 1-4 from one YAML of weights and dataset folders (resumable;
``--dry-run`` plans without compute). The work is in :mod:`grepq.eval.reproduce`."""
from __future__ import annotations

import argparse
import sys

EPILOG = ("Example: grepq reproduce --config configs/reproduce_paper.yaml --dry-run, then without --dry-run. "
          "Every key and its source: grepq reproduce --config FILE --print-config.")
#: Option (argparse dest) -> the configuration key it sets; its help is the key's.
OPTIONS = {"device": "scoring.device", "out": "output.out"}


def add_parser(sub) -> None:
    from ..eval.schema import REPRODUCE_SCHEMA
    p = sub.add_parser("reproduce", help="the paper's tables in one resumable run from one YAML file",
                       description="Run Tables 1-4 of the paper on the datasets of a YAML file and write the "
                                   "tables beside the paper's numbers, a report and run_info.json.", epilog=EPILOG)
    p.add_argument("--config", "-c", required=True,
                   help="YAML: weights, a root per dataset, tables (see configs/reproduce_paper.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="configuration override (applied last), e.g. datasets.clive.root=/data/ChallengeDB_release, "
                        "protocol.splits=3, weights.ll_per_pair_weight.ssim=runs/ll_ssim/ll_weights.pt")
    p.add_argument("--dry-run", action="store_true",
                   help="list every step and the images each dataset will read, then stop (no compute)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    for dest, key in OPTIONS.items():
        p.add_argument(f"--{dest}", help=f"{REPRODUCE_SCHEMA.flat[key].doc} ({key})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, dump_config, load_config
    from ..data.datasets import DatasetError
    from ..eval.schema import REPRODUCE_SCHEMA
    values = {key: getattr(args, dest) for dest, key in OPTIONS.items() if getattr(args, dest) is not None}
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
    if args.dry_run:
        return 0
    print(result["tables"])
    print(f"grepq reproduce: report {result['report']}", file=sys.stderr)
    return 1 if result["unreadable"] else 0
