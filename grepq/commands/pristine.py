"""``grepq pristine DIR -o F.hdf5``: select pristine patches from a folder of pristine images (docs/method.md §4)."""
from __future__ import annotations

import argparse
import sys

from ..scoring import settings as pr  # torch-free constants: the parser does not import torch


def add_parser(sub) -> None:
    p = sub.add_parser("pristine", help="select pristine patches from a folder of images into the official HDF5 format",
                       description="Select the sharp, colourful 96x96 patches of pristine images (Q_L's pristine "
                                   "model, paper §3.3) and write them in the official HDF5 format.")
    p.add_argument("folder", help="folder of pristine images (the paper uses CL-MI's 125 pristine images)")
    p.add_argument("--output", "-o", default=None, help=f"HDF5 file to write (default: {pr.default_hdf5_name()})")
    p.add_argument("--patch-size", type=int, default=pr.PATCH_SIZE, help="R (default 96)")
    p.add_argument("--sharpness", type=float, default=pr.SHARPNESS_THRESHOLD,
                   help="sharpness threshold factor (default 0.75)")
    p.add_argument("--colorfulness", type=float, default=pr.COLORFULNESS_THRESHOLD,
                   help="colourfulness threshold factor (default 0.80)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..scoring import pristine as pr
    out = args.output or pr.default_hdf5_name(args.patch_size, args.sharpness, args.colorfulness)
    try:
        patches, skipped = pr.select_pristine_patches(args.folder, args.patch_size, args.sharpness, args.colorfulness)
    except (ValueError, FileNotFoundError) as exc:
        print(f"grepq pristine: {exc}", file=sys.stderr)
        return 2
    for path, why in skipped:
        print(f"grepq pristine: skipped {path}: {why}", file=sys.stderr)
    pr.write_pristine_hdf5(patches, out)
    print(f"wrote {patches.shape[0]} patches of {args.patch_size}x{args.patch_size} to {out}")
    return 0
