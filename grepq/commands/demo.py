"""``grepq demo``: train and evaluate the low-level model end to end on the CPU, offline (see grepq/demo.py)."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="offline end-to-end demo: synthesise, train (CPU, minutes), evaluate, report",
                       description="Runs GRepQ end to end on scikit-image's photographs with no downloads: writes "
                                   "OUT/report.md and PNG plots and prints a summary.")
    p.add_argument("--out", default="grepq_demo", help="output folder (default: grepq_demo)")
    p.add_argument("--minutes", type=float, default=4.0, help="training time budget in minutes (default: 4)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthesis, training and splits (default: 0)")
    p.add_argument("--clip-weights", help="CLIP RN50 weights to include the high-level model (default: "
                                          "$GREPQ_CLIP_WEIGHTS or ~/.cache/clip/RN50.pt if present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--check", action="store_true",
                   help="exit with status 1 unless the trained model's zero-shot SRCC on the held-out images beats "
                        "the untrained one's (for CI and scripts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import check_gain, run_demo
    if args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    d = run_demo(args.out, minutes=args.minutes, device=args.device, seed=args.seed, clip_weights=args.clip_weights,
                 progress=not args.no_progress)
    print(f"\ngrepq demo: trained the low-level model for {d.train_steps} steps ({d.train_seconds:.0f} s).")
    print(f"zero-shot Q_L on held-out images with unseen distortions, SRCC with MS-SSIM: "
          f"trained {d.srcc_trained:.3f} vs untrained {d.srcc_untrained:.3f} "
          f"({d.srcc_trained - d.srcc_untrained:+.3f})")
    for k in sorted(d.few_shot["trained"]):
        print(f"few-shot ridge, {k} labels: trained {d.few_shot['trained'][k]:.3f} vs untrained "
              f"{d.few_shot['untrained'][k]:.3f}")
    print(d.hl_message)
    print(f"report: {d.report}")
    if args.check:
        failure = check_gain(d)
        if failure:
            print(f"grepq demo --check: FAILED: {failure}", file=sys.stderr)
            return 1
        print("grepq demo --check: passed (the trained model beats the untrained one on the held-out set)")
    return 0
