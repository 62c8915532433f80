"""The pair weight s_jk of Eq. 1 between every pair of versions of one image (paper §3.1, Eq. 1; Table 4).

``fsim`` is the paper's (computed as the official loader does, :func:`grepq.data.fsim.fsim_matrix_piq`). Table 4
compares SSIM, MS-SSIM, GMSD and LPIPS without saying how each becomes a weight in [0, 1]; grepq's choice, with
piq in float64 on the whole versions (data_range 1, piq's defaults otherwise):

=========  ================================================================  ===================
weight     piq call                                                          s_jk
=========  ================================================================  ===================
ssim       ``piq.ssim`` (11x11 Gaussian window, sigma 1.5, downsampled so     clip(SSIM, 0, 1)
           the short side is about 256, as Wang et al.'s code)
ms_ssim    ``piq.multi_scale_ssim`` (5 scales: short side >= 161 px)         clip(MS-SSIM, 0, 1)
gmsd       ``piq.gmsd`` (a deviation: 0 for identical images)                clip(1 - GMSD, 0, 1)
none       --                                                                0 (plain InfoNCE)
=========  ================================================================  ===================

All are symmetric, diagonal 1 (``none``: 0). LPIPS is not provided: piq downloads its weights, grepq ships none.
"""
from __future__ import annotations

import torch

from .fsim import fsim_matrix_piq

__all__ = ["PAIR_WEIGHTS", "pair_weight_matrix"]

#: The pair weights of Eq. 1 grepq computes (``ll.pair_weight``): FSIM (paper), Table 4's others, none.
PAIR_WEIGHTS = ("fsim", "ssim", "ms_ssim", "gmsd", "none")
#: Pairs per piq call (memory: each pair holds two float64 versions).
PAIR_CHUNK = 8
#: MS-SSIM's smallest short side with piq's defaults: (kernel_size - 1) * 2 ** (scales - 1) + 1.
MS_SSIM_MIN_SIDE = 161


def _score(pair_weight: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    import piq

    if pair_weight == "ssim":
        return piq.ssim(x, y, data_range=1.0, reduction="none").clamp(0.0, 1.0)
    if pair_weight == "ms_ssim":
        return piq.multi_scale_ssim(x, y, data_range=1.0, reduction="none").clamp(0.0, 1.0)
    return (1.0 - piq.gmsd(x, y, data_range=1.0, reduction="none")).clamp(0.0, 1.0)


@torch.no_grad()
def pair_weight_matrix(stack: torch.Tensor, pair_weight: str) -> torch.Tensor:
    """Weights s_jk in [0, 1] between the versions ``stack`` (D, 3, H, W) in [0, 1] -> (D, D) float64."""
    if pair_weight not in PAIR_WEIGHTS:
        raise ValueError(f"pair_weight must be one of {PAIR_WEIGHTS}, got {pair_weight!r}")
    if stack.dim() != 4 or stack.shape[1] != 3:
        raise ValueError(f"expected versions of shape (D, 3, H, W), got {tuple(stack.shape)}")
    if pair_weight == "ms_ssim" and min(stack.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px on the short side, got "
                         f"{stack.shape[-1]}x{stack.shape[-2]}")
    d = stack.shape[0]
    if pair_weight == "none":
        return torch.zeros(d, d, dtype=torch.float64)
    if pair_weight == "fsim":
        return fsim_matrix_piq(stack)
    x = stack.to(torch.float64)
    rows, cols = torch.tril_indices(d, d, offset=-1)
    out = torch.eye(d, dtype=torch.float64)
    for start in range(0, rows.numel(), PAIR_CHUNK):
        i, j = rows[start:start + PAIR_CHUNK], cols[start:start + PAIR_CHUNK]
        s = _score(pair_weight, x[i], x[j]).to(torch.float64)
        out[i, j] = s
        out[j, i] = s
    return out
