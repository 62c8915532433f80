#!/usr/bin/env python
"""One evaluation protocol on one dataset: ``python scripts/evaluate.py ARGS`` is ``grepq eval ARGS`` (see ``grepq eval
--help``)."""
import sys

from grepq.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
