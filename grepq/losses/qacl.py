"""Quality-aware contrastive loss (QACL) of the low-level model: paper §3.1, Eq. 1, and the official code's form.

Shapes: B images in a batch, D versions of each (the reference and its distortions), C feature size.
"""
from __future__ import annotations

import torch

__all__ = ["qacl", "qacl_weight", "QACL_VARIANTS"]

QACL_VARIANTS = ("paper", "official")

#: Norm floor of the official code when L2-normalising features (``eps = 1e-8`` in its loss).
_NORM_EPS = 1e-8


def _check(anchor: torch.Tensor, positive: torch.Tensor, pair_weight: torch.Tensor, temperature: float) -> None:
    if anchor.dim() != 3:
        raise ValueError(f"anchor must be (B, D, C), got shape {tuple(anchor.shape)}")
    if positive.shape != anchor.shape:
        raise ValueError(f"positive must have the anchor's shape {tuple(anchor.shape)}, got {tuple(positive.shape)}")
    b, d, _ = anchor.shape
    if pair_weight.shape != (b, d, d):
        raise ValueError(f"pair_weight must be (B, D, D) = {(b, d, d)}, got {tuple(pair_weight.shape)}")
    if d < 2:
        raise ValueError(f"QACL needs at least 2 versions per image, got D={d}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not torch.isfinite(pair_weight).all():
        raise ValueError("pair_weight holds non-finite values")
    lo, hi = float(pair_weight.min()), float(pair_weight.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"pair weights (FSIM) must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}")


def _unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dimension with the official norm floor (max(||x||, 1e-8))."""
    return x / torch.linalg.norm(x, dim=-1, keepdim=True).clamp_min(_NORM_EPS)


def qacl_weight(pair_weight: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """The numerator's weight of a pair of versions: s itself (paper) or α = 2 − 2/(1+s²) (official)."""
    if variant == "paper":
        return pair_weight
    if variant == "official":
        return 2.0 - 2.0 / (1.0 + pair_weight ** 2)
    raise ValueError(f"variant must be one of {QACL_VARIANTS}, got {variant!r}")


def qacl(anchor: torch.Tensor, positive: torch.Tensor, pair_weight: torch.Tensor, temperature: float = 0.5,
         variant: str = "paper") -> torch.Tensor:
    """Quality-aware contrastive loss -> a scalar tensor.

    Args:
        anchor, positive: (B, D, C) features of the D versions of B images from two fragment samplings (z, z⁺).
        pair_weight: (B, D, D) the pair weights s_jk of Eq. 1 (FSIM in the paper), in [0, 1]; diagonal unused.
        temperature: τ1 (paper §4.1 and official: 0.5).
        variant: "paper" — Eq. 1 with p(a, b) = exp(a·b/τ1) on unit-norm features,
            L_ij = −log[(p(z_j, z_j⁺) + Σ_{k≠j} s_jk p(z_j, z_k)) / (p(z_j, z_j⁺) + Σ_{k≠j} p(z_j, z_k))],
            summed over images and versions. "official" — S = A·Pᵀ/τ, α = 2 − 2/(1 + s²),
            mean_{b,j} −log(Σ_k α_jk e^{S_jk} / Σ_k e^{S_jk}) plus the same over columns (docs/method.md §2).
    """
    _check(anchor, positive, pair_weight, temperature)
    z = _unit(anchor)
    zp = _unit(positive)
    weight = qacl_weight(pair_weight.to(z.dtype), variant)
    if variant == "paper":
        b, d, _ = z.shape
        self_logits = z @ z.transpose(1, 2) / temperature                      # (B, D, D): z_j · z_k / τ
        pos_logits = (z * zp).sum(-1, keepdim=True) / temperature               # (B, D, 1): z_j · z_j⁺ / τ
        off = ~torch.eye(d, dtype=torch.bool, device=z.device)                  # k ≠ j
        neg = self_logits.masked_fill(~off, float("-inf"))
        log_w = torch.log(weight).masked_fill(~off, float("-inf"))             # log s_jk (−inf where s = 0)
        num = torch.logsumexp(torch.cat([pos_logits, neg + log_w], dim=-1), dim=-1)
        den = torch.logsumexp(torch.cat([pos_logits, neg], dim=-1), dim=-1)
        return (den - num).sum()
    logits = z @ zp.transpose(1, 2) / temperature                               # (B, D, D), official
    log_w = torch.log(weight)
    row = (torch.logsumexp(logits, dim=-1) - torch.logsumexp(logits + log_w, dim=-1)).mean()
    col = (torch.logsumexp(logits, dim=-2) - torch.logsumexp(logits + log_w, dim=-2)).mean()
    return row + col
