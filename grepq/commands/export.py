"""``grepq export RUN_DIR --format official``: a training run's weights in the official release formats.

* LL: ``low_level_model_weights.tar`` — ``{'model': {'state_dict': <246 keys>}, ...}`` (docs/method.md §7);
* HL: ``high_level_model_weights.pth`` — the state dict of CLIP's ``visual`` module, keys without prefix.

``--format grepq`` copies the run's weights in grepq's format instead (``ll_weights.pt`` / ``hl_weights.pt``).
The weights are read from ``ll_weights.pt`` / ``hl_weights.pt``, or from ``checkpoint.pth`` if those are missing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Tuple

import torch

SOURCES = {"ll": ("ll_weights.pt", "low_level_model_weights.tar"),
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


def _read(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def export_run(run_dir, fmt: str = "official", output=None) -> List[Path]:
    """Write the run's weights in ``fmt`` into ``output`` (default: the run directory); returns the files written."""
    from ..models.low_level import load_low_level, save_low_level

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir}: no such folder")
    out_dir = Path(output) if output else run_dir
    found: List[Tuple[str, Path]] = [(t, run_dir / src) for t, (src, _) in SOURCES.items() if (run_dir / src).is_file()]
    if not found and (run_dir / "checkpoint.pth").is_file():
        ckpt = _read(run_dir / "checkpoint.pth")
        task = ckpt.get("task")
        if task not in SOURCES:
            raise ValueError(f"{run_dir / 'checkpoint.pth'}: not a grepq training checkpoint")
        found = [(task, run_dir / "checkpoint.pth")]
    if not found:
        raise FileNotFoundError(f"{run_dir}: no ll_weights.pt, hl_weights.pt or checkpoint.pth")
    written = []
    for task, src in found:
        name = SOURCES[task][1] if fmt == "official" else SOURCES[task][0]
        dst = out_dir / name
        if task == "ll":
            model, _ = load_low_level(src)
            written.append(save_low_level(model, dst, fmt=fmt))
        else:
            obj = _read(src)
            obj = obj["model"] if obj.get("format") != "grepq-high-level" else obj
            if obj.get("format") != "grepq-high-level":
                raise ValueError(f"{src}: expected grepq high-level weights")
            sd = obj["state_dict"]
            if fmt == "official":
                visual = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".tmp")
                torch.save(visual, tmp)
                tmp.replace(dst)
                written.append(dst)
            else:
                if dst.resolve() != src.resolve():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    torch.save({"format": "grepq-high-level", "arch": obj.get("arch", {}), "state_dict": sd}, dst)
                written.append(dst)
    return written


def run(args: argparse.Namespace) -> int:
    try:
        files = export_run(args.run_dir, args.format, args.output)
    except (FileNotFoundError, ValueError) as exc:
        print(f"grepq export: {exc}", file=sys.stderr)
        return 2
    for f in files:
        print(f"wrote {f}")
    return 0


def main(argv=None) -> int:
    """``python -m grepq.commands.export RUN_DIR`` (the same as ``grepq export``)."""
    parser = argparse.ArgumentParser(prog="grepq export")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["export", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
