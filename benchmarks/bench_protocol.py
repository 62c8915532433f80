"""Benchmark: the data-efficient protocol (Table 1) on cached features of five datasets, timed.

For each dataset: features (N, 1152) = [HL 1024 | LL 128] and scores, as ``grepq eval data-efficient`` has them
once the feature cache is full; then :func:`grepq.eval.protocols.data_efficient` with the paper's setting:
label counts 50, 100, 200; 10 random 80/20 splits; ridge with alpha in {0.1, 1, 10, 100} chosen by 5-fold
cross-validation on the labelled images; the three feature sets ``grepq eval`` reports (hl+ll, hl, ll).

Sizes (docs/method.md §8): CLIVE 1162 images, KonIQ-10k 10073, CSIQ 866 (30 reference scenes, split by scene), LIVE 779
(29 scenes, split by scene) and PIPAL's training set, 23200 images of 200 reference scenes (split by scene).
Features are random (correlated columns, see :func:`synthetic`) and the scores a noisy function of them, so the
regressions have something to find; the time does not depend on the values.

Usage: ``python benchmarks/bench_protocol.py [--quick]`` (--quick: the same, it is fast). Target: the whole run
under 30 s on 2 CPU cores. Prints a Markdown table and one JSON line (prefix ``RESULT``) for run_all.py.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Dict, Optional, Tuple

import numpy as np

#: (name, images, reference scenes or None): the dataset sizes of method.md §8 (PIPAL: the training set with labels).
DATASETS: Tuple[Tuple[str, int, Optional[int]], ...] = (
    ("CLIVE", 1162, None),
    ("KonIQ-10k", 10073, None),
    ("CSIQ", 866, 30),
    ("LIVE", 779, 29),
    ("PIPAL", 23200, 200),
)
HL_DIM, LL_DIM = 1024, 128
#: Rank of the synthetic features' shared part (see :func:`synthetic`).
LATENT_DIM = 32
FEATURE_SETS = {"hl+ll": slice(0, HL_DIM + LL_DIM), "hl": slice(0, HL_DIM), "ll": slice(HL_DIM, HL_DIM + LL_DIM)}
#: Target of the issue: all five datasets in under 30 s on 2 cores.
TARGET_SECONDS = 30.0


def synthetic(n: int, n_refs: Optional[int], seed: int) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Features (n, 1152) float32, scores (n,), scene labels (n,) or None.

    Like real features, the columns are correlated: a 32-dimensional latent quality/content code mixed into the 1152
    columns plus noise; the score is a noisy function of the code.
    """
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, LATENT_DIM))
    mix = rng.standard_normal((LATENT_DIM, HL_DIM + LL_DIM)) / np.sqrt(LATENT_DIM)
    X = (latent @ mix + 0.5 * rng.standard_normal((n, HL_DIM + LL_DIM))).astype(np.float32)
    X[:, :HL_DIM] *= 3.0
    signal = latent @ rng.standard_normal(LATENT_DIM)
    y = signal + 0.6 * signal.std() * rng.standard_normal(n)
    refs = None if n_refs is None else np.array([f"ref{k:03d}" for k in rng.integers(0, n_refs, n)])
    if refs is not None:  # every scene present
        refs[:n_refs] = [f"ref{k:03d}" for k in range(n_refs)]
    return X, y, refs


def run(quick: bool = False, n_splits: int = 10) -> Dict[str, object]:
    """Time ``data_efficient`` on the five datasets; returns seconds per dataset and in total, and the median SRCCs."""
    from grepq.eval.protocols import data_efficient
    from grepq.eval.regression import RegressionSettings
    from grepq.eval.splits import PAPER_LABEL_COUNTS

    data = [(name, *synthetic(n, refs, seed=i)) for i, (name, n, refs) in enumerate(DATASETS)]
    per: Dict[str, float] = {}
    medians: Dict[str, float] = {}
    t_all = time.perf_counter()
    for name, X, y, refs in data:
        t = time.perf_counter()
        res = data_efficient(X, y, RegressionSettings(splits=n_splits), refs=refs, feature_sets=FEATURE_SETS,
                             dataset=name)
        per[name] = time.perf_counter() - t
        medians[name] = float(next(r["srcc"] for r in res.medians
                                   if r["n_train"] == 200 and r["feature_set"] == "hl+ll"))
    total = time.perf_counter() - t_all
    return {"datasets": [{"name": n, "images": k, "scenes": r} for n, k, r in DATASETS], "seconds": per,
            "total_s": total, "n_splits": n_splits, "label_counts": list(PAPER_LABEL_COUNTS),
            "feature_sets": list(FEATURE_SETS), "median_srcc_200_hl+ll": medians, "cpus": os.cpu_count()}


def table(res: Dict[str, object]) -> str:
    lines = [f"# data-efficient protocol: {res['n_splits']} splits x label counts {res['label_counts']} x feature sets "
             f"{res['feature_sets']}, ridge, alpha by 5-fold CV",
             "| dataset | images | scenes | seconds | median SRCC (200, hl+ll) |", "|---|---|---|---|---|"]
    for d in res["datasets"]:
        lines.append(f"| {d['name']} | {d['images']} | {d['scenes'] or '-'} | {res['seconds'][d['name']]:.2f} | "
                     f"{res['median_srcc_200_hl+ll'][d['name']]:.3f} |")
    lines.append(f"| **all five** | | | **{res['total_s']:.2f}** | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="accepted for run_all.py; the run is the same")
    ap.add_argument("--splits", type=int, default=10)
    args = ap.parse_args()
    res = run(args.quick, args.splits)
    print(table(res))
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
