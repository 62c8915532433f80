"""Synthetic distortions of the KADIS-700k generator, for the GRepQ training set (SPEC §6).

The paper (Sec. 3.1, "Image Augmentation") makes "four synthetic distortions: blur, compression, noise,
and color saturation, at two levels each"; the authors say they used the KADIS-700k MATLAB generator
(``imdist_generator.m`` of Lin, Hosu and Saupe, the KADID-10k / KADIS-700k authors). This module
re-implements the six generator types that fit those four words, with the generator's five levels each:

==================  ==========  =======================================  ==================================
name                KADIS id    level 1 .. 5 (``DISTORTION_LEVELS``)     operation
==================  ==========  =======================================  ==================================
gaussian_blur       1           sigma 0.1, 0.5, 1, 2, 5                  Gaussian filter, replicate border
lab_saturation      8           factor 1, 2, 3, 6, 9                     a*, b* of CIELAB (D65) times factor
hsv_saturation      7           factor 0.4, 0.2, 0.1, 0, -0.4            S of HSV times factor
jpeg2000            9           ratio 16, 32, 45, 120, 170               JPEG 2000 (OpenJPEG, 9/7 wavelet)
jpeg                10          quality 43, 36, 24, 7, 4                 JPEG (libjpeg via Pillow)
white_noise         11          variance 0.001, 0.002, 0.003, .005, .01  additive N(0, variance), clipped
==================  ==========  =======================================  ==================================

Level values are those of SPEC §6 (``imdist_generator.m``). One public copy of ``imdist_generator.m``
has 400 instead of 170 for JPEG 2000 level 5; the default levels below do not use level 5.

What the generator's operations mean, as implemented here:

* **hsv_saturation** ("color saturation 1", ``imcolorsaturate``): ``rgb2hsv``, the saturation channel
  multiplied by the factor, ``hsv2rgb``. The factors are not a "saturation level" but a multiplier:
  0.4, 0.2, 0.1 desaturate to 40 %, 20 %, 10 % of the original saturation, 0 gives a grey image whose
  value is V = max(R, G, B) (not the luminance), and -0.4 flips every colour to the complementary hue
  at 40 % saturation (HSV -> RGB with a negative S pushes the two smaller channels *above* V). Scaling
  S by c with H and V kept is exactly ``rgb' = V - c * (V - rgb)`` per pixel, which is computed here in
  closed form (identical to the sextant formula of ``hsv2rgb``, and defined for grey pixels too).
  Source: ``imcolorsaturate.m`` (``hsvIm(:,:,2) = hsvIm(:,:,2) * factor``) and the Python ports of
  the generator, which do the same with ``skimage.color``.
* **lab_saturation** ("color saturation 2", ``imsaturate``): ``rgb2lab``, a* and b* multiplied by the
  factor (1 leaves the image unchanged), ``lab2rgb``. sRGB with D65 white, as MATLAB's and skimage's
  defaults; the conversion is written out here so that out-of-gamut values are kept for the range step.
* **white_noise** (``imnoisegauss`` = MATLAB ``imnoise(im, 'gaussian', 0, v)``): independent
  N(0, v) per pixel and channel on [0, 1] values, then clipped to [0, 1] (``imnoise`` clips).
* **gaussian_blur** (``imblurgauss``): a normalised Gaussian of the given sigma. The kernel radius is
  ``ceil(2 sigma)`` and the border is replicated (MATLAB ``imgaussfilt`` defaults; the exact window
  size of ``imblurgauss.m`` could not be checked).
* **jpeg** / **jpeg2000** (``imcompressjpeg`` / ``imcompressjp2k`` write the image with MATLAB
  ``imwrite`` at the given quality / ``CompressionRatio`` and read it back): the image is rounded to
  8 bits and round-tripped through Pillow's JPEG encoder (``quality``, Pillow's default 4:2:0 chroma
  subsampling) or JPEG 2000 encoder (``quality_mode="rates"``, ``quality_layers=[ratio]``, irreversible
  9/7 wavelet as MATLAB's lossy mode). Encoders differ from MATLAB's in detail.

**Range handling** (``range_mode``). ``imdist_generator.m`` calls ``mapmm`` on its input and on every
output; ``mapmm`` maps the minimum..maximum of the array linearly to 0..1 (its definition in the Python
ports of the generator and in the KADID authors' ``kutils``). ``range_mode="kadis"`` (default) does the
same: the input is stretched to [0, 1] before distorting and each result is stretched to [0, 1] (so an
HSV factor of -0.4 or a Lab factor of 9, which leave the gamut, are compressed back rather than clipped).
``range_mode="clip"`` leaves the input alone and clips results to [0, 1] (what the Python ports do).
For a photograph that already spans 0..255 the input stretch is the identity. The per-type functions
(``gaussian_blur`` ... ``lab_saturation``) default to ``"clip"`` and never stretch their input;
:func:`apply_distortion` and :func:`distortion_stack` default to ``DEFAULT_RANGE_MODE``.

Images are numpy arrays (H, W, 3), float32 in [0, 1] (uint8 is accepted and divided by 255); every
function returns a new float32 (H, W, 3) array in [0, 1]. Random distortions take a
``numpy.random.Generator``; :func:`distortion_stack` seeds one per (type, level) from its ``seed``, so
the same seed gives byte-identical results.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, features
from scipy import ndimage

__all__ = [
    "DISTORTION_LEVELS", "DISTORTION_KADIS_IDS", "DEFAULT_TYPES", "DEFAULT_LEVELS", "DEFAULT_RANGE_MODE",
    "RANGE_MODES", "DistortionSpec", "gaussian_blur", "jpeg", "jpeg2000", "white_noise", "hsv_saturation",
    "lab_saturation", "apply_distortion", "distortion_specs", "distortion_stack", "jpeg2000_available",
]

# Level values per type, level 1 (mildest) .. 5 (strongest): KADIS-700k ``imdist_generator.m`` (SPEC §6).
DISTORTION_LEVELS: Dict[str, Tuple[float, ...]] = {
    "gaussian_blur": (0.1, 0.5, 1.0, 2.0, 5.0),  # sigma in pixels (KADIS type 1)
    "jpeg": (43, 36, 24, 7, 4),  # JPEG quality (KADIS type 10)
    "jpeg2000": (16, 32, 45, 120, 170),  # JPEG 2000 compression ratio (KADIS type 9; SPEC §6)
    "white_noise": (0.001, 0.002, 0.003, 0.005, 0.01),  # noise variance on [0, 1] values (KADIS type 11)
    "hsv_saturation": (0.4, 0.2, 0.1, 0.0, -0.4),  # multiplier of HSV saturation (KADIS type 7, "color saturation 1")
    "lab_saturation": (1.0, 2.0, 3.0, 6.0, 9.0),  # multiplier of CIELAB a*, b* (KADIS type 8, "color saturation 2")
}
# KADIS-700k / KADID-10k distortion ids of the types above.
DISTORTION_KADIS_IDS: Dict[str, int] = {
    "gaussian_blur": 1, "hsv_saturation": 7, "lab_saturation": 8, "jpeg2000": 9, "jpeg": 10, "white_noise": 11,
}
# The paper (Sec. 3.1): "Four synthetic distortions are generated: blur, compression, noise, and color saturation,
# at two levels each." Which generator type stands for each word is not said; the default takes blur -> Gaussian
# blur, compression -> JPEG (the commoner codec; jpeg2000 is the alternative), noise -> white noise, colour
# saturation -> HSV saturation ("color saturation 1"; lab_saturation is "color saturation 2").
DEFAULT_TYPES: Tuple[str, ...] = ("gaussian_blur", "jpeg", "white_noise", "hsv_saturation")
# Which two of the five levels GRepQ used is unknown (SPEC §6). Default: levels 2 and 4, a moderate and a strong one,
# skipping level 1 (near-identity: blur sigma 0.1; Lab factor 1 is the identity) and the extreme level 5.
DEFAULT_LEVELS: Tuple[int, ...] = (2, 4)
RANGE_MODES = ("kadis", "clip")
DEFAULT_RANGE_MODE = "kadis"  # mapmm on input and outputs, as imdist_generator.m (see the module docstring)

# Gaussian blur kernel radius = ceil(BLUR_RADIUS_SIGMAS * sigma) (MATLAB imgaussfilt default filter size
# 2*ceil(2*sigma)+1).
BLUR_RADIUS_SIGMAS = 2.0
# sRGB (IEC 61966-2-1) and CIELAB constants, D65 white (MATLAB rgb2lab / skimage defaults).
_SRGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
_XYZ_TO_SRGB = np.linalg.inv(_SRGB_TO_XYZ)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_LAB_DELTA = 6.0 / 29.0


def jpeg2000_available() -> bool:
    """Whether this Pillow can encode JPEG 2000 (it needs OpenJPEG)."""
    return bool(features.check("jpg_2000"))


def _check_image(img: np.ndarray, what: str = "image") -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array (H, W, 3), got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{what}: expected an array of shape (H, W, 3), got {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{what}: expected float32 in [0, 1] or uint8, got dtype {img.dtype}")
    if not np.all(np.isfinite(img)):
        raise ValueError(f"{what}: expected finite values, got NaN or inf")
    if img.size and (img.min() < 0 or img.max() > 1):
        raise ValueError(f"{what}: expected values in [0, 1], got min {img.min():.4g}, max {img.max():.4g}")
    return img


def _mapmm(x: np.ndarray) -> np.ndarray:
    """KADIS ``mapmm``: map min..max of ``x`` linearly to 0..1 (a constant array is returned unchanged)."""
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        return (x - lo) / (hi - lo)
    return x


def _finish(x: np.ndarray, range_mode: str) -> np.ndarray:
    if range_mode == "kadis":
        x = _mapmm(x)
    elif range_mode != "clip":
        raise ValueError(f"range_mode: expected one of {RANGE_MODES}, got {range_mode!r}")
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ distortions


def gaussian_blur(img: np.ndarray, sigma: float, rng: Optional[np.random.Generator] = None, *,
                  range_mode: str = "clip") -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (radius ceil(2 sigma), replicated border).

    ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1]. ``rng`` is unused (deterministic).
    """
    x = _check_image(img).astype(np.float64)
    if sigma < 0:
        raise ValueError(f"gaussian_blur: expected sigma >= 0, got {sigma}")
    radius = int(np.ceil(BLUR_RADIUS_SIGMAS * sigma))
    if sigma > 0 and radius > 0:
        t = np.arange(-radius, radius + 1, dtype=np.float64)
        kernel = np.exp(-(t ** 2) / (2.0 * sigma ** 2))
        kernel /= kernel.sum()
        x = ndimage.correlate1d(x, kernel, axis=0, mode="nearest")
        x = ndimage.correlate1d(x, kernel, axis=1, mode="nearest")
    return _finish(x, range_mode)


def jpeg(img: np.ndarray, quality: float, rng: Optional[np.random.Generator] = None, *,
         range_mode: str = "clip") -> np.ndarray:
    """JPEG round trip at ``quality`` (1..95) through Pillow/libjpeg, 4:2:0 chroma subsampling.

    ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1] (multiples of 1/255). ``rng`` unused.
    """
    x = _check_image(img)
    q = int(round(quality))
    if not 1 <= q <= 100:
        raise ValueError(f"jpeg: expected quality in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(x), mode="RGB").save(buf, format="JPEG", quality=q)
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    return _finish(out, range_mode)


def jpeg2000(img: np.ndarray, ratio: float, rng: Optional[np.random.Generator] = None, *,
             range_mode: str = "clip") -> np.ndarray:
    """JPEG 2000 round trip at compression ``ratio`` (uncompressed : compressed size) through Pillow/OpenJPEG.

    ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1]. ``rng`` unused.
    Raises RuntimeError if this Pillow was built without OpenJPEG.
    """
    x = _check_image(img)
    if not jpeg2000_available():
        raise RuntimeError("jpeg2000: this Pillow has no JPEG 2000 encoder (built without OpenJPEG); "
                           "install a Pillow wheel with OpenJPEG or choose another distortion type")
    if ratio < 1:
        raise ValueError(f"jpeg2000: expected a compression ratio >= 1, got {ratio}")
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(x), mode="RGB").save(
        buf, format="JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True)
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    return _finish(out, range_mode)


def white_noise(img: np.ndarray, variance: float, rng: np.random.Generator, *,
                range_mode: str = "clip") -> np.ndarray:
    """Additive white Gaussian noise N(0, ``variance``) per pixel and channel on [0, 1] values, clipped to [0, 1].

    ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1]; ``rng`` draws the noise (float64).
    """
    x = _check_image(img).astype(np.float64)
    if variance < 0:
        raise ValueError(f"white_noise: expected variance >= 0, got {variance}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"white_noise: expected a numpy.random.Generator, got {type(rng).__name__}")
    noisy = np.clip(x + rng.standard_normal(x.shape) * np.sqrt(variance), 0.0, 1.0)  # imnoise clips
    return _finish(noisy, range_mode)


def hsv_saturation(img: np.ndarray, factor: float, rng: Optional[np.random.Generator] = None, *,
                   range_mode: str = "clip") -> np.ndarray:
    """Multiply the HSV saturation by ``factor`` (any real; 0 -> grey V = max(R,G,B), < 0 -> complementary hue).

    ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1]. Computed as ``V - factor * (V - rgb)``,
    which is ``hsv2rgb`` of the scaled HSV image. ``rng`` unused.
    """
    x = _check_image(img).astype(np.float64)
    v = x.max(axis=2, keepdims=True)
    return _finish(v - float(factor) * (v - x), range_mode)


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T / _D65_WHITE
    f = np.where(xyz > _LAB_DELTA ** 3, np.cbrt(xyz), xyz / (3 * _LAB_DELTA ** 2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def _lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> sRGB without clipping (values may leave [0, 1] for out-of-gamut colours)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > _LAB_DELTA, f ** 3, 3 * _LAB_DELTA ** 2 * (f - 4.0 / 29.0)) * _D65_WHITE
    lin = xyz @ _XYZ_TO_SRGB.T
    # The sRGB curve, extended to negative values by odd symmetry.
    mag = np.abs(lin)
    enc = np.where(mag <= 0.0031308, 12.92 * mag, 1.055 * mag ** (1 / 2.4) - 0.055)
    return np.sign(lin) * enc


def lab_saturation(img: np.ndarray, factor: float, rng: Optional[np.random.Generator] = None, *,
                   range_mode: str = "clip") -> np.ndarray:
    """Multiply CIELAB a* and b* (D65) by ``factor`` (1 = unchanged, larger = more saturated).

    ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1]. ``rng`` unused.
    """
    x = _check_image(img).astype(np.float64)
    lab = _srgb_to_lab(x)
    lab[..., 1:] *= float(factor)
    return _finish(_lab_to_srgb(lab), range_mode)


_FUNCTIONS: Dict[str, Callable[..., np.ndarray]] = {
    "gaussian_blur": gaussian_blur,
    "jpeg": jpeg,
    "jpeg2000": jpeg2000,
    "white_noise": white_noise,
    "hsv_saturation": hsv_saturation,
    "lab_saturation": lab_saturation,
}


@dataclass(frozen=True)
class DistortionSpec:
    """One distortion: a type name (a key of ``DISTORTION_LEVELS``) and a KADIS level index 1..5."""

    type: str
    level: int

    def __post_init__(self):
        if self.type not in DISTORTION_LEVELS:
            raise ValueError(f"unknown distortion type {self.type!r}; available types = {sorted(DISTORTION_LEVELS)}")
        n = len(DISTORTION_LEVELS[self.type])
        if isinstance(self.level, bool) or not isinstance(self.level, (int, np.integer)) or not 1 <= self.level <= n:
            raise ValueError(f"distortion level of {self.type!r}: expected an integer in 1..{n}, got {self.level!r}")

    @property
    def value(self) -> float:
        """The generator's parameter at this level (sigma, quality, ratio, variance or factor)."""
        return DISTORTION_LEVELS[self.type][self.level - 1]

    @property
    def name(self) -> str:
        """``<type>_<level>``, e.g. ``gaussian_blur_2`` (the file-name suffix used by ``prepare``)."""
        return f"{self.type}_{self.level}"

    def seed_sequence(self, seed: int) -> np.random.SeedSequence:
        """The random stream of this distortion for a given item seed (stable across processes and platforms)."""
        return np.random.SeedSequence([int(seed), zlib.crc32(self.type.encode("utf-8")), int(self.level)])


def apply_distortion(img: np.ndarray, spec: DistortionSpec, rng: Optional[np.random.Generator] = None, *,
                     range_mode: str = DEFAULT_RANGE_MODE) -> np.ndarray:
    """Apply ``spec`` to ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1].

    With ``range_mode="kadis"`` the input is first min-max stretched (KADIS ``mapmm``), then the result.
    """
    if range_mode not in RANGE_MODES:
        raise ValueError(f"range_mode: expected one of {RANGE_MODES}, got {range_mode!r}")
    x = _check_image(img)
    if range_mode == "kadis":
        x = _mapmm(x.astype(np.float64)).astype(np.float32)
    if rng is None:
        rng = np.random.default_rng(spec.seed_sequence(0))
    return _FUNCTIONS[spec.type](x, spec.value, rng, range_mode=range_mode)


def distortion_specs(types: Sequence[str], levels: Sequence[int]) -> List[DistortionSpec]:
    """The specs of ``types`` x ``levels``, ordered by type then level; raises ValueError for bad choices."""
    if isinstance(types, str) or isinstance(levels, (str, int)):
        raise TypeError(f"types and levels must be sequences, got types={types!r}, levels={levels!r}")
    if len(types) == 0 or len(levels) == 0:
        raise ValueError(f"expected at least one type and one level, got types={types!r}, levels={levels!r}")
    if len(set(types)) != len(types) or len(set(levels)) != len(levels):
        raise ValueError(f"expected no repeated types or levels, got types={list(types)}, levels={list(levels)}")
    return [DistortionSpec(t, int(l) if isinstance(l, (int, np.integer)) and not isinstance(l, bool) else l)
            for t in types for l in levels]


def distortion_stack(image: np.ndarray, types: Sequence[str] = DEFAULT_TYPES,
                     levels: Sequence[int] = DEFAULT_LEVELS, seed: int = 0, *,
                     range_mode: str = DEFAULT_RANGE_MODE) -> List[Tuple[str, np.ndarray]]:
    """The distorted versions of ``image`` (H, W, 3) float32 in [0, 1] (uint8 accepted).

    Returns ``[(name, version), ...]`` with ``name = "<type>_<level>"`` and ``version`` (H, W, 3) float32 in
    [0, 1], ordered by type (as given) then level (as given): len(types) * len(levels) entries (the reference
    itself is not included). Deterministic: each (type, level) draws from its own stream seeded by
    (``seed``, type, level), so the same seed gives byte-identical outputs whatever else is in the stack.
    """
    specs = distortion_specs(types, levels)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    x = _check_image(image)
    out = []
    for spec in specs:
        rng = np.random.default_rng(spec.seed_sequence(int(seed)))
        out.append((spec.name, apply_distortion(x, spec, rng, range_mode=range_mode)))
    return out
