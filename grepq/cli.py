"""The ``grepq`` command. Each subcommand lives in ``grepq/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int`` (the exit status); this file only dispatches."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from .version import __version__

#: Subcommands in the order ``grepq --help`` lists them.
COMMANDS = ("demo", "score", "report", "fit", "pristine", "prepare", "train", "export", "eval", "tables", "reproduce")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``grepq`` parser. With ``only`` (a command name), only that command's module is imported and its full
    parser built; the others get bare entries (so ``grepq score ...`` does not import what ``train`` or ``export``
    need, e.g. torch for ``--help``)."""
    parser = argparse.ArgumentParser(prog="grepq", description="GRepQ no-reference image quality (WACV 2024)")
    parser.add_argument("--version", action="version", version=f"grepq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        try:
            module = importlib.import_module(f"grepq.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"grepq.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def _command_of(argv: List[str]) -> Optional[str]:
    """The command a command line names (its first word that is not an option), if it is one of COMMANDS."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_of(argv))
    args = parser.parse_args(argv, namespace=argparse.Namespace(argv=argv))  # argv: for the run metadata
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
