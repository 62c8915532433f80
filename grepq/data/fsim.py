"""FSIM between every pair of versions of one image, each version's quantities computed once (docs/method.md §2).

The pair weight of Eq. 1 is FSIM (Zhang et al., "FSIM: A Feature Similarity Index for Image Quality Assessment",
IEEE TIP 2011). The official loader calls ``piq.fsim(x, y, data_range=1.0)`` once per pair (lower triangle,
symmetrised, diagonal 1, float64), recomputing the log-Gabor bank, phase congruency (PC), Scharr gradient (GM) and
YIQ chrominance of both images each time. :func:`fsim_matrix` computes the bank once per size and PC, GM, I, Q once
per version (batched), then combines them per pair. It follows piq's choices (inputs on 0..255, average pooling by
``max(1, round(min(H, W) / 256))``, piq's frequency grid, low-pass and noise model, the lower median of
``torch.median``) and equals piq to about 1e-12 in float64; only the summation order differs.

Shapes: ``versions`` (D, C, H, W), C = 3 (RGB, for ``chromatic=True``) or 1, in [0, 1] -> (D, D), symmetric,
diagonal exactly 1.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["FSIMFeatures", "fsim_features", "fsim_matrix", "fsim_pair", "fsim_matrix_piq",
           "FSIM_T1", "FSIM_T2", "FSIM_T3", "FSIM_T4", "FSIM_LAMBDA"]

# FSIM's constants (Zhang et al. 2011, Sec. III; the same in piq.fsim and the MATLAB code)
FSIM_T1 = 0.85  # T1: stability constant of the phase-congruency similarity S_PC
FSIM_T2 = 160.0  # T2: stability constant of the gradient-magnitude similarity S_G (values on 0..255)
FSIM_T3 = 200.0  # T3: stability constant of the chrominance similarity S_I
FSIM_T4 = 200.0  # T4: stability constant of the chrominance similarity S_Q
FSIM_LAMBDA = 0.03  # lambda: exponent of the chromatic term (S_I * S_Q)^lambda in FSIM_C
DATA_SCALE = 255.0  # the constants above assume pixel values on 0..255 (piq rescales by 255 / data_range)
POOL_TARGET = 256  # average pooling by max(1, round(min(H, W) / 256)) before everything (FSIM MATLAB code, piq)

# Phase congruency (Kovesi's log-Gabor model; defaults of FSIM's MATLAB code and piq.fsim)
PC_SCALES = 4  # number of wavelet scales
PC_ORIENTATIONS = 4  # number of filter orientations
PC_MIN_WAVELENGTH = 6  # wavelength of the smallest-scale filter
PC_MULT = 2  # scaling factor between successive filters
PC_SIGMA_F = 0.55  # ratio of the log-Gabor bandwidth to its centre frequency
PC_DELTA_THETA = 1.2  # ratio of the angular spacing of orientations to the angular Gaussian's sigma
PC_K = 2.0  # noise threshold: k standard deviations above the mean noise energy
PC_LOWPASS_CUTOFF = 0.45  # Butterworth low-pass applied to every log-Gabor filter: cut-off
PC_LOWPASS_ORDER = 15  # ... and order
PC_NOISE_RESCALE = 1.7  # empirical rescaling of the noise threshold for the PC_2 measure (Kovesi; piq)

# YIQ (NTSC) weights of FSIM_C (rows Y, I, Q; columns R, G, B), as piq.rgb2yiq; Scharr x kernel / 16, as piq.fsim.
_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))
_SCHARR_X = ((-3.0, 0.0, 3.0), (-10.0, 0.0, 10.0), (-3.0, 0.0, 3.0))
_MAX_BLOCK_ELEMENTS = 12_000_000  # elements of one block of pairs (memory only)


class FSIMFeatures(NamedTuple):
    """Per-version FSIM quantities, each (D, H', W') on the pooled grid: phase congruency and Scharr gradient
    magnitude of luminance, YIQ chrominance I and Q (0..255 scale; None with ``chromatic=False``)."""

    pc: torch.Tensor
    gm: torch.Tensor
    i: Optional[torch.Tensor]
    q: Optional[torch.Tensor]


def _ifftshift2(x: torch.Tensor) -> torch.Tensor:
    """Move the zero frequency from the centre to element [0, 0] of the last two dimensions."""
    return torch.roll(x, shifts=(-(x.shape[-2] // 2), -(x.shape[-1] // 2)), dims=(-2, -1))


def _frequency_axis(n: int, dtype: torch.dtype) -> torch.Tensor:
    # Normalised frequencies of one axis, centred on zero: odd n spans [-0.5, 0.5], even n spans [-0.5, 0.5).
    if n % 2:
        return torch.arange(-(n - 1) / 2, n / 2, dtype=dtype) / (n - 1)
    return torch.arange(-n / 2, n / 2, dtype=dtype) / n


@functools.lru_cache(maxsize=8)
def _filter_bank(h: int, w: int, dtype: torch.dtype, device: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Log-Gabor filters (O, S, h, w) in the FFT layout, and the noise-model factor per orientation (O,).

    The factor c_o turns the median squared response at the smallest scale, m_o, into the noise threshold:
    T_o = c_o * sqrt(m_o) (Kovesi's Rayleigh noise model, as in FSIM's MATLAB code and piq).
    """
    # Built in float64 whatever ``dtype`` is, then cast (the bank is computed once per size).
    fx = _frequency_axis(h, torch.float64)
    fy = _frequency_axis(w, torch.float64)
    gx, gy = torch.meshgrid(fx, fy, indexing="ij")  # gx varies along the rows, gy along the columns
    radius = torch.sqrt(gx ** 2 + gy ** 2)
    theta = torch.atan2(-gy, gx)
    lowpass = _ifftshift2(1.0 / (1.0 + (radius / PC_LOWPASS_CUTOFF) ** (2 * PC_LOWPASS_ORDER)))
    radius = _ifftshift2(radius)
    theta = _ifftshift2(theta)
    radius[0, 0] = 1.0  # avoid log(0) at the DC term (its filter value is set to 0 below)
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)

    radial = []
    for s in range(PC_SCALES):
        centre = 1.0 / (PC_MIN_WAVELENGTH * PC_MULT ** s)
        g = torch.exp(-(torch.log(radius / centre) ** 2) / (2 * math.log(PC_SIGMA_F) ** 2)) * lowpass
        g[0, 0] = 0.0
        radial.append(g)
    theta_sigma = math.pi / (PC_ORIENTATIONS * PC_DELTA_THETA)
    angular = []
    for o in range(PC_ORIENTATIONS):
        angle = o * math.pi / PC_ORIENTATIONS
        d_sin = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        d_cos = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        d_theta = torch.abs(torch.atan2(d_sin, d_cos))
        angular.append(torch.exp(-(d_theta ** 2) / (2 * theta_sigma ** 2)))
    bank = torch.stack(angular)[:, None] * torch.stack(radial)[None]  # (O, S, h, w)

    # Noise model constants (per orientation).
    em_n = (bank[:, 0] ** 2).sum(dim=(-2, -1))  # mean squared filter value at the smallest scale (unnormalised)
    spatial = torch.fft.ifft2(bank).real * math.sqrt(h * w)  # (O, S, h, w)
    sum_an2 = (spatial ** 2).sum(dim=(1, 2, 3))
    sum_ai_aj = torch.zeros(PC_ORIENTATIONS, dtype=bank.dtype)
    for s in range(PC_SCALES - 1):
        sum_ai_aj = sum_ai_aj + (spatial[:, s:s + 1] * spatial[:, s + 1:]).sum(dim=(1, 2, 3))
    # noise power = median / (-ln 0.5) / em_n; energy^2 due to noise = 2 p sum_an2 + 4 p sum_ai_aj;
    # Rayleigh tau = sqrt(energy^2 / 2); threshold = (tau sqrt(pi/2) + k sqrt(2 - pi/2) tau) / 1.7
    tau_per_sqrt_median = torch.sqrt((2 * sum_an2 + 4 * sum_ai_aj) / (2 * (-math.log(0.5)) * em_n))
    factor = tau_per_sqrt_median * (math.sqrt(math.pi / 2) + PC_K * math.sqrt(2 - math.pi / 2)) / PC_NOISE_RESCALE
    return bank.to(device=device, dtype=dtype), factor.to(device=device, dtype=dtype)


def _phase_congruency(lum: torch.Tensor) -> torch.Tensor:
    """Phase congruency of luminance maps (N, h, w) (0..255 scale) -> (N, h, w); one image at a time (its 16
    responses stay in the caches: faster on a CPU than one batch, memory O(16 h w))."""
    n, h, w = lum.shape
    bank, factor = _filter_bank(h, w, lum.dtype, str(lum.device))
    bank = bank.to(torch.complex128 if lum.dtype == torch.float64 else torch.complex64)
    eps = torch.finfo(lum.dtype).eps
    out = torch.empty_like(lum)
    for idx in range(n):
        spectrum = torch.fft.fft2(lum[idx])
        energy_all = torch.zeros_like(lum[idx])
        amplitude_all = torch.zeros_like(lum[idx])
        for o in range(PC_ORIENTATIONS):
            eo = torch.fft.ifft2(spectrum * bank[o])  # (S, h, w): even (real part) and odd (imaginary part) responses
            amplitude = torch.sqrt(eo.real.square() + eo.imag.square())
            total = eo.sum(dim=0)  # (sum of even) + i (sum of odd) over scales
            mean_dir = total / (torch.sqrt(total.real.square() + total.imag.square()) + eps)
            # Re(eo * conj(m)) = even*m_e + odd*m_o; Im(eo * conj(m)) = odd*m_e - even*m_o
            proj = eo * mean_dir.conj()
            energy = (proj.real - proj.imag.abs()).sum(dim=0)
            # Noise threshold from the median squared amplitude at the smallest scale (lower median, as torch).
            median = torch.median(amplitude[0].square().reshape(-1))
            energy_all += torch.clamp(energy - factor[o] * torch.sqrt(median), min=0)
            amplitude_all += amplitude.sum(dim=0)
        out[idx] = (energy_all + eps) / (amplitude_all + eps)
    return out


def _as_versions(versions: Union[torch.Tensor, np.ndarray], dtype: torch.dtype,
                 device: Optional[Union[str, torch.device]]) -> torch.Tensor:
    if isinstance(versions, np.ndarray):
        versions = torch.from_numpy(versions)
    if not isinstance(versions, torch.Tensor):
        raise TypeError(f"expected a tensor of shape (D, C, H, W), got {type(versions).__name__}")
    if versions.dim() != 4:
        raise ValueError(f"expected a tensor of shape (D, C, H, W), got shape {tuple(versions.shape)}")
    if versions.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels (dimension 1), got shape {tuple(versions.shape)}")
    if min(versions.shape[-2:]) < 2:
        raise ValueError(f"expected images of at least 2x2 pixels, got shape {tuple(versions.shape)}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"expected dtype torch.float32 or torch.float64, got {dtype}")
    if device is None:
        device = versions.device
    versions = versions.to(device=device, dtype=dtype)
    if versions.numel() and (versions.min() < 0 or versions.max() > 1):
        raise ValueError(f"expected values in [0, 1], got min {versions.min().item():.4g}, "
                         f"max {versions.max().item():.4g}")
    return versions


def fsim_features(versions: Union[torch.Tensor, np.ndarray], *, chromatic: bool = True,
                  dtype: torch.dtype = torch.float64,
                  device: Optional[Union[str, torch.device]] = None) -> FSIMFeatures:
    """Per-version FSIM quantities of ``versions`` (D, C, H, W) in [0, 1] (:class:`FSIMFeatures`), in one batch."""
    x = _as_versions(versions, dtype, device)
    if chromatic and x.shape[1] != 3:
        raise ValueError(f"chromatic=True needs RGB images (3 channels), got shape {tuple(x.shape)}")
    x = x * DATA_SCALE
    k = max(1, round(min(x.shape[-2:]) / POOL_TARGET))  # Python's round (half to even), as piq
    if k > 1:
        x = F.avg_pool2d(x, k)
    if x.shape[1] == 3:
        yiq = torch.matmul(x.permute(0, 2, 3, 1), torch.tensor(_YIQ, dtype=x.dtype, device=x.device).t())
        lum = yiq[..., 0]
        chroma_i, chroma_q = (yiq[..., 1], yiq[..., 2]) if chromatic else (None, None)
    else:
        lum, chroma_i, chroma_q = x[:, 0], None, None
    kx = torch.tensor(_SCHARR_X, dtype=x.dtype, device=x.device) / 16
    kernels = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3)
    grads = F.conv2d(lum[:, None], kernels, padding=1)
    gm = torch.sqrt((grads ** 2).sum(dim=1))
    pc = _phase_congruency(lum)
    return FSIMFeatures(pc=pc, gm=gm, i=chroma_i, q=chroma_q)


def _similarity(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    return (2.0 * a * b + c) / (a ** 2 + b ** 2 + c)


def _rows(f: FSIMFeatures, index: slice) -> FSIMFeatures:
    return FSIMFeatures(*(None if t is None else t[index] for t in f))


def _pair_scores(a: FSIMFeatures, b: FSIMFeatures) -> torch.Tensor:
    """FSIM of the pairs (a[p], b[p]); a and b broadcast against each other over the first dimension."""
    score = _similarity(a.pc, b.pc, FSIM_T1)  # S_PC
    score *= _similarity(a.gm, b.gm, FSIM_T2)  # S_G
    pc_max = torch.maximum(a.pc, b.pc)  # PC_m, the weight of each location
    score *= pc_max
    if a.i is not None:
        s_iq = _similarity(a.i, b.i, FSIM_T3)  # S_I
        s_iq *= _similarity(a.q, b.q, FSIM_T4)  # S_Q
        score *= torch.abs(s_iq) ** FSIM_LAMBDA
    return score.sum(dim=(-2, -1)) / pc_max.sum(dim=(-2, -1))


def fsim_matrix(versions: Union[torch.Tensor, np.ndarray], *, chromatic: bool = True,
                dtype: torch.dtype = torch.float64,
                device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """FSIM between every pair of ``versions`` (D, C, H, W) in [0, 1] -> (D, D) of ``dtype``, [j, k] =
    ``piq.fsim(versions[j:j+1], versions[k:k+1], data_range=1.0)`` to ~1e-12 in float64 (the official loader's
    dtype; float32 errs below 1e-6, ``benchmarks/bench_fsim.py``). Lower triangle mirrored, diagonal 1."""
    feats = fsim_features(versions, chromatic=chromatic, dtype=dtype, device=device)
    d = feats.pc.shape[0]
    hw = feats.pc.shape[-1] * feats.pc.shape[-2]
    block = max(1, _MAX_BLOCK_ELEMENTS // (4 * hw))
    out = torch.eye(d, dtype=feats.pc.dtype, device=feats.pc.device)  # diagonal exactly 1, as the official loader
    for j in range(1, d):  # row j of the lower triangle: version j against versions 0..j-1
        row = _rows(feats, slice(j, j + 1))
        for start in range(0, j, block):
            stop = min(j, start + block)
            values = _pair_scores(row, _rows(feats, slice(start, stop)))
            out[j, start:stop] = values
            out[start:stop, j] = values
    return out


def fsim_pair(a: Union[torch.Tensor, np.ndarray], b: Union[torch.Tensor, np.ndarray], *, chromatic: bool = True,
              dtype: torch.dtype = torch.float64, device: Optional[Union[str, torch.device]] = None) -> float:
    """FSIM of two images (C, H, W) or (1, C, H, W) in [0, 1] with the same shape -> float."""
    a = torch.as_tensor(a)
    b = torch.as_tensor(b)
    if a.dim() == 3:
        a = a[None]
    if b.dim() == 3:
        b = b[None]
    if a.shape != b.shape or a.dim() != 4 or a.shape[0] != 1:
        raise ValueError(f"expected two images of the same shape (C, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    return float(fsim_matrix(torch.cat([a.to(b.device), b]), chromatic=chromatic, dtype=dtype, device=device)[1, 0])


def fsim_matrix_piq(stack: torch.Tensor) -> torch.Tensor:
    """The official loader's FSIM matrix: one ``piq.fsim(x_i, x_j, data_range=1.0)`` per pair of the lower
    triangle, float64, symmetrised, diagonal 1. stack (D, 3, H, W) in [0, 1] -> (D, D) float64."""
    import piq

    d = stack.shape[0]
    x = stack.to(torch.float64)
    out = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d):
        for j in range(i):
            out[i, j] = piq.fsim(x[i:i + 1], x[j:j + 1], data_range=1.0)
    out = out + out.t()
    out.fill_diagonal_(1.0)
    return out
