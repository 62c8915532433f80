"""``grepq prepare``: synthesise the training set (distorted versions + stored FSIM per image), SPEC §6."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from ..data import prepare as prep
    p = sub.add_parser("prepare", help="synthesise the training set: distorted versions and FSIM per image",
                       description="A folder of photos becomes one folder per image: the reference, its distorted "
                                   "versions and the FSIM matrix between every pair (computed once). Parallel "
                                   "(--workers), shardable (--shard I/N), resumable and idempotent.")
    prep.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import prepare as prep
    return prep.run_args(args)
