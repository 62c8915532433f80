"""The KADIS-700k distortions GRepQ's training set was made with (docs/method.md §6; official repository, issue #3).

KADIS's ``imdist_generator.m`` (Lin, Hosu and Saupe) stretches its input to [0, 1] (``mapmm``), calls one
distortion function and stretches the result again. grepq re-implements the 14 types its recipes use (the authors'
12, :data:`AUTHORS_TYPES`, and two colour saturations); :data:`KADIS_TYPES` holds their parameters at levels 1..5
(``imdist_generator.m``'s table):

====  ===========================  ================  ================================================================
id    name                         KADIS function    operation
====  ===========================  ================  ================================================================
1     gaussian_blur                imblurgauss       imgaussfilt
2     lens_blur                    imblurlens        fspecial('disk'), replicated borders
3     motion_blur                  imblurmotion      fspecial('motion', length, angle), integer angle uniform in 0..180
7     hsv_saturation               imcolorsaturate   HSV saturation times a factor
8     lab_saturation               imsaturate        Lab a*, b* times a factor, clipped to [0, 1]
9     jpeg2000                     imcompressjp2k    OpenJPEG, 9/7 wavelet, RGB -> YCbCr component transform
10    jpeg                         imcompressjpeg    libjpeg, 4:2:0
11    white_noise                  imnoisegauss      imnoise 'gaussian'
12    white_noise_color_component  imnoisecolorcomp  imnoise on YCbCr
15    denoise_nlm                  imdenoise         SUBSTITUTE: the noise, then non-local means instead of DnCNN
16    brighten                     imbrighten        tone curve, mixed 2:1 with the same curve on Lab L*
17    darken                       imdarken          tone curve
24    high_sharpen                 imsharpenHi       unsharp mask of L*, radius 3, clipped
25    contrast_change              imcontrastc       S-shaped tone curve
====  ===========================  ================  ================================================================

``denoise_nlm`` is a labelled substitute: KADIS denoises with MATLAB's pretrained DnCNN, which grepq cannot ship;
grepq adds the same noise and removes it with scikit-image's non-local means per channel (:data:`NLM_SETTINGS`;
``docs/differences.md``). ``range_mode="kadis"`` (default) stretches the input and every result to [0, 1] with
``mapmm`` (after the type's own clipping) as ``imdist_generator.m``; ``"clip"`` only clips. ``legacy=True`` (recipe
``fixed``) keeps grepq's behaviour before its check against KADIS, for old runs: ``jpeg2000`` without the colour
transform and level-5 ratio 170, ``lab_saturation`` not clipped before the stretch.

Images are numpy arrays (H, W, 3) float32 in [0, 1] (uint8 accepted); every function returns a new float32
(H, W, 3) in [0, 1]. Random types draw from a ``numpy.random.Generator`` seeded per (item seed, type, level), so a
seed gives byte-identical results. Checked against KADIS's own output in ``tests/test_distortions.py``.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, features

from . import kadis_ops as ops

__all__ = [
    "KadisType", "KADIS_TYPES", "TYPES_BY_ID", "DISTORTION_LEVELS", "LEGACY_LEVELS", "DISTORTION_KADIS_IDS",
    "AUTHORS_TYPES", "AUTHORS_LEVELS", "DEFAULT_TYPES", "DEFAULT_LEVELS", "DEFAULT_RANGE_MODE", "RANGE_MODES",
    "NLM_SETTINGS", "DistortionSpec", "gaussian_blur", "lens_blur", "motion_blur", "jpeg", "jpeg2000",
    "white_noise", "white_noise_color_component", "denoise_nlm", "brighten", "darken", "high_sharpen",
    "contrast_change", "hsv_saturation", "lab_saturation", "apply_distortion", "distort_specs",
    "distortion_stack", "jpeg2000_available", "kadis_type",
]

RANGE_MODES = ("kadis", "clip")
DEFAULT_RANGE_MODE = "kadis"  # mapmm on input and outputs, as imdist_generator.m (see the module docstring)
#: The authors' recipe (docs/method.md §6): per image 4 of these 12 KADIS types, 2 of AUTHORS_LEVELS per type.
AUTHORS_TYPES: Tuple[str, ...] = ("gaussian_blur", "lens_blur", "motion_blur", "jpeg2000", "jpeg", "white_noise",
                                  "white_noise_color_component", "denoise_nlm", "brighten", "darken",
                                  "high_sharpen", "contrast_change")
AUTHORS_LEVELS: Tuple[int, ...] = (2, 3, 4, 5)
# Recipe "fixed" (grepq's default before the authors' recipe was known): these 4 types at levels 2 and 4, D = 8,
# after paper §3.1's "blur, compression, noise, and color saturation".
DEFAULT_TYPES: Tuple[str, ...] = ("gaussian_blur", "jpeg", "white_noise", "hsv_saturation")
DEFAULT_LEVELS: Tuple[int, ...] = (2, 4)
#: ``denoise_nlm``: skimage's denoise_nl_means per channel, 5x5 patches within 6 px, h = 0.8 sigma (the noise std).
NLM_SETTINGS = {"patch_size": 5, "patch_distance": 6, "h_over_sigma": 0.8, "fast_mode": True}
#: The sample range of KADIS's motion-blur angle: randi([0, 180]) degrees.
MOTION_ANGLE_RANGE = (0, 180)


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


def _codec_roundtrip(x: np.ndarray, fmt: str, **options) -> np.ndarray:
    """Write ``x`` (H, W, 3) in [0, 1] as 8 bits with Pillow in ``fmt``, read it back: float64 (H, W, 3)."""
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)).save(buf, format=fmt, **options)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0


# Each ``_op_<type>(x, value, rng, legacy)``: the checked float32 image -> the unclipped float64 result of the KADIS
# function (before the generator's final mapmm).


def _op_gaussian_blur(x, sigma, rng, legacy):
    if sigma < 0:
        raise ValueError(f"gaussian_blur: expected sigma >= 0, got {sigma}")
    return ops.gaussian_filter(x.astype(np.float64), sigma)


def _op_lens_blur(x, radius, rng, legacy):
    return ops.correlate_replicate(x.astype(np.float64), ops.disk_kernel(radius))


def _motion_angle(rng: np.random.Generator) -> int:
    """imblurmotion's angle, randi([0, 180]) degrees: the first draw of a motion_blur stream."""
    return int(rng.integers(MOTION_ANGLE_RANGE[0], MOTION_ANGLE_RANGE[1] + 1))


def _op_motion_blur(x, length, rng, legacy):
    return ops.correlate_replicate(x.astype(np.float64), ops.motion_kernel(length, _motion_angle(rng)))


def _op_hsv_saturation(x, factor, rng, legacy):
    # rgb2hsv, S * factor, hsv2rgb is exactly V - factor * (V - rgb) per pixel (also for grey pixels and factor < 0).
    x = x.astype(np.float64)
    v = x.max(axis=2, keepdims=True)
    return v - float(factor) * (v - x)


def _op_lab_saturation(x, factor, rng, legacy):
    lab = ops.srgb_to_lab(x.astype(np.float64))
    lab[..., 1:] *= float(factor)
    rgb = ops.lab_to_srgb(lab)
    return rgb if legacy else np.clip(rgb, 0.0, 1.0)  # imsaturate: truncate(lab2rgb(...))


def _op_jpeg2000(x, ratio, rng, legacy):
    if not jpeg2000_available():
        raise RuntimeError("jpeg2000: this Pillow has no JPEG 2000 encoder (built without OpenJPEG); "
                           "install a Pillow wheel with OpenJPEG or choose another distortion type")
    if ratio < 1:
        raise ValueError(f"jpeg2000: expected a compression ratio >= 1, got {ratio}")
    options = {} if legacy else {"mct": 1}  # MATLAB/Kakadu and opj_compress transform RGB to YCbCr first
    return _codec_roundtrip(x, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True,
                            **options)


def _op_jpeg(x, quality, rng, legacy):
    q = int(round(quality))
    if not 1 <= q <= 100:
        raise ValueError(f"jpeg: expected quality in 1..100, got {quality}")
    return _codec_roundtrip(x, "JPEG", quality=q)


def _op_white_noise(x, variance, rng, legacy):
    if variance < 0:
        raise ValueError(f"white_noise: expected variance >= 0, got {variance}")
    return ops.gaussian_noise(x.astype(np.float64), variance, rng)


def _op_white_noise_color_component(x, variance, rng, legacy):
    ycc = ops.rgb_to_ycbcr(x.astype(np.float64))
    return ops.ycbcr_to_rgb(ops.gaussian_noise(ycc, variance, rng))


def _op_denoise_nlm(x, variance, rng, legacy):
    from skimage.restoration import denoise_nl_means

    noisy = ops.gaussian_noise(x.astype(np.float64), variance, rng)
    sigma = float(np.sqrt(variance))
    s = NLM_SETTINGS
    return np.stack([denoise_nl_means(noisy[..., c], patch_size=s["patch_size"], patch_distance=s["patch_distance"],
                                      h=s["h_over_sigma"] * sigma, sigma=sigma, fast_mode=s["fast_mode"])
                     for c in range(3)], axis=-1)


def _op_brighten(x, amount, rng, legacy):
    x = x.astype(np.float64)
    c = [0.5 + amount / 2.0]
    lab = ops.srgb_to_lab(x)
    lab[..., 0] = ops.tone_curve(lab[..., 0] / 100.0, [0.5], c) * 100.0
    return (2.0 * ops.tone_curve(x, [0.5], c) + np.clip(ops.lab_to_srgb(lab), 0.0, 1.0)) / 3.0


def _op_darken(x, amount, rng, legacy):
    return ops.tone_curve(x.astype(np.float64), [0.5], [0.5 - amount / 2.0])


def _op_high_sharpen(x, amount, rng, legacy, radius: float = 3.0):
    lab = ops.srgb_to_lab(x.astype(np.float64))
    lum = lab[..., 0]
    lab[..., 0] = lum + amount * (lum - ops.gaussian_filter(lum, radius))  # imsharpen: unsharp mask of L*
    return np.clip(ops.lab_to_srgb(lab), 0.0, 1.0)


def _op_contrast_change(x, amount, rng, legacy):
    return ops.tone_curve(x.astype(np.float64), [0.3, 0.5, 0.7], [0.25 - amount / 4.0, 0.5, 0.75 + amount / 4.0])


@dataclass(frozen=True)
class KadisType:
    """One KADIS-700k type: KADIS id, grepq name, the ``distortions/*.m`` function it follows, its parameter at
    levels 1..5 and what it means, whether it draws random numbers, and (if so) what grepq substitutes and why."""

    id: int
    name: str
    kadis_function: str
    levels: Tuple[float, ...]
    parameter: str
    random: bool
    op: Callable[..., np.ndarray]
    substitute: str = ""


KADIS_TYPES: Tuple[KadisType, ...] = (
    KadisType(1, "gaussian_blur", "imblurgauss", (0.1, 0.5, 1.0, 2.0, 5.0), "sigma (px)", False, _op_gaussian_blur),
    KadisType(2, "lens_blur", "imblurlens", (1, 2, 4, 6, 8), "disk radius (px)", False, _op_lens_blur),
    KadisType(3, "motion_blur", "imblurmotion", (1, 2, 4, 6, 10), "line length (px); random angle 0..180 deg",
              True, _op_motion_blur),
    KadisType(7, "hsv_saturation", "imcolorsaturate", (0.4, 0.2, 0.1, 0.0, -0.4), "factor on HSV saturation",
              False, _op_hsv_saturation),
    KadisType(8, "lab_saturation", "imsaturate", (1.0, 2.0, 3.0, 6.0, 9.0), "factor on Lab a*, b*", False,
              _op_lab_saturation),
    KadisType(9, "jpeg2000", "imcompressjp2k", (16, 32, 45, 120, 400), "compression ratio", False, _op_jpeg2000),
    KadisType(10, "jpeg", "imcompressjpeg", (43, 36, 24, 7, 4), "JPEG quality", False, _op_jpeg),
    KadisType(11, "white_noise", "imnoisegauss", (0.001, 0.002, 0.003, 0.005, 0.01), "noise variance", True,
              _op_white_noise),
    KadisType(12, "white_noise_color_component", "imnoisecolorcomp", (0.0001, 0.0005, 0.001, 0.002, 0.003),
              "noise variance in YCbCr", True, _op_white_noise_color_component),
    KadisType(15, "denoise_nlm", "imdenoise", (0.01, 0.03, 0.05, 0.1, 0.15), "noise variance before denoising",
              True, _op_denoise_nlm,
              substitute="KADIS denoises with MATLAB's pretrained DnCNN, which grepq cannot ship; grepq uses "
                         "scikit-image's non-local means (grepq.data.distortions.NLM_SETTINGS)"),
    KadisType(16, "brighten", "imbrighten", (0.1, 0.2, 0.4, 0.7, 1.1), "amount", False, _op_brighten),
    KadisType(17, "darken", "imdarken", (0.05, 0.1, 0.2, 0.4, 0.8), "amount", False, _op_darken),
    KadisType(24, "high_sharpen", "imsharpenHi", (1, 2, 3, 6, 12), "unsharp-mask amount (radius 3)", False,
              _op_high_sharpen),
    KadisType(25, "contrast_change", "imcontrastc", (0.3, 0.15, 0.0, -0.4, -0.6), "amount", False,
              _op_contrast_change),
)
_BY_NAME: Dict[str, KadisType] = {t.name: t for t in KADIS_TYPES}
TYPES_BY_ID: Dict[int, KadisType] = {t.id: t for t in KADIS_TYPES}
#: Parameter per level 1 (mildest) .. 5 (strongest), by type name: ``imdist_generator.m``'s table (docs/method.md §6).
DISTORTION_LEVELS: Dict[str, Tuple[float, ...]] = {t.name: t.levels for t in KADIS_TYPES}
#: Level tables of ``legacy=True`` where they differ (grepq before the KADIS check: JPEG 2000 level 5 = 170).
LEGACY_LEVELS: Dict[str, Tuple[float, ...]] = {"jpeg2000": (16, 32, 45, 120, 170)}
DISTORTION_KADIS_IDS: Dict[str, int] = {t.name: t.id for t in KADIS_TYPES}


def kadis_type(key) -> KadisType:
    """The type of a name (``"lens_blur"``) or a KADIS id (``2``); ValueError naming the choices otherwise."""
    found = TYPES_BY_ID.get(key) if isinstance(key, (int, np.integer)) and not isinstance(key, bool) \
        else _BY_NAME.get(key)
    if found is None:
        raise ValueError(f"unknown distortion type {key!r}; available types = {sorted(_BY_NAME)} "
                         f"(KADIS ids {sorted(TYPES_BY_ID)})")
    return found


@dataclass(frozen=True)
class DistortionSpec:
    """One distortion: a type name (a key of ``DISTORTION_LEVELS``), a KADIS level 1..5, ``legacy`` (recipe fixed)."""

    type: str
    level: int
    legacy: bool = False

    def __post_init__(self):
        if self.type not in DISTORTION_LEVELS:
            raise ValueError(f"unknown distortion type {self.type!r}; available types = {sorted(DISTORTION_LEVELS)}")
        n = len(DISTORTION_LEVELS[self.type])
        if isinstance(self.level, bool) or not isinstance(self.level, (int, np.integer)) or not 1 <= self.level <= n:
            raise ValueError(f"distortion level of {self.type!r}: expected an integer in 1..{n}, got {self.level!r}")

    @property
    def kadis(self) -> KadisType:
        """The :class:`KadisType` of this spec."""
        return _BY_NAME[self.type]

    @property
    def value(self) -> float:
        """The generator's parameter at this level (sigma, radius, length, quality, ratio, variance, factor...)."""
        table = LEGACY_LEVELS.get(self.type, DISTORTION_LEVELS[self.type]) if self.legacy \
            else DISTORTION_LEVELS[self.type]
        return table[self.level - 1]

    @property
    def name(self) -> str:
        """``<type>_<level>``, e.g. ``gaussian_blur_2`` (grepq's file-name suffix)."""
        return f"{self.type}_{self.level}"

    @property
    def kadis_name(self) -> str:
        """``<id:02d>_<level:02d>``, e.g. ``01_02`` (KADIS's file-name suffix)."""
        return f"{self.kadis.id:02d}_{self.level:02d}"

    def seed_sequence(self, seed: int) -> np.random.SeedSequence:
        """The random stream of this distortion for a given item seed (stable across processes and platforms)."""
        return np.random.SeedSequence([int(seed), zlib.crc32(self.type.encode("utf-8")), int(self.level)])

    def random_draws(self, seed: int) -> Dict[str, int]:
        """The parameters this spec draws for an item seed, as versions.json records them: motion_blur's
        ``{"angle_deg": a}`` (what :func:`distort_specs` uses), else {} (noise fields are not recorded)."""
        if self.type != "motion_blur":
            return {}
        return {"angle_deg": _motion_angle(np.random.default_rng(self.seed_sequence(seed)))}


def apply_distortion(img: np.ndarray, spec: DistortionSpec, rng: Optional[np.random.Generator] = None, *,
                     range_mode: str = DEFAULT_RANGE_MODE) -> np.ndarray:
    """Apply ``spec`` to ``img`` (H, W, 3) float32 in [0, 1] -> (H, W, 3) float32 in [0, 1].

    With ``range_mode="kadis"`` the input is first min-max stretched (KADIS ``mapmm``), then the result.
    ``rng`` drives the random types (default: the spec's own stream for item seed 0).
    """
    x = _check_image(img)
    if range_mode == "kadis":
        x = _mapmm(x.astype(np.float64)).astype(np.float32)
    if rng is None:
        rng = np.random.default_rng(spec.seed_sequence(0))
    return _finish(spec.kadis.op(x, spec.value, rng, spec.legacy), range_mode)


def _public(type_name: str) -> Callable[..., np.ndarray]:
    kt = _BY_NAME[type_name]

    def distort(img: np.ndarray, value: float, rng: Optional[np.random.Generator] = None, *,
                range_mode: str = "clip", legacy: bool = False) -> np.ndarray:
        x = _check_image(img)
        if kt.random and not isinstance(rng, np.random.Generator):
            raise TypeError(f"{type_name}: expected a numpy.random.Generator, got {type(rng).__name__}")
        return _finish(kt.op(x, value, rng, legacy), range_mode)

    distort.__name__ = distort.__qualname__ = type_name
    distort.__doc__ = (f"KADIS type {kt.id} ({kt.kadis_function}{', substitute' if kt.substitute else ''}): "
                       f"``value`` = {kt.parameter} (levels 1..5: {kt.levels}).\n\n    ``img`` (H, W, 3) float32 "
                       f"in [0, 1] (or uint8) -> (H, W, 3) float32 in [0, 1]; no input stretch; ``range_mode`` "
                       f"'clip' (default) or 'kadis' (stretch the result).\n    "
                       + ("``rng``: a numpy Generator (required)." if kt.random else "``rng`` is unused."))
    return distort


gaussian_blur = _public("gaussian_blur")
lens_blur = _public("lens_blur")
motion_blur = _public("motion_blur")
hsv_saturation = _public("hsv_saturation")
lab_saturation = _public("lab_saturation")
jpeg2000 = _public("jpeg2000")
jpeg = _public("jpeg")
white_noise = _public("white_noise")
white_noise_color_component = _public("white_noise_color_component")
denoise_nlm = _public("denoise_nlm")
brighten = _public("brighten")
darken = _public("darken")
high_sharpen = _public("high_sharpen")
contrast_change = _public("contrast_change")


def distort_specs(image: np.ndarray, specs: Sequence[DistortionSpec], seed: int = 0, *,
                  range_mode: str = DEFAULT_RANGE_MODE) -> List[Tuple[DistortionSpec, np.ndarray]]:
    """Apply each spec to ``image`` (H, W, 3) with its own random stream seeded by (``seed``, type, level).

    Returns ``[(spec, version (H, W, 3) float32 in [0, 1]), ...]`` in the order of ``specs``.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    x = _check_image(image)
    return [(spec, apply_distortion(x, spec, np.random.default_rng(spec.seed_sequence(int(seed))),
                                    range_mode=range_mode)) for spec in specs]


def distortion_stack(image: np.ndarray, types: Sequence[str] = DEFAULT_TYPES,
                     levels: Sequence[int] = DEFAULT_LEVELS, seed: int = 0, *,
                     range_mode: str = DEFAULT_RANGE_MODE, legacy: bool = False) -> List[Tuple[str, np.ndarray]]:
    """Every type x level of ``image`` (H, W, 3) in [0, 1]: ``[("<type>_<level>", version (H, W, 3) float32), ...]``
    by type then level as given, the reference not included; each (type, level) has its own seeded stream."""
    if isinstance(types, str) or isinstance(levels, (str, int)):
        raise TypeError(f"types and levels must be sequences, got types={types!r}, levels={levels!r}")
    if not types or not levels or len(set(types)) != len(types) or len(set(levels)) != len(levels):
        raise ValueError(f"expected at least one type and one level, none repeated, got types={list(types)}, "
                         f"levels={list(levels)}")
    specs = [DistortionSpec(t, int(lv) if isinstance(lv, np.integer) else lv, legacy) for t in types for lv in levels]
    return [(spec.name, out) for spec, out in distort_specs(image, specs, seed, range_mode=range_mode)]
