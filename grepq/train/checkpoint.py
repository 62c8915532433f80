"""One resumable ``checkpoint.pth`` per run directory, written atomically, and the run-directory bookkeeping.

``checkpoint.pth`` holds everything needed to continue a run exactly where it stopped::

    {"format": "grepq-train-checkpoint", "version": 1, "task": "ll" | "hl",
     "model": <grepq weight dict: {"format": "grepq-low-level" | "grepq-high-level", "arch", "state_dict"}>,
     "optimizer", "scheduler", "scaler": GradScaler state (run.amp fp16) or None, "state": {"step", "epoch",
     "batch_in_epoch", "epoch_loss_sum", "epoch_loss_count"}, "config", "world_size", "data": {"count", "sha1"}, "rng":
     {"torch", "cuda", "numpy", "python"}}

It loads with ``torch.load(weights_only=True)`` (no pickled objects), and ``grepq score --ll-weights`` /
``--hl-weights`` accept it directly (its ``"model"`` entry is in grepq's weight format).
"""
from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
import yaml

from ..config import ConfigError, dump_config
from ..utils import atomic_torch_save
from ..version import git_revision
from .schema import MAY_DIFFER_ON_RESUME, TRAIN_SCHEMA, config_differences

__all__ = ["TrainState", "CHECKPOINT_FILE", "CONFIG_FILE", "RUN_INFO_FILE", "LOG_FILE", "save_checkpoint",
           "load_checkpoint", "rng_state", "set_rng_state", "check_run_dir", "write_run_files",
           "update_run_info", "atomic_write_text", "remove_stale_temporaries"]

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

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


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
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``: a reader never sees half a file."""
    return atomic_torch_save(obj, path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a training checkpoint (weights_only) and check its format."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or foreign files
        raise ValueError(f"{path}: cannot read the training checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a grepq training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


#: BatchNorm modes that compute the same thing when the run has one process (``bn: global`` became the presets'
#: mode after runs were made with ``bn: train``; such single-process runs resume under either name).
SAME_BN_WITH_ONE_PROCESS = frozenset({"global", "train"})


def _equivalent(key: str, saved: Any, now: Any, world_size: Optional[int], saved_world: Optional[int]) -> bool:
    return (key.endswith(".bn") and {saved, now} <= SAME_BN_WITH_ONE_PROCESS
            and world_size == 1 and saved_world in (None, 1))


def _saved_world_size(run_dir: Path, checkpoint: Optional[Dict[str, Any]]) -> Optional[int]:
    if checkpoint is not None:
        return checkpoint.get("world_size")
    try:
        return json.loads((run_dir / RUN_INFO_FILE).read_text(encoding="utf-8")).get("world_size")
    except (OSError, ValueError):
        return None


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files a killed run left in ``run_dir`` (``.<file>.tmp<pid>`` of the atomic writes,
    ``log.jsonl.tmp``); they were never renamed, so nothing depends on them. Call it before the run writes."""
    if not run_dir.is_dir():
        return
    for stale in [*run_dir.glob(".*.tmp[0-9]*"), run_dir / (LOG_FILE + ".tmp")]:
        if stale.is_file():
            stale.unlink()


def check_run_dir(run_dir: Path, cfg: Dict[str, Any], checkpoint: Optional[Dict[str, Any]] = None,
                  world_size: Optional[int] = None) -> None:
    """An existing run directory must hold a run of the same configuration (keys allowed to differ aside).

    The checkpoint's configuration is authoritative when there is one, else ``config.yaml``. With ``world_size``
    1 (this run's number of processes) and a run of one process, ``bn`` 'train' and 'global' count as equal (the
    same computation). Raises :class:`ConfigError` naming every differing key with both values.
    """
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
    saved_world = _saved_world_size(run_dir, checkpoint)
    diffs = [d for d in config_differences(saved, cfg) if not _equivalent(*d, world_size, saved_world)]
    if diffs:
        listing = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in diffs)
        raise ConfigError(
            f"run directory {run_dir} holds a run with a different configuration ({source}): {listing}. "
            f"Use a new run.dir, or the run's values to resume it (only {', '.join(MAY_DIFFER_ON_RESUME)} may differ)")


def write_run_files(run_dir: Path, cfg: Dict[str, Any], info: Dict[str, Any]) -> None:
    """``config.yaml`` (the resolved configuration, each key with its note) and ``run_info.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, dump_config(cfg, comments=True, schema=TRAIN_SCHEMA))
    atomic_write_text(run_dir / RUN_INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")


def update_run_info(run_dir: Path, **fields: Any) -> None:
    path = run_dir / RUN_INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info.update(fields)
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=True) + "\n")


def run_info(cfg: Dict[str, Any], world_size: int, device: str, backend: Optional[str]) -> Dict[str, Any]:
    """What ``run_info.json`` records at the start of a run."""
    import datetime
    import platform

    from ..version import __version__

    return {"git_revision": git_revision(), "world_size": world_size, "device": device, "backend": backend,
            "task": cfg["task"], "grepq": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "command": sys.argv, "started": datetime.datetime.now().isoformat(timespec="seconds")}
