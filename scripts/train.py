#!/usr/bin/env python
"""Train a GRepQ model: ``python scripts/train.py --config configs/ll_paper.yaml [key=value ...]``.

The same as ``grepq train``; under torchrun: ``torchrun --nproc_per_node N scripts/train.py --config ...``.
"""
import sys

from grepq.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
