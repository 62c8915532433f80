"""Processes working on one job: torchrun's process group and shares of a list of items (bottom layer).

**Process group.** Under ``torchrun`` (RANK, LOCAL_RANK, WORLD_SIZE set) :func:`init_distributed` joins it, nccl
for CUDA devices and gloo otherwise; ``GREPQ_DIST_BACKEND=gloo|nccl`` overrides (gloo with one GPU runs several
processes on it, a check of the multi-process CUDA code: benchmarks/gpu_session.py). Training's collectives are
in :mod:`grepq.train.distributed`.

**Shares** (``grepq score`` / ``grepq eval`` over processes or ``--shard I/N`` jobs): share ``i`` of ``n`` takes
items ``[i * N // n, (i + 1) * N // n)`` (:meth:`Shard.share`). Under torchrun, rank r of W takes share r and rank
0 merges after a barrier; with ``--shard I/N`` each job writes its part and a later run merges; both: share
``I * W + r`` of ``N * W``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

__all__ = ["Shard", "ShardError", "ScaleOut", "start", "under_torchrun", "BARRIER_TIMEOUT",
           "DistInfo", "resolve_train_device", "init_distributed", "cleanup", "barrier", "dist_backend", "BACKEND_ENV"]

#: How long the processes of a torchrun job wait at the barrier for the slowest share before giving up (torch's
#: default, 10-30 min, is shorter than a share of a large dataset can take).
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass
class DistInfo:
    """rank / local_rank / world_size of this process, its device and the backend (None: single process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_train_device(device: Optional[str], local_rank: int = 0) -> torch.device:
    """The device of this process: ``device`` ("cuda" becomes cuda:LOCAL_RANK), or when None cuda:LOCAL_RANK if
    CUDA is available, else cpu. A malformed name, or CUDA without CUDA, is a ValueError."""
    if device is None:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use cpu")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


#: Environment variable overriding the process-group backend (module note).
BACKEND_ENV = "GREPQ_DIST_BACKEND"


def dist_backend(device: torch.device) -> str:
    """nccl for CUDA devices, gloo otherwise, unless ``GREPQ_DIST_BACKEND`` names one of them."""
    chosen = os.environ.get(BACKEND_ENV, "").strip().lower()
    if chosen:
        if chosen not in ("gloo", "nccl"):
            raise ValueError(f"{BACKEND_ENV}={chosen!r}: expected 'gloo' or 'nccl'")
        if chosen == "nccl" and torch.device(device).type != "cuda":
            raise ValueError(f"{BACKEND_ENV}=nccl needs CUDA devices, got {device}")
        return chosen
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_distributed(device: Optional[str] = None, timeout: Optional[timedelta] = None) -> DistInfo:
    """Join torchrun's process group (RANK/LOCAL_RANK/WORLD_SIZE), or return a 1-process info. ``timeout``: how
    long a collective waits for the other processes (None: torch's default)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_train_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 0, 1, dev, None)
    backend = dist_backend(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world, timeout=timeout)
    return DistInfo(rank, local_rank, world, dev, backend)


def cleanup() -> None:
    """Destroy the process group if one was initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class ShardError(ValueError):
    """A bad ``--shard`` value, or parts that cannot be merged (missing, unfinished, or from different runs)."""


@dataclass(frozen=True)
class Shard:
    """Share ``index`` (0-based) of ``count`` contiguous shares of a list of images."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"a shard is I/N with 0 <= I < N, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"I/N"`` -> Shard(I, N) (0-based I, as ``$SLURM_ARRAY_TASK_ID`` of ``--array=0-(N-1)``)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise ShardError(f"--shard expects I/N (share I of N, 0 <= I < N), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    def share(self, n: int) -> range:
        """Indices of this share of ``n`` items: ``[index * n // count, (index + 1) * n // count)``."""
        return range(self.index * n // self.count, (self.index + 1) * n // self.count)

    @property
    def tag(self) -> str:
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ScaleOut:
    """This process's place in a scaled-out run: its :class:`Shard` and device; ``sharded`` (split over processes
    or ``--shard``) and ``merges`` (rank 0 of a torchrun job without ``--shard`` merges after the barrier)."""

    shard: Shard
    device: torch.device
    rank: int = 0
    world_size: int = 1
    independent: bool = False

    @property
    def sharded(self) -> bool:
        return self.independent or self.world_size > 1

    @property
    def merges(self) -> bool:
        return self.rank == 0 and not self.independent

    def barrier(self) -> None:
        """Wait for every process of the torchrun job (nothing to wait for otherwise)."""
        barrier()

    def close(self) -> None:
        cleanup()

    def describe(self) -> str:
        how = f"torchrun rank {self.rank} of {self.world_size}" if self.world_size > 1 else "independent job"
        return f"shard {self.shard} ({how})"


def under_torchrun() -> bool:
    """True in a process started by torchrun with more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(shard: Optional[str], device: Optional[str]) -> ScaleOut:
    """Join the torchrun job if there is one (:func:`init_distributed`: gloo on the CPU, nccl on
    ``cuda:LOCAL_RANK``) and combine its rank with ``--shard I/N`` (share ``I * W + rank`` of ``N * W``)."""
    user = Shard.parse(shard) if shard is not None else None
    info = init_distributed(device, timeout=BARRIER_TIMEOUT)
    base = user or Shard(0, 1)
    composed = Shard(base.index * info.world_size + info.rank, base.count * info.world_size)
    return ScaleOut(composed, info.device, info.rank, info.world_size, independent=user is not None)
