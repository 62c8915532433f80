"""The ``grepq`` command. Each subcommand is ``grepq/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int`` (the exit status); this file dispatches, and is the one place that turns a known error into
``grepq <command>: message`` on stderr and exit status 2."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from .version import __version__

#: Subcommands in the order ``grepq --help`` lists them.
COMMANDS = ("demo", "score", "report", "fit", "select", "pristine", "prepare", "train", "export", "eval", "tables",
            "reproduce")

#: Errors that mean a bad input, not a bug: ValueError (grepq's own input errors derive from it: ConfigError,
#: DataError, DatasetError, RegressorFileError, WeightMismatchError, ShardError; and every argument check of the
#: library raises it) and OSError (files: FileNotFoundError, PermissionError, ImageReadError).
KNOWN_ERRORS = (ValueError, OSError)
#: grepq's RuntimeError types, by (module, class): a run that failed -> its exit status. Other RuntimeErrors
#: (torch's, bugs) keep their traceback.
RUN_FAILURES = {("grepq.train.engine", "NonFiniteLossError"): 1, ("grepq.eval.metrics", "FitError"): 2}


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``grepq`` parser. With ``only`` (a command name), only that command's module is imported; the others
    get bare entries (so ``grepq score --help`` does not import what ``train`` needs)."""
    parser = argparse.ArgumentParser(prog="grepq", description="GRepQ no-reference image quality (WACV 2024)")
    parser.add_argument("--version", action="version", version=f"grepq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (also after the command)")
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
        # SUPPRESS: without -v after the command, the top-level value stands
        sub.choices[name].add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                       help="log more")
    return parser


def _command_of(argv: List[str]) -> Optional[str]:
    """The command a command line names (its first word that is not an option), if it is one of COMMANDS."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``grepq ARGV``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_of(argv))
    args = parser.parse_args(argv, namespace=argparse.Namespace(argv=argv))  # argv: for the run metadata
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KNOWN_ERRORS as exc:
        return _report(args.command, exc, 2)
    except RuntimeError as exc:
        status = RUN_FAILURES.get((type(exc).__module__, type(exc).__name__))
        if status is None:
            raise
        return _report(args.command, exc, status)


def _report(command: str, exc: BaseException, status: int) -> int:
    logging.getLogger("grepq").info("the error's traceback (-v):", exc_info=exc)
    print(f"grepq {command}: {exc}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
