"""One training loop for both models: ``train(cfg)`` sets up processes, seeds, task, data, optimiser and schedule,
checks the run directory, resumes from its ``checkpoint.pth`` and runs the epochs. Batch sizes are global, split over
the processes; steps and the schedule count optimiser steps (the official code's iterations).
"""
from __future__ import annotations

import math
import os
import random
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import ConfigError
from ..data.layout import data_fingerprint
from ..data.training_set import EpochSampler
from ..parallel import DistInfo, barrier, cleanup, init_distributed
from . import checkpoint as cp
from .distributed import all_reduce_mean
from .logging import RunLogger, truncate_log
from .tasks import Task, build_task

__all__ = ["train", "train_one_epoch", "lr_factor", "NonFiniteLossError", "TrainResult"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped before applying that step."""


@dataclass
class TrainResult:
    """Where a run stopped. ``last_loss``: the mean loss of the last epoch trained (or of the unfinished epoch's
    steps where the run stopped); NaN when this call trained no step."""

    run_dir: Path
    step: int
    total_steps: int
    finished: bool
    weights: Path
    last_loss: float


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str, eta_ratio: float) -> float:
    """Learning-rate multiplier after ``step`` optimiser steps (LambdaLR): ``step / warmup_steps`` during warm-up
    (official HL), then 1 ("constant") or ``eta + (1 - eta)(1 + cos(pi t / T)) / 2``, ``eta = eta_min / lr`` (official
    LL's cosine)."""
    if warmup_steps > 0 and step <= warmup_steps:
        return step / warmup_steps
    if schedule == "constant":
        return 1.0
    t = step - warmup_steps
    span = max(1, total_steps - warmup_steps)
    return eta_ratio + (1.0 - eta_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(t, span) / span))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _set_deterministic(device: torch.device) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # CUDA lacks deterministic kernels for some ops ResNets use (adaptive average pooling backward): warn there.
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")


def train_one_epoch(task: Task, loader, opt: _Optim, state: cp.TrainState, logger: RunLogger, info: DistInfo,
                    run: Dict, save, deadline: Optional[float] = None) -> bool:
    """Run the batches of one epoch from ``state.batch_in_epoch``; True when ``run["max_steps"]`` steps are done or
    the time ``deadline`` (``time.time()``; every process stops at the same step) has passed. With ``opt.scaler``
    (``run.amp: fp16``) the loss is scaled and steps whose gradients overflowed are skipped (GradScaler)."""
    task.train_mode()
    for batch in loader:
        out = task.forward(batch)
        scalars = all_reduce_mean({k: float(v.detach()) for k, v in out.items()}, info.device)
        if not math.isfinite(scalars["loss"]):
            raise NonFiniteLossError(
                f"non-finite loss ({scalars['loss']}) at step {state.step + 1} (epoch {state.epoch}, batch "
                f"{state.batch_in_epoch + 1}); stopped before applying it. The last checkpoint is kept.")
        opt.optimizer.zero_grad(set_to_none=True)
        if opt.scaler is None:
            out["loss"].backward()
            opt.optimizer.step()
        else:
            opt.scaler.scale(out["loss"]).backward()
            opt.scaler.step(opt.optimizer)
            opt.scaler.update()
        lr = opt.optimizer.param_groups[0]["lr"]
        opt.scheduler.step()
        state.step += 1
        state.batch_in_epoch += 1
        state.epoch_loss_sum += scalars["loss"]
        state.epoch_loss_count += 1
        logger.step(scalars)
        if state.step % run["log_every"] == 0:
            logger.write({"type": "step", "step": state.step, "epoch": state.epoch, "lr": lr, **scalars})
        if state.step % run["checkpoint_every"] == 0:
            save()
        if run["max_steps"] is not None and state.step >= run["max_steps"]:
            return True
        if deadline is not None and all_reduce_mean({"late": float(time.time() >= deadline)}, info.device)["late"] > 0:
            return True
    return False


def train(cfg: Dict) -> TrainResult:
    """Train the model ``cfg["task"]`` names; resumable, torchrun-aware. Returns where it stopped."""
    info = init_distributed(cfg["run"]["device"])
    try:
        return _train(cfg, info)
    finally:
        cleanup()


@dataclass
class _Data:
    """The training data of one process: its loader, its sampler and the counts the schedule needs."""

    dataset: object
    sampler: EpochSampler
    loader: DataLoader
    local_batch: int
    steps_per_epoch: int
    total_steps: int
    fingerprint: Dict


def _build_data(cfg: Dict, info: DistInfo, task: Task) -> _Data:
    s = cfg[cfg["task"]]
    dataset = task.build_dataset(cfg["data"]["root"], cfg["data"]["limit"])
    world = info.world_size
    if s["batch_size"] % world:
        raise ConfigError(f"{cfg['task']}.batch_size {s['batch_size']} is not divisible by the {world} processes")
    local_batch = s["batch_size"] // world
    sampler = EpochSampler(dataset, num_replicas=world, rank=info.rank, shuffle=True, seed=cfg["seed"])
    steps_per_epoch = (sampler.num_samples // local_batch if task.drop_last
                       else math.ceil(sampler.num_samples / local_batch))
    if steps_per_epoch == 0:
        raise ConfigError(f"{len(dataset)} image folders give no full batch of {s['batch_size']} "
                          f"({cfg['task']}.batch_size); use more data or a smaller batch")
    loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler, num_workers=cfg["data"]["num_workers"],
                        pin_memory=cfg["data"]["pin_memory"] and info.device.type == "cuda",
                        drop_last=task.drop_last)
    return _Data(dataset, sampler, loader, local_batch, steps_per_epoch, s["epochs"] * steps_per_epoch,
                 data_fingerprint(dataset.folders))


@dataclass
class _Optim:
    """The optimiser, its learning-rate schedule and (fp16 only) the gradient scaler."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: Optional[torch.amp.GradScaler]


def _build_optim(cfg: Dict, info: DistInfo, task: Task, data: _Data) -> _Optim:
    s = cfg[cfg["task"]]
    optimizer = task.make_optimizer()
    warmup_steps = int(s["warmup_epochs"] * data.steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(
        lr_factor, total_steps=data.total_steps, warmup_steps=warmup_steps, schedule=s["schedule"],
        eta_ratio=s["eta_min"] / s["lr"]))
    scaler = torch.amp.GradScaler(info.device.type) if cfg["run"]["amp"] == "fp16" else None
    return _Optim(optimizer, scheduler, scaler)


def _resume(cfg: Dict, info: DistInfo, task: Task, data: _Data, opt: _Optim, run_dir: Path) -> Optional[cp.TrainState]:
    """Load ``run_dir``'s checkpoint, if any, checked against this configuration, data and number of processes."""
    ckpt_path = run_dir / cp.CHECKPOINT_FILE
    ckpt = cp.load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    world = info.world_size
    cp.check_run_dir(run_dir, cfg, ckpt)  # every process checks, so all of them stop on a mismatch
    if ckpt is None:
        return None
    if ckpt["world_size"] != world:
        raise ConfigError(f"{ckpt_path}: the run used {ckpt['world_size']} processes, now {world}; resume it with "
                          f"the same number (the data order and batch split depend on it)")
    if ckpt["data"] != data.fingerprint:
        raise ConfigError(f"{ckpt_path}: the run trained on {ckpt['data']['count']} image folders with other "
                          f"names than the {data.fingerprint['count']} under {cfg['data']['root']}")
    task.load_weights_dict(ckpt["model"], str(ckpt_path))
    opt.optimizer.load_state_dict(ckpt["optimizer"])
    opt.scheduler.load_state_dict(ckpt["scheduler"])
    if opt.scaler is not None and ckpt.get("scaler") is not None:
        opt.scaler.load_state_dict(ckpt["scaler"])
    state = cp.TrainState(**ckpt["state"])
    cp.set_rng_state(ckpt["rng"])
    if info.is_main:
        print(f"grepq train: resuming {run_dir} from step {state.step} of {data.total_steps} (epoch {state.epoch})",
              file=sys.stderr)
    return state


def _prepare_run_dir(cfg: Dict, info: DistInfo, data: _Data, run_dir: Path, state: cp.TrainState,
                     resumed: bool) -> None:
    """Rank 0 writes ``config.yaml`` / ``run_info.json`` and, on resume, cuts the log back to the checkpoint."""
    if info.is_main:
        cp.remove_stale_temporaries(run_dir)
        meta = cp.run_info(cfg, info.world_size, str(info.device), info.backend)
        meta.update(steps_per_epoch=data.steps_per_epoch, total_steps=data.total_steps, images=len(data.dataset),
                    resumed_from_step=state.step if resumed else None, finished=False)
        cp.write_run_files(run_dir, cfg, meta)
        if resumed:
            truncate_log(run_dir / cp.LOG_FILE, state.step, state.epoch)
    barrier()


def _run_epochs(cfg: Dict, info: DistInfo, task: Task, data: _Data, opt: _Optim, state: cp.TrainState,
                run_dir: Path, save) -> float:
    """The epoch loop, from ``state`` until the last epoch or a stop (run.max_steps, max_epochs, max_seconds);
    returns the mean loss of the last epoch trained (TrainResult.last_loss)."""
    s = cfg[cfg["task"]]
    stop_at = cfg["run"]["max_steps"]
    max_epochs = cfg["run"]["max_epochs"]
    last_loss = float("nan")
    logger = RunLogger(run_dir, info.is_main, min(data.total_steps, stop_at or data.total_steps), state.step,
                       cfg["run"]["tensorboard"], cfg["run"]["progress"], desc=f"train {cfg['task']}")
    stopped = stop_at is not None and state.step >= stop_at
    deadline = time.time() + cfg["run"]["max_seconds"] if cfg["run"]["max_seconds"] is not None else None
    with warnings.catch_warnings():
        if opt.scaler is not None:
            # GradScaler skips the optimiser step whose gradients overflowed; the schedule still counts that step
            # (it is an iteration), which makes torch warn that the scheduler stepped before the optimiser.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
        try:
            while state.epoch < s["epochs"] and not stopped:
                if max_epochs is not None and state.epoch >= max_epochs:
                    break
                data.sampler.set_epoch(state.epoch)
                data.sampler.set_start(state.batch_in_epoch * data.local_batch)
                started = time.time()
                stopped = train_one_epoch(task, data.loader, opt, state, logger, info, cfg["run"], save, deadline)
                if state.epoch_loss_count:
                    last_loss = state.epoch_loss_sum / state.epoch_loss_count
                if state.batch_in_epoch >= data.steps_per_epoch:  # the epoch is complete
                    logger.write({"type": "epoch", "epoch": state.epoch, "step": state.step,
                                  "loss": state.epoch_loss_sum / max(1, state.epoch_loss_count),
                                  "steps": state.epoch_loss_count, "seconds": round(time.time() - started, 3)})
                    state.epoch += 1
                    state.batch_in_epoch, state.epoch_loss_sum, state.epoch_loss_count = 0, 0.0, 0
        finally:
            logger.close()
    return last_loss


def _train(cfg: Dict, info: DistInfo) -> TrainResult:
    if cfg["run"]["dir"] is None:
        raise ConfigError("run.dir is not set: give the run directory (--run-dir DIR or run.dir=DIR)")
    run_dir = Path(cfg["run"]["dir"]).expanduser()
    if cfg["run"]["deterministic"]:
        _set_deterministic(info.device)
    _seed_everything(cfg["seed"])
    task = build_task(cfg, info)
    data = _build_data(cfg, info, task)
    opt = _build_optim(cfg, info, task, data)
    resumed = _resume(cfg, info, task, data, opt, run_dir)
    state = resumed if resumed is not None else cp.TrainState()
    _prepare_run_dir(cfg, info, data, run_dir, state, resumed is not None)
    if info.distributed:
        task.wrap_ddp()
    ckpt_path = run_dir / cp.CHECKPOINT_FILE

    def save() -> None:
        if info.is_main:
            cp.save_checkpoint(ckpt_path, {
                "format": cp.CHECKPOINT_FORMAT, "version": cp.CHECKPOINT_VERSION, "task": cfg["task"],
                "model": task.weights_dict(), "optimizer": opt.optimizer.state_dict(),
                "scheduler": opt.scheduler.state_dict(), "state": asdict(state),
                "scaler": opt.scaler.state_dict() if opt.scaler is not None else None, "config": cfg,
                "world_size": info.world_size, "data": data.fingerprint, "rng": cp.rng_state()})

    last_loss = _run_epochs(cfg, info, task, data, opt, state, run_dir, save)
    save()
    finished = state.step >= data.total_steps
    weights = run_dir / task.weights_file
    if info.is_main:
        task.save_weights(weights, extra={"task": cfg["task"], "step": state.step, "finished": finished,
                                          "config": cfg})
        cp.update_run_info(run_dir, finished=finished, final_step=state.step)
    barrier()
    return TrainResult(run_dir, state.step, data.total_steps, finished, weights, last_loss)
