"""The ``grepq`` command. Each subcommand lives in ``grepq/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int`` (the exit status); this file only dispatches."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from . import __version__

#: Subcommands in the order ``grepq --help`` lists them.
COMMANDS = ("demo", "score", "fit", "pristine", "prepare", "train", "export", "eval", "tables", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grepq", description="GRepQ no-reference image quality (WACV 2024)")
    parser.add_argument("--version", action="version", version=f"grepq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"grepq.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"grepq.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
