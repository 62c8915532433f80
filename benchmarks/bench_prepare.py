"""Benchmark: `grepq prepare` time per image, the authors' recipe (default) against the earlier `--recipe fixed`.

Per image, ``prepare`` decodes the photograph, makes its 8 distorted versions, writes 9 files and computes FSIM
between all 36 pairs. The authors' recipe draws 4 of 12 KADIS types per image (lens and motion blur, a non-local
means denoiser, Lab conversions ...) where ``fixed`` always makes Gaussian blur, JPEG, white noise and HSV
saturation; this measures what that costs. Target (issue 10): the authors' recipe within 2x of ``fixed`` per image.

Usage: ``python benchmarks/bench_prepare.py PHOTO_FOLDER [--n 50] [--json out.json]`` (e.g. BSDS500 photographs;
the repository does not need them). The first ``--n`` images by name are prepared one at a time, 1 worker,
alternating which recipe goes first, so that the load of a shared machine falls on both alike; each image is timed
by ``prepare`` itself (``PrepareSummary.done[i]["seconds"]``: read, distort, write, FSIM). The load average
before and after is printed with the result.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from grepq.data.io import list_images
from grepq.data.prepare import prepare

RECIPES = ("authors", "fixed")
TARGET_RATIO = 2.0


def run(folder: Path, n: int, workdir: Path) -> dict:
    """Per-image seconds of each recipe on the first ``n`` images of ``folder`` (interleaved)."""
    if not Path(folder).is_dir():
        raise SystemExit(f"bench_prepare: photo folder {folder} does not exist or is not a folder")
    images = sorted(list_images(folder))[:n]
    if not images:
        raise SystemExit(f"bench_prepare: no images in {folder}")
    seconds = {r: [] for r in RECIPES}
    load_before = os.getloadavg()
    for k, path in enumerate(images):
        order = RECIPES if k % 2 == 0 else RECIPES[::-1]
        for recipe in order:
            summary = prepare(path, workdir / recipe, recipe=recipe, progress=False, workers=1)
            if not summary.ok:
                raise SystemExit(f"bench_prepare: {path} failed: {summary.failed}")
            seconds[recipe].append(summary.done[0]["seconds"])
        print(f"\r{k + 1}/{len(images)} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    result = {"images": len(images), "inputs": f"folder {Path(folder).resolve().name}", "count": len(images),
              "files": [Path(os.path.relpath(p, folder)).as_posix() for p in images],  # names only, no machine path
              "torch_threads": torch.get_num_threads(),
              "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()]}
    for r in RECIPES:
        result[r] = {"mean_s": round(statistics.mean(seconds[r]), 3),
                     "median_s": round(statistics.median(seconds[r]), 3)}
    result["ratio_mean"] = round(result["authors"]["mean_s"] / result["fixed"]["mean_s"], 2)
    result["ratio_median"] = round(result["authors"]["median_s"] / result["fixed"]["median_s"], 2)
    result["target"] = f"authors within {TARGET_RATIO}x of fixed per image"
    result["ok"] = result["ratio_mean"] <= TARGET_RATIO
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of photographs (e.g. BSDS500)")
    parser.add_argument("--n", type=int, default=50, help="images (first N by name; default %(default)s)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # prepare's workers run FSIM single-threaded
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.folder, args.n, args.workdir or Path(tmp))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
