#!/usr/bin/env python
"""The paper's tables in one resumable run: ``python scripts/reproduce_paper.py ARGS`` is ``grepq reproduce ARGS`` (see
``grepq reproduce --help``)."""
import sys

from grepq.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
