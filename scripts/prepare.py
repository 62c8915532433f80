#!/usr/bin/env python
"""Synthesise the training set: ``python scripts/prepare.py ARGS`` is ``grepq prepare ARGS`` (see ``grepq prepare
--help``)."""
import sys

from grepq.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
