"""The collectives training needs over torchrun's processes (identities with one process); the process group is
:mod:`grepq.parallel`'s."""
from __future__ import annotations

from typing import Dict

import torch
import torch.distributed as dist

__all__ = ["all_reduce_mean", "gather_with_grad", "gather_no_grad"]


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
    """All-gather along dim 0; backward: the gradients summed over processes, this process's slice (plain
    all_reduce, so it runs on gloo and nccl alike)."""

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
    """(n, ...) per process -> (world * n, ...) in rank order, differentiable (the same n in every process). When
    every process computes the same loss of it, DDP's gradient average is the single-process gradient."""
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
