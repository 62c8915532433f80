"""``grepq export RUN_DIR``: a training run's weights (``ll_weights.pt`` / ``hl_weights.pt``, else
``checkpoint.pth``) in the official release formats (docs/method.md §7), or copied in grepq's (``--format grepq``).
The files are written by the models' own save functions."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

#: task -> (grepq's file name, the official file name)
FILES = {"ll": ("ll_weights.pt", "low_level_model_weights.tar"),
         "hl": ("hl_weights.pt", "high_level_model_weights.pth")}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a training run's weights in the official formats",
                       description="Export the weights of a grepq training run (ll_weights.pt / hl_weights.pt or "
                                   "checkpoint.pth) to the official file formats.")
    p.add_argument("run_dir", help="run directory of grepq train")
    p.add_argument("--format", choices=("official", "grepq"), default="official",
                   help="output format (default official)")
    p.add_argument("--output", "-o", help="output folder (default: the run directory)")
    p.set_defaults(func=run)


def export_run(run_dir, fmt: str = "official", output=None) -> List[Path]:
    """Write the run's weights in ``fmt`` into ``output`` (default: the run directory); returns the files written."""
    from ..models.high_level import HIGH_LEVEL_FORMAT, save_high_level
    from ..models.low_level import load_low_level, save_low_level
    from ..utils import load_weights

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir}: no such folder")
    out_dir = Path(output) if output else run_dir
    found = [(task, run_dir / names[0]) for task, names in FILES.items() if (run_dir / names[0]).is_file()]
    if not found and (run_dir / "checkpoint.pth").is_file():
        task = load_weights(run_dir / "checkpoint.pth").get("task")
        if task not in FILES:
            raise ValueError(f"{run_dir / 'checkpoint.pth'}: not a grepq training checkpoint")
        found = [(task, run_dir / "checkpoint.pth")]
    if not found:
        raise FileNotFoundError(f"{run_dir}: no ll_weights.pt, hl_weights.pt or checkpoint.pth")
    written = []
    for task, src in found:
        dst = out_dir / FILES[task][fmt == "official"]
        if task == "ll":
            written.append(save_low_level(load_low_level(src)[0], dst, fmt=fmt))
            continue
        obj = load_weights(src)
        obj = obj if obj.get("format") == HIGH_LEVEL_FORMAT else obj.get("model", {})
        if obj.get("format") != HIGH_LEVEL_FORMAT:
            raise ValueError(f"{src}: expected grepq high-level weights")
        if dst.resolve() != src.resolve():
            save_high_level(obj, dst, fmt=fmt)
        written.append(dst)
    return written


def run(args: argparse.Namespace) -> int:
    for f in export_run(args.run_dir, args.format, args.output):
        print(f"wrote {f}")
    return 0
