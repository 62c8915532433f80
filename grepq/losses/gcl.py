"""Group-contrastive loss (GCL, paper §3.2, Eq. 3) of the high-level model and the grouping by Eq. 2's labels.

Shapes: N images in a batch, M the group size, C the head's feature size, E CLIP's embedding size.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from ..models.high_level import pseudo_quality  # Eq. 2, written once (re-exported here: the pseudo-labels)

__all__ = ["gcl", "GCL_VARIANTS", "pseudo_quality", "pseudo_label_groups", "group_size_from_divisor"]

GCL_VARIANTS = ("paper", "official")


def group_size_from_divisor(batch_size: int, divisor: int) -> int:
    """M = round(N / k): the paper's k = 8 gives M = 16 for N = 128 (the official config divides by 32: M = 4)."""
    if divisor <= 0:
        raise ValueError(f"group divisor must be positive, got {divisor}")
    m = int(round(batch_size / divisor))
    if m < 2 or 2 * m > batch_size:
        raise ValueError(f"group size round({batch_size}/{divisor}) = {m}: need 2 <= M and 2M <= N")
    return m


def pseudo_label_groups(scores: torch.Tensor, group_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The lowest M of the (N,) pseudo-labels (Eq. 2) form S_b, the highest M S_g (2 <= M, 2M <= N) -> two (M,)
    index tensors ``(bad_idx, good_idx)``; ties broken by batch position (stable sort)."""
    if scores.dim() != 1:
        raise ValueError(f"scores must be (N,), got shape {tuple(scores.shape)}")
    n = scores.shape[0]
    if group_size < 2 or 2 * group_size > n:
        raise ValueError(f"group size M={group_size} needs 2 <= M and 2M <= N={n}")
    order = torch.sort(scores.detach(), stable=True).indices
    return order[:group_size], order[n - group_size:]


def gcl(bad: torch.Tensor, good: torch.Tensor, temperature: float = 0.1, variant: str = "paper") -> torch.Tensor:
    """Group-contrastive loss between S_b (``bad``, (M, C) head features of the lowest pseudo-labels) and S_g
    (``good``, the highest) -> a scalar tensor. τ2: paper 0.1, official default 0.5.

    "paper" — Eq. 3 on unit-norm features, p(a, b) = exp(a·b/τ2):
    −Σ_{i∈S_g} log(Σ_{j∈S_g∖i} p(z_i, z_j) / Σ_{j∈S_g∖i ∪ S_b} p(z_i, z_j)) − (the same, S_g and S_b swapped).
    "official" — pos = mean cosine to the other members of one's group, numerator e^{pos/τ}, denominator numerator
    + Σ over the other group of e^{cos/τ}; loss = Σ −log(num/den) / (2M).
    """
    if bad.dim() != 2 or good.shape != bad.shape:
        raise ValueError(f"bad and good must both be (M, C), got {tuple(bad.shape)} and {tuple(good.shape)}")
    m = bad.shape[0]
    if m < 2:
        raise ValueError(f"GCL needs groups of at least 2, got M={m}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if variant not in GCL_VARIANTS:
        raise ValueError(f"variant must be one of {GCL_VARIANTS}, got {variant!r}")
    z = F.normalize(torch.cat([good, bad], dim=0), dim=1)   # (2M, C): rows 0..M-1 good, M..2M-1 bad
    cos = z @ z.t()                                          # (2M, 2M)
    same = torch.zeros(2 * m, 2 * m, dtype=torch.bool, device=z.device)
    same[:m, :m] = True
    same[m:, m:] = True
    eye = torch.eye(2 * m, dtype=torch.bool, device=z.device)
    own = same & ~eye                                        # the other members of one's own group
    other = ~same                                            # every member of the other group
    logits = cos / temperature
    neg_inf = float("-inf")
    if variant == "paper":
        num = torch.logsumexp(logits.masked_fill(~own, neg_inf), dim=1)
        den = torch.logsumexp(logits.masked_fill(~(own | other), neg_inf), dim=1)
        return (den - num).sum()
    pos = (cos * own).sum(dim=1) / (m - 1) / temperature     # (2M,)
    neg = logits.masked_fill(~other, neg_inf)
    den = torch.logsumexp(torch.cat([pos[:, None], neg], dim=1), dim=1)
    return (den - pos).sum() / (2 * m)
