"""Benchmark: greedy k-center selection (grepq.eval.selection) — its speed, and whether it helps on synthetic data.

1. Speed: seconds to standardise and per selected centre on ``--rows`` x ``--cols`` float32 features (default
   100k x 1152, GRepQ's HL + LL width), and the process's peak memory.
2. Labels: synthetic features only (no trained GRepQ model here): 30 clusters of Zipf-distributed sizes in an
   8-D latent space, mapped to 96 columns at scale 1 and 32 at scale 50 (like HL beside LL), a smooth non-linear
   score of the latent. For 10 splits (:func:`split_indices`) and 3 data seeds, 50/100/200 labels chosen by
   "random" (the protocol's rule) or "k-center" from the training part; ridge (alpha 10, standardised) on them,
   SRCC on the test part; the medians and the k-center objective (coverage radius) of each rule.

Usage: ``python benchmarks/bench_selection.py [--rows 100000] [--cols 1152] [--centres 10] [--skip-speed]``.
Not part of ``run_all.py``; the numbers depend on the synthetic design and say nothing about real photos.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from scipy.stats import spearmanr

from grepq.eval.regression import fit_ridge_path
from grepq.eval.selection import coverage_radius, k_center_greedy, select_subset
from grepq.eval.splits import split_indices


def speed(rows: int, cols: int, centres: int) -> None:
    x = np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)
    t = time.perf_counter()
    k_center_greedy(x, 1)
    one = time.perf_counter() - t
    t = time.perf_counter()
    k_center_greedy(x, centres + 1)
    per = (time.perf_counter() - t - one) / centres
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"speed: {rows} x {cols} float32 ({x.nbytes / 2**20:.0f} MiB): standardise + first centre {one:.2f} s, "
          f"{per:.3f} s per further centre; peak RSS {peak:.0f} MiB")


def synthetic(seed: int, n: int = 3000, n_clusters: int = 30):
    rng = np.random.default_rng(seed)
    sizes = rng.zipf(1.6, n_clusters).clip(1, 600)
    sizes = np.round(sizes / sizes.sum() * n).astype(int).clip(1)
    lab = np.repeat(np.arange(n_clusters), sizes)
    lat = rng.normal(0, 1, (n_clusters, 8))[lab] + rng.normal(0, 0.35, (lab.size, 8))
    f1 = lat @ rng.normal(0, 1, (8, 96)) + rng.normal(0, 0.5, (lab.size, 96))
    f2 = (lat @ rng.normal(0, 1, (8, 32)) + rng.normal(0, 0.5, (lab.size, 32))) * 50
    y = lat[:, 0] + 0.5 * np.tanh(lat[:, 1]) + 0.3 * lat[:, 2] ** 2 + rng.normal(0, 0.2, lab.size)
    return np.hstack([f1, f2]), y


def labels() -> None:
    res = {}
    for data_seed in range(3):
        x, y = synthetic(data_seed)
        for s in range(10):
            train, test = split_indices(len(y), s, seed=0)
            for rule in ("random", "k-center"):
                sel = select_subset(x, train, 200, rule, [0, s])
                for n in (50, 100, 200):
                    path = fit_ridge_path(x[sel[:n]], y[sel[:n]], alphas=(10.0,), standardize=True)
                    srcc = spearmanr(path.predict(x[test])[0], y[test])[0]
                    res.setdefault((n, rule), []).append((srcc, coverage_radius(x, sel[:n], candidates=train)))
    for (n, rule), v in sorted(res.items()):
        a = np.array(v)
        print(f"labels: n={n:3d} {rule:8s} median test SRCC {np.median(a[:, 0]):.3f}, "
              f"median coverage radius {np.median(a[:, 1]):.2f} ({len(v)} runs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cols", type=int, default=1152)
    ap.add_argument("--centres", type=int, default=10)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    if not args.skip_speed:
        speed(args.rows, args.cols, args.centres)
    labels()


if __name__ == "__main__":
    main()
