"""Benchmark: FSIM between the 9 versions of one image, grepq's fsim_matrix against the official loop.

The official GRepQ loader (``dataloader_contrastive.py``) calls ``piq.fsim(x, y, data_range=1.0)`` once per
pair of versions (lower triangle: 36 calls for 9 versions), in float64, in every ``__getitem__``.
:func:`grepq.data.fsim.fsim_matrix` computes each version's phase congruency, gradient and chrominance
once and combines them per pair. This script times both on the reference and 8 distorted versions
(default distortion stack, rounded to 8 bits like the files) of a BSDS-sized photograph (481 x 321): a BSDS500
image from /work/shared/data/bsds500 if present, otherwise a crop of skimage's astronaut.

Usage: ``python benchmarks/bench_fsim.py [--image PATH] [--repeats 3] [--threads 1]``.
One torch thread by default: ``prepare`` runs FSIM single-threaded per worker, and on a shared CPU torch's
thread pool slows small operations down for both implementations alike. The filter-bank cache is cleared
before every grepq run, so each run pays for building the bank as a new image size would.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import piq
import torch

from grepq.data import fsim as fsim_module
from grepq.data.distortions import distortion_stack
from grepq.data.fsim import fsim_matrix
from grepq.data.io import read_image

BSDS = Path("/work/shared/data/bsds500")


def load_photo(path: str = None) -> tuple:
    """(H, W, 3) uint8 photograph and its description."""
    if path is None and BSDS.is_dir():
        candidates = sorted(BSDS.glob("*/*.jpg"))
        if candidates:
            path = str(candidates[0])
    if path is not None:
        img = read_image(path).permute(1, 2, 0).numpy()
        return np.round(img * 255).astype(np.uint8), path
    from skimage import data
    return data.astronaut()[:321, :481].copy(), "skimage.data.astronaut()[:321, :481]"


def official_matrix(v: torch.Tensor) -> np.ndarray:
    """The official loop: one piq.fsim call per pair of the lower triangle, symmetrised, diagonal 1."""
    d = v.shape[0]
    m = np.zeros((d, d))
    for i in range(d):
        for j in range(i):
            m[i, j] = piq.fsim(v[i:i + 1], v[j:j + 1], data_range=1.0).item()
    m = m + m.T
    np.fill_diagonal(m, 1.0)
    return m


def best_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="photograph to use (default: a BSDS500 image or astronaut)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    photo, source = load_photo(args.image)
    ref = photo.astype(np.float32) / 255.0
    stack = [ref] + [img for _, img in distortion_stack(ref, seed=0)]
    u8 = np.stack([np.round(img * 255).astype(np.uint8) for img in stack])
    versions = torch.from_numpy(u8).permute(0, 3, 1, 2).to(torch.float64) / 255.0  # as imread(...) / 255
    d = versions.shape[0]
    pairs = d * (d - 1) // 2

    def ours(dtype):
        fsim_module._filter_bank.cache_clear()  # cold: pay for the filter bank, as a new image size would
        return fsim_matrix(versions.to(dtype), dtype=dtype).double().numpy()

    t_ref, m_ref = best_time(lambda: official_matrix(versions), args.repeats)
    t64, m64 = best_time(lambda: ours(torch.float64), args.repeats)
    t32, m32 = best_time(lambda: ours(torch.float32), args.repeats)

    print(f"image: {source}  {versions.shape[2]}x{versions.shape[3]}  versions D={d}  pairs={pairs}  "
          f"torch threads={args.threads}  best of {args.repeats}")
    print(f"{'method':<40}{'seconds':>9}{'pairs/s':>10}{'speed-up':>10}{'max |diff|':>13}")
    print(f"{'piq.fsim per pair, float64 (official)':<40}{t_ref:>9.3f}{pairs / t_ref:>10.2f}{1.0:>10.1f}{0.0:>13.1e}")
    print(f"{'grepq fsim_matrix, float64':<40}{t64:>9.3f}{pairs / t64:>10.2f}{t_ref / t64:>10.1f}"
          f"{np.abs(m64 - m_ref).max():>13.1e}")
    print(f"{'grepq fsim_matrix, float32':<40}{t32:>9.3f}{pairs / t32:>10.2f}{t_ref / t32:>10.1f}"
          f"{np.abs(m32 - m_ref).max():>13.1e}")


if __name__ == "__main__":
    main()
