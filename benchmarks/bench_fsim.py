"""Benchmark: FSIM between the 9 versions of one image, grepq's fsim_matrix against the official loop.

The official GRepQ loader (``dataloader_contrastive.py``) calls ``piq.fsim(x, y, data_range=1.0)`` once per
pair of versions (lower triangle: 36 calls for 9 versions), in float64, in every ``__getitem__``.
:func:`grepq.data.fsim.fsim_matrix` computes each version's phase congruency, gradient and chrominance
once and combines them per pair. This script times both on the reference and 8 distorted versions
(default distortion stack, rounded to 8 bits like the files) of one photograph: ``--image PATH``, else the first
photograph (by path) of the folder given with ``--photos DIR`` or ``$GREPQ_BENCH_PHOTOS`` (e.g. BSDS500, 481 x 321),
else a 481 x 321 crop of scikit-image's astronaut; the output's ``inputs`` says which.

Usage: ``python benchmarks/bench_fsim.py [--image PATH | --photos DIR] [--repeats 3] [--threads 1]``.
Prints a table and one JSON line (prefix ``RESULT``) for benchmarks/run_all.py.
One torch thread by default: ``prepare`` runs FSIM single-threaded per worker, and on a shared CPU torch's
thread pool slows small operations down for both implementations alike. The filter-bank cache is cleared
before every grepq run, so each run pays for building the bank as a new image size would.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import piq
import torch

from grepq.data import fsim as fsim_module
from grepq.data.distortions import distortion_stack
from grepq.data.fsim import fsim_matrix
from grepq.data.io import read_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inputs  # noqa: E402  (the photographs: --photos DIR, $GREPQ_BENCH_PHOTOS or scikit-image's)


def load_photo(path: str = None) -> tuple:
    """(H, W, 3) uint8 photograph and its description; the name is recorded for the result's ``inputs``."""
    if path is None and bench_inputs.folder() is not None:
        path = str(bench_inputs.files()[0])
        bench_inputs.note("photo", [bench_inputs.relative_name(Path(path))])
    elif path is not None:
        bench_inputs.note("photo", [Path(path).name])
    if path is not None:
        img = read_image(path).permute(1, 2, 0).numpy()
        return np.round(img * 255).astype(np.uint8), Path(path).name
    from skimage import data
    bench_inputs.note("photo", ["skimage.data.astronaut()[:321, :481]"])
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
    parser.add_argument("--image", default=None, help="photograph to use (default: the first of --photos or astronaut)")
    bench_inputs.add_argument(parser)
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.image is None:
        bench_inputs.select(args.photos)
    else:
        bench_inputs.use_skimage()  # the named file only

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
    inputs = bench_inputs.describe()
    if args.image is not None:
        inputs["inputs"] = "file given with --image"
    print(f"inputs: {inputs['inputs']} ({', '.join(inputs['files'])})")
    print("RESULT " + json.dumps({
        "size": f"{versions.shape[3]}x{versions.shape[2]}", "versions": d, "pairs": pairs, "repeats": args.repeats,
        "torch_threads": args.threads, "piq_float64_s": t_ref, "grepq_float64_s": t64, "grepq_float32_s": t32,
        "max_abs_diff_float64": float(np.abs(m64 - m_ref).max()),
        "max_abs_diff_float32": float(np.abs(m32 - m_ref).max()), **inputs}))


if __name__ == "__main__":
    main()
