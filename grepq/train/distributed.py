"""torchrun-native distributed setup that falls back to one process, and the collectives training needs.

``torchrun --nproc_per_node N`` sets RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR/PORT); without them the run
is a single process and nothing is initialised. The backend is nccl for CUDA devices and gloo otherwise, so
several processes also run on one CPU machine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Dict, Optional

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup", "barrier", "all_reduce_mean", "gather_with_grad",
           "gather_no_grad", "resolve_train_device"]


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
    """The device of this process: ``device`` as given ("cuda" becomes cuda:LOCAL_RANK), or, when None,
    cuda:LOCAL_RANK if CUDA is available and cpu otherwise. Asking for CUDA without CUDA is an error."""
    if device is None:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available here; use run.device=cpu")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: Optional[str] = None, timeout: Optional[timedelta] = None) -> DistInfo:
    """Read RANK/LOCAL_RANK/WORLD_SIZE (torchrun) and initialise the process group, or return a 1-process info.

    ``timeout``: how long a collective (e.g. a barrier) waits for the other processes (None: torch's default,
    30 min for gloo, 10 min for nccl); scale-out scoring waits at a barrier for the slowest share.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_train_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 0, 1, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
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


def all_reduce_mean(values: Dict[str, float], device: torch.device) -> Dict[str, float]:
    """The mean of each scalar over processes (unchanged with one process)."""
    if not (dist.is_available() and dist.is_initialized()) or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the incoming gradients over processes and returns this
    process's slice (the reduce-scatter of ``torch.distributed.nn.functional.all_gather``, deprecated in
    torch 2.14, written with plain all_reduce so it runs on gloo and nccl alike)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = rank, x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) per process -> (world * n, ...) in rank order, differentiable (every process must pass the same n).

    When every process computes the same loss L of the gathered tensor, the gradient reaching process r's slice is
    the sum over processes, world · ∂L/∂x_r; DistributedDataParallel then averages the parameter gradients over
    processes, which gives exactly ∂L/∂θ of the single-process computation on the whole batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) per process -> (world * n, ...) in rank order, without gradient."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
