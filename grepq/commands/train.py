"""``grepq train --config CFG [key=value ...]``: train the LL or HL model (also under torchrun, e.g.
``torchrun --nproc_per_node 4 -m grepq train --config hl_paper --data prepared/ --run-dir runs/hl4``). A run
directory holding a checkpoint is resumed; one holding another configuration is refused."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List

EPILOG = ("Overrides are key.sub=value pairs (values parsed as YAML), e.g. ll.lr=5e-5 run.max_steps=100. "
          "Every key and its source: grepq train --config CFG --print-config.")


def add_arguments(p: argparse.ArgumentParser, remainder: bool = True) -> None:
    # REMAINDER: options may follow the overrides (argparse cannot intermix them with a "*" positional);
    # what follows the first override is parsed again by _reparse.
    p.add_argument("overrides", nargs=argparse.REMAINDER if remainder else "*", metavar="KEY=VALUE",
                   help="configuration overrides, e.g. hl.lr=1e-5")
    p.add_argument("--config", "-c", help="YAML config file or preset name (ll_paper, ll_official, hl_paper, "
                                          "hl_official, hl_authors, ll_tiny_cpu, hl_tiny_cpu); default: the "
                                          "paper's LL settings")
    p.add_argument("--run-dir", "--output-dir", dest="run_dir", help="run directory (run.dir)")
    p.add_argument("--data", help="training data root (data.root)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (run.device; default: cuda:LOCAL_RANK if available)")
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps (run.max_steps)")
    p.add_argument("--max-epochs", type=int, help="stop after N epochs (run.max_epochs)")
    p.add_argument("--limit", type=int, help="use only the first N image folders (data.limit)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the low-level (QACL) or high-level (GCL) model",
                       description="Train a GRepQ model from a YAML config; resumable; torchrun-aware.", epilog=EPILOG)
    add_arguments(p)
    p.set_defaults(func=run)


def _reparse(args: argparse.Namespace) -> argparse.Namespace:
    """Options given after the first override (``a=1 --max-steps 2 b=2``) are parsed here."""
    rest = list(args.overrides)
    if not any(a.startswith("-") for a in rest):
        return args
    p = argparse.ArgumentParser(prog="grepq train")
    add_arguments(p, remainder=False)
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    more = p.parse_intermixed_args(rest)
    args.overrides = more.overrides
    for k, v in vars(more).items():
        if k != "overrides" and v not in (None, False):
            setattr(args, k, v)
    if getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.INFO)
    return args


def _overrides(args: argparse.Namespace) -> List[str]:
    out = list(args.overrides)
    for opt, key in (("run_dir", "run.dir"), ("data", "data.root"), ("device", "run.device"),
                     ("max_steps", "run.max_steps"), ("max_epochs", "run.max_epochs"), ("limit", "data.limit")):
        value = getattr(args, opt)
        if value is not None:
            out.append(f"{key}={value}")
    return out


def run(args: argparse.Namespace) -> int:
    from ..config import dump_config
    from ..train.schema import TRAIN_SCHEMA, load_train_config

    args = _reparse(args)
    cfg = load_train_config(args.config, _overrides(args))
    if args.print_config:
        sys.stdout.write(dump_config(cfg, comments=True, schema=TRAIN_SCHEMA))
        return 0
    from ..train import train

    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        state = "finished" if result.finished else f"stopped at step {result.step} of {result.total_steps} (resumable)"
        print(f"grepq train: {state}; weights: {result.weights}", file=sys.stderr)
    return 0
