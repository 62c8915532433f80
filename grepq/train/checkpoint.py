"""The run directory: a resumable ``checkpoint.pth`` (atomic; weights_only; ``grepq score`` reads its model)::

    {"format": "grepq-train-checkpoint", "version": 1, "task", "model": <grepq LL/HL weight dict>, "optimizer",
     "scheduler", "scaler" (run.amp fp16) or None, "state": TrainState, "config", "world_size", "data", "rng"}
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
import yaml

from ..config import ConfigError, dump_config
from ..utils import atomic_write
from ..version import git_revision
from .schema import MAY_DIFFER_ON_RESUME, TRAIN_SCHEMA, config_differences

__all__ = ["TrainState", "CHECKPOINT_FILE", "CONFIG_FILE", "RUN_INFO_FILE", "LOG_FILE", "save_checkpoint",
           "load_checkpoint", "rng_state", "set_rng_state", "check_run_dir", "write_run_files",
           "update_run_info", "remove_stale_temporaries"]

CHECKPOINT_FILE = "checkpoint.pth"
CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run_info.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FORMAT = "grepq-train-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainState:
    """Where a run is: optimiser steps done, current epoch (0-based), batches done in it, the epoch's loss sum."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0


def rng_state() -> Dict[str, Any]:
    """All global RNG states, in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, obj: Dict[str, Any]) -> Path:
    """``torch.save`` atomically (fsync, then rename): a reader never sees half a file."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a training checkpoint (weights_only) and check its format."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or foreign files
        raise ValueError(f"{path}: cannot read the training checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a grepq training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return obj


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the ``.<file>.tmp<pid>`` files of atomic writes a killed run left (never renamed, so unused)."""
    for stale in run_dir.glob(".*.tmp[0-9]*"):
        stale.unlink(missing_ok=True)


def check_run_dir(run_dir: Path, cfg: Dict[str, Any], checkpoint: Optional[Dict[str, Any]] = None) -> None:
    """An existing run directory must hold a run of the same configuration (the checkpoint's, else config.yaml's;
    keys allowed to differ aside): a :class:`ConfigError` names every differing key with both values."""
    saved = None
    source = ""
    if checkpoint is not None:
        saved, source = checkpoint.get("config"), str(run_dir / CHECKPOINT_FILE)
    elif (run_dir / CONFIG_FILE).is_file():
        try:
            saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{run_dir / CONFIG_FILE}: unreadable ({exc}); use another run directory") from None
        source = str(run_dir / CONFIG_FILE)
    if not isinstance(saved, dict):
        return
    diffs = config_differences(saved, cfg)
    if diffs:
        listing = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in diffs)
        raise ConfigError(
            f"run directory {run_dir} holds a run with a different configuration ({source}): {listing}. "
            f"Use a new run.dir, or the run's values to resume it (only {', '.join(MAY_DIFFER_ON_RESUME)} may differ)")


def write_run_files(run_dir: Path, cfg: Dict[str, Any], info: Dict[str, Any]) -> None:
    """``config.yaml`` (the resolved configuration, each key with its note) and ``run_info.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_text(run_dir / CONFIG_FILE, dump_config(cfg, comments=True, schema=TRAIN_SCHEMA))
    _write_text(run_dir / RUN_INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")


def update_run_info(run_dir: Path, **fields: Any) -> None:
    path = run_dir / RUN_INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info.update(fields)
    _write_text(path, json.dumps(info, indent=2, sort_keys=True) + "\n")


def run_info(cfg: Dict[str, Any], world_size: int, device: str, backend: Optional[str]) -> Dict[str, Any]:
    """What ``run_info.json`` records at the start of a run."""
    import datetime
    import platform

    from ..version import __version__

    return {"git_revision": git_revision(), "world_size": world_size, "device": device, "backend": backend,
            "task": cfg["task"], "grepq": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "command": sys.argv, "started": datetime.datetime.now().isoformat(timespec="seconds")}
