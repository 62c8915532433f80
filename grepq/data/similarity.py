"""The other perceptual similarity measures of the paper's Table 4, as pair weights s_jk of Eq. 1.

The paper (§3.2, Table 4) trains the LL model with FSIM (its choice, :mod:`grepq.data.fsim`) and compares SSIM,
MS-SSIM, GMSD and LPIPS "under similar training settings", without saying how each becomes a weight in [0, 1].
grepq computes them with piq, in float64, on the whole versions (as the official loader does for FSIM), and maps
each to [0, 1] as follows -- grepq's choice, stated wherever it matters:

=========  ===========================================================  =====================================
measure    piq call (data_range 1, defaults otherwise)                  weight s
=========  ===========================================================  =====================================
ssim       ``piq.ssim`` (11x11 Gaussian window, sigma 1.5, downsampled   clip(SSIM, 0, 1) (SSIM can be < 0)
           so the short side is about 256, as Wang et al.'s code)
ms_ssim    ``piq.multi_scale_ssim`` (5 scales; needs a short side of     clip(MS-SSIM, 0, 1)
           at least 161 px)
gmsd       ``piq.gmsd`` (a deviation: 0 for identical images)            clip(1 - GMSD, 0, 1)
=========  ===========================================================  =====================================

All three are symmetric in their arguments; the diagonal is set to 1. LPIPS is not provided: it needs pretrained
network weights (piq downloads them), which grepq does not ship.
"""
from __future__ import annotations

import torch

__all__ = ["MEASURES", "similarity_matrix"]

#: Table 4 measures computed here (FSIM has its own module).
MEASURES = ("ssim", "ms_ssim", "gmsd")
#: Pairs per piq call (memory: each pair holds two float64 versions).
PAIR_CHUNK = 8
#: MS-SSIM's smallest short side with piq's defaults: (kernel_size - 1) * 2 ** (scales - 1) + 1.
MS_SSIM_MIN_SIDE = 161


def _score(measure: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    import piq

    if measure == "ssim":
        return piq.ssim(x, y, data_range=1.0, reduction="none").clamp(0.0, 1.0)
    if measure == "ms_ssim":
        return piq.multi_scale_ssim(x, y, data_range=1.0, reduction="none").clamp(0.0, 1.0)
    if measure == "gmsd":
        return (1.0 - piq.gmsd(x, y, data_range=1.0, reduction="none")).clamp(0.0, 1.0)
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


@torch.no_grad()
def similarity_matrix(stack: torch.Tensor, measure: str) -> torch.Tensor:
    """Weights s_jk in [0, 1] between every pair of versions of one image.

    Args:
        stack: (D, 3, H, W) versions of one image, values in [0, 1].
        measure: "ssim", "ms_ssim" or "gmsd" (module table).
    Returns:
        (D, D) float64, symmetric, diagonal 1.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if stack.dim() != 4 or stack.shape[1] != 3:
        raise ValueError(f"expected versions of shape (D, 3, H, W), got {tuple(stack.shape)}")
    if measure == "ms_ssim" and min(stack.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px on the short side, got "
                         f"{stack.shape[-1]}x{stack.shape[-2]}")
    x = stack.to(torch.float64)
    d = x.shape[0]
    rows, cols = torch.tril_indices(d, d, offset=-1)
    out = torch.eye(d, dtype=torch.float64)
    for start in range(0, rows.numel(), PAIR_CHUNK):
        i, j = rows[start:start + PAIR_CHUNK], cols[start:start + PAIR_CHUNK]
        s = _score(measure, x[i], x[j]).to(torch.float64)
        out[i, j] = s
        out[j, i] = s
    return out

