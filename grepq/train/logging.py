"""Training logs on rank 0: ``log.jsonl``, optional TensorBoard, tqdm. Lines ``{"type": "step", "step", "epoch",
"loss", "lr", ...}`` every ``run.log_every`` steps and ``{"type": "epoch", "epoch", "step", "loss", "steps",
"seconds"}`` per epoch (epochs from 0, steps from 1). On resume the lines past the checkpoint are dropped first.
"""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Dict, List

from tqdm import tqdm

from ..utils import atomic_write

__all__ = ["RunLogger", "truncate_log", "read_log"]

log = logging.getLogger("grepq.train")


def read_log(path: Path) -> List[Dict]:
    """The records of a ``log.jsonl`` file ([] when there is none). Only a torn last line (no newline at the end: a
    process killed mid-write) is skipped; an unparsable line elsewhere is a ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):
                continue
            raise ValueError(f"{path}, line {number}: not a JSON record ({line[:60]!r}); the log is damaged") from None
    return out


def truncate_log(path: Path, step: int, epoch: int) -> None:
    """Keep step lines up to ``step`` and epoch lines of epochs before ``epoch`` (the checkpoint's position)."""
    path = Path(path)
    if not path.is_file():
        return
    keep = [r for r in read_log(path)
            if (r.get("type") == "step" and r.get("step", 0) <= step)
            or (r.get("type") == "epoch" and r.get("epoch", 0) < epoch)
            or r.get("type") not in ("step", "epoch")]
    with atomic_write(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class RunLogger:
    """JSON lines + optional TensorBoard + a tqdm bar over optimiser steps, all on the main process only."""

    def __init__(self, run_dir: Path, is_main: bool, total_steps: int, initial_step: int = 0,
                 tensorboard: bool = False, progress: bool = True, desc: str = "train"):
        self.is_main = is_main
        self.path = Path(run_dir) / "log.jsonl"
        self.writer = None
        if is_main and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except ImportError:
                log.warning("run.tensorboard is set but the tensorboard package is not installed; "
                            "logging to log.jsonl only (pip install tensorboard)")
        self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc, file=sys.stderr, dynamic_ncols=True,
                        disable=not (is_main and progress))

    def write(self, record: Dict) -> None:
        if not self.is_main:
            return
        record = {k: _clean(v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            step = record.get("step", 0)
            prefix = record.get("type", "step")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def step(self, scalars: Dict[str, float]) -> None:
        if self.is_main:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{scalars.get('loss', float('nan')):.4g}", refresh=False)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
