#!/usr/bin/env python
"""Zero-shot scores of images and folders: ``python scripts/score.py ARGS`` is ``grepq score ARGS`` (see ``grepq score
--help``)."""
import sys

from grepq.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
