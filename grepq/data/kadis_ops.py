"""The MATLAB building blocks of the KADIS-700k generator's distortion functions (``imdist_generator.m``, Lin,
Hosu and Saupe), on float64 (H, W, 3) arrays, after MATLAB's documented behaviour (no MATLAB code used):
``imfilter(.., 'replicate')`` (:func:`correlate_replicate`), ``imgaussfilt`` (size 2*ceil(2*sigma)+1),
``fspecial('disk')``, ``fspecial('motion')``, ``rgb2lab``/``lab2rgb`` (sRGB, D65), ``rgb2ycbcr``/``ycbcr2rgb``
(BT.601 studio range, floating point, ``ycbcr2rgb`` clipped), KADIS ``utils/curves.m`` (:func:`tone_curve`) and
``imnoise(.., 'gaussian')``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage, signal
from scipy.interpolate import CubicSpline

__all__ = ["correlate_replicate", "gaussian_kernel1d", "gaussian_filter", "disk_kernel", "motion_kernel",
           "srgb_to_lab", "lab_to_srgb", "rgb_to_ycbcr", "ycbcr_to_rgb", "tone_curve", "gaussian_noise",
           "SRGB_TO_XYZ", "D65_WHITE", "YCBCR_MATRIX", "YCBCR_OFFSET"]

GAUSS_RADIUS_SIGMAS = 2.0  # Gaussian window half-width in sigmas: imgaussfilt's size 2*ceil(2*sigma)+1
FFT_MIN_TAPS = 26  # kernels with more taps are applied by FFT (the same correlation up to float rounding)
# sRGB (IEC 61966-2-1) to CIE XYZ and the D65 white (within 1e-4 of every published rounding; docs/differences.md).
SRGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_LAB_DELTA = 6.0 / 29.0
# ITU-R BT.601 studio-range YCbCr of [0, 1] RGB (MATLAB rgb2ycbcr, floating point): ycc = rgb @ M.T + offset.
YCBCR_MATRIX = np.array([[65.481, 128.553, 24.966],
                         [-37.797, -74.203, 112.0],
                         [112.0, -93.786, -18.214]]) / 255.0
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0


def correlate_replicate(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``imfilter(x, kernel, 'replicate', 'same')``: 2-D correlation of each channel, replicated borders.

    x (H, W, C) float64, kernel (kh, kw) with odd sides, centred -> (H, W, C) float64.
    """
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"correlate_replicate: expected odd kernel sides, got {kernel.shape}")
    if kernel.size < FFT_MIN_TAPS:
        return ndimage.correlate(x, kernel[:, :, None], mode="nearest")
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((ph, ph), (pw, pw), (0, 0)), mode="edge")
    flipped = kernel[::-1, ::-1, None]  # correlation = convolution with the flipped kernel
    return signal.fftconvolve(padded, flipped, mode="valid", axes=(0, 1))


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation ``sigma``, ``2*ceil(2*sigma)+1`` taps (imgaussfilt)."""
    radius = int(np.ceil(GAUSS_RADIUS_SIGMAS * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t ** 2) / (2.0 * sigma ** 2))
    return k / k.sum()


def gaussian_filter(x: np.ndarray, sigma: float) -> np.ndarray:
    """``imgaussfilt(x, sigma)`` per channel (separable, replicated borders): (H, W, ...) -> same shape."""
    if sigma <= 0:
        return x.copy()
    k = gaussian_kernel1d(sigma)
    x = ndimage.correlate1d(x, k, axis=0, mode="nearest")
    return ndimage.correlate1d(x, k, axis=1, mode="nearest")


def _disc_column_area(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray, r: float,
                      samples: int = 4096) -> np.ndarray:
    """Area of {x0 < x < x1, y0 < y < y1} inside the disc of radius r (midpoint rule in x, exact in y)."""
    u = (np.arange(samples) + 0.5) / samples
    xs = x0[..., None] + (x1 - x0)[..., None] * u                      # (..., samples)
    half = np.sqrt(np.clip(r * r - xs * xs, 0.0, None))                  # the disc spans |y| < half at x
    lo = np.maximum(-half, y0[..., None])
    hi = np.minimum(half, y1[..., None])
    return np.clip(hi - lo, 0.0, None).mean(axis=-1) * (x1 - x0)


def disk_kernel(radius: float) -> np.ndarray:
    """``fspecial('disk', radius)``: (2c+1, 2c+1), c = ceil(radius - 0.5); each cell is the area of its unit pixel
    square inside the disc (chord length integrated, error < 1e-7), normalised to sum 1."""
    if radius <= 0:
        raise ValueError(f"disk_kernel: expected radius > 0, got {radius}")
    c = int(np.ceil(radius - 0.5))
    off = np.arange(-c, c + 1, dtype=np.float64)
    yy, xx = np.meshgrid(off, off, indexing="ij")
    area = _disc_column_area(xx - 0.5, xx + 0.5, yy - 0.5, yy + 0.5, float(radius))
    return area / area.sum()


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """``fspecial('motion', length, angle)``: a line of ``length`` px at ``angle`` degrees (counter-clockwise) ->
    an odd-sided (kh, kw) float64 kernel. MATLAB's construction: on the grid quarter the line points into, each
    cell gets max(0, 1 - d), d its distance to the line (to the end point for cells ``(length-1)/2`` or more from
    the centre); the other half is the point reflection; normalised to sum 1, rows running downwards."""
    eps = np.finfo(np.float64).eps
    length = max(1.0, float(length))
    half = (length - 1.0) / 2.0
    phi = np.mod(angle_deg, 180.0) / 180.0 * np.pi
    cos, sin = np.cos(phi), np.sin(phi)
    xsign = 1.0 if cos >= 0 else -1.0  # MATLAB sign(cos): cos(pi/2) is 6e-17 > 0 in floating point
    sx = int(np.fix(half * cos + xsign - length * eps))
    sy = int(np.fix(half * sin + 1.0 - length * eps))
    xs = np.arange(0, abs(sx) + 1, dtype=np.float64) * xsign
    x, y = np.meshgrid(xs, np.arange(0, sy + 1, dtype=np.float64))      # (sy+1, |sx|+1), rows = y
    perp = y * cos - x * sin                                             # signed distance across the line
    along = x * cos + y * sin                                            # position along the line
    beyond = (np.hypot(x, y) >= half) & (np.abs(perp) <= 1.0)
    dist = np.where(beyond, np.hypot(perp, half - np.abs(along)), np.abs(perp))
    quarter = np.clip(1.0 + eps - dist, 0.0, None)
    qh, qw = quarter.shape
    full = np.zeros((2 * qh - 1, 2 * qw - 1))
    full[:qh, :qw] = quarter[::-1, ::-1]
    full[qh - 1:, qw - 1:] = quarter
    full = full / (full.sum() + eps * length * length)
    return full[::-1] if cos > 0 else full


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> CIELAB (D65): (..., 3) -> (..., 3), L* in [0, 100]."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ SRGB_TO_XYZ.T / D65_WHITE
    f = np.where(xyz > _LAB_DELTA ** 3, np.cbrt(xyz), xyz / (3 * _LAB_DELTA ** 2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> sRGB, not clipped: (..., 3) -> (..., 3); the sRGB curve is odd-symmetric below 0 (which
    matters only to the legacy Lab saturation: KADIS functions truncate)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > _LAB_DELTA, f ** 3, 3 * _LAB_DELTA ** 2 * (f - 4.0 / 29.0)) * D65_WHITE
    lin = xyz @ XYZ_TO_SRGB.T
    mag = np.abs(lin)
    enc = np.where(mag <= 0.0031308, 12.92 * mag, 1.055 * mag ** (1 / 2.4) - 0.055)
    return np.sign(lin) * enc


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` of floating-point RGB in [0, 1]: Y in [16, 235]/255, Cb, Cr in [16, 240]/255."""
    return rgb @ YCBCR_MATRIX.T + YCBCR_OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb`` of floating-point YCbCr: the inverse of :func:`rgb_to_ycbcr`, clipped to [0, 1]."""
    return np.clip((ycc - YCBCR_OFFSET) @ np.linalg.inv(YCBCR_MATRIX).T, 0.0, 1.0)


def tone_curve(x: np.ndarray, knots_x: Sequence[float], knots_y: Sequence[float]) -> np.ndarray:
    """KADIS ``curves``: the not-a-knot spline through (0, 0), the knots and (1, 1) (MATLAB ``spline``: with one
    inner knot, the parabola), clamped to [0, 1]."""
    kx = np.concatenate([[0.0], np.asarray(knots_x, dtype=np.float64), [1.0]])
    ky = np.concatenate([[0.0], np.asarray(knots_y, dtype=np.float64), [1.0]])
    return np.clip(CubicSpline(kx, ky, bc_type="not-a-knot")(x), 0.0, 1.0)


def gaussian_noise(x: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """``imnoise(x, 'gaussian', 0, variance)``: x + sqrt(variance) N(0, 1) (float64 draws), clipped to [0, 1]."""
    return np.clip(x + rng.standard_normal(x.shape) * np.sqrt(variance), 0.0, 1.0)
