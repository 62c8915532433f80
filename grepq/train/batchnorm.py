"""``bn: global``: BatchNorm with the single-process statistics of the global batch when it is split over processes
(``SyncBatchNorm`` on CUDA, :class:`CrossProcessBatchNorm` on CPUs: all-reduced counts and sums, then squared
deviations, in float64). Its backward all-reduces the gradients (:func:`all_reduce_sum`): with DDP's average, the
single-process gradient (tested in ``tests/test_distributed.py``).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["CrossProcessBatchNorm", "all_reduce_sum", "convert_cross_process_batchnorm", "convert_global_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; backward: the sum over processes of the incoming gradients (see the module note)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.detach().clone().contiguous()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over processes (same shape), differentiable; ``x`` itself without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _AllReduceSum.apply(x)


class CrossProcessBatchNorm(_BatchNorm):
    """BatchNorm of (N, C, ...) whose training-mode statistics are all processes' (``nn.BatchNorm2d``'s keys)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (N, C, ...), got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """input (N, C, ...) -> the same shape and dtype; statistics in float64 over every process's N."""
        self._check_input_dim(input)
        use_batch = self.training or not self.track_running_stats
        if not use_batch or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return super().forward(input)
        x = input.float()
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.int64, device=x.device)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)  # elements per channel over all processes (exact)
        n = int(count.item())
        # statistics accumulated in float64, as torch's CPU BatchNorm accumulates them (its acc_type)
        xd = x.double()
        mean = all_reduce_sum(xd.sum(dims)) / n
        var = all_reduce_sum(((xd - mean.view(shape)) ** 2).sum(dims)) / n  # biased, as BatchNorm normalises
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n)
        y = (x - mean.float().view(shape)) * torch.rsqrt(var + self.eps).float().view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """As ``_BatchNorm.forward``: momentum (or a cumulative average when momentum is None), unbiased variance."""
        self.num_batches_tracked.add_(1)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / (n - 1)) if n > 1 else var
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)


def convert_cross_process_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm layer of ``module`` replaced by a :class:`CrossProcessBatchNorm` sharing its tensors."""
    if isinstance(module, _BatchNorm) and not isinstance(module, CrossProcessBatchNorm):
        new = CrossProcessBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = convert_cross_process_batchnorm(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def convert_global_batchnorm(module: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """``bn: global``: unchanged for one process, SyncBatchNorm on CUDA, else :class:`CrossProcessBatchNorm`."""
    if world_size <= 1:
        return module
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_cross_process_batchnorm(module)
