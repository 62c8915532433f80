"""Scoring constants and :class:`ScoringSettings`, the validated options of a :class:`grepq.GRepQ` scorer.

This module imports no torch, so the command-line parsers can use its constants without paying for torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

__all__ = [
    "PATCH_SIZE", "PATCH_STRIDE", "K1", "COV_EPS", "SMALL_IMAGE_MODES", "EXIF_ORIENTATION_MODES", "COMPONENTS",
    "SHARPNESS_THRESHOLD", "COLORFULNESS_THRESHOLD", "default_hdf5_name", "ScoringSettings",
]

#: R: the patch size of the test-image patches and of the pristine patches (paper §3.4; official
#: ``config.patch_size`` and ``--patch_size`` = 96).
PATCH_SIZE = 96
#: Patch stride: R/2, 50 % overlap (official ``unfold(.., ps, int(ps/2))``).
PATCH_STRIDE = 48
#: k1 of Eq. 6 (official ``exp(-score / 100.0)``).
K1 = 0.01
#: Stabiliser added to the pooled covariance (official NIQE ``stabilitiy_scale = 0.001``).
COV_EPS = 1e-3
#: Pristine-patch selection thresholds (method.md §4): sharpness factor (official ``--sharpness_param 0.75``, CL-MI's
#: rule) and colourfulness factor (official ``--colorfulness_param 0.80``).
SHARPNESS_THRESHOLD = 0.75
COLORFULNESS_THRESHOLD = 0.80
#: What to do with an image too small for two patches (the official code crashes): see ``ensure_min_size``.
SMALL_IMAGE_MODES = ("upsample", "error")
#: EXIF orientation of image files: "apply" (scored as displayed; grepq) or "ignore" (stored pixels, as official).
EXIF_ORIENTATION_MODES = ("apply", "ignore")
#: The two zero-shot components: Q_L ("low", Eq. 5-6) and Q_H ("high", Eq. 2).
COMPONENTS = ("low", "high")


def default_hdf5_name(patch_size: int = PATCH_SIZE, sharpness_threshold: float = SHARPNESS_THRESHOLD,
                      colorfulness_threshold: float = COLORFULNESS_THRESHOLD) -> str:
    """The official pristine-patch file name, e.g. ``pristine_patches_096_0.75_0.80.hdf5``."""
    return "pristine_patches_%03d_%0.2f_%0.2f.hdf5" % (patch_size, sharpness_threshold, colorfulness_threshold)


@dataclass(frozen=True)
class ScoringSettings:
    """How a scorer runs; checked when made (a ValueError names the bad option).

    Attributes:
        device: "cpu", "cuda", "cuda:N" (resolved by :func:`grepq.api.resolve_device`).
        components: which of ("low", "high") to compute; q_total needs both.
        k1: Eq. 6's k1 (0.01). ``patch_size``, ``patch_stride``, ``cov_eps``: R = 96, stride 48, 0.001 (method.md §4).
        chunk_size: LL patches per forward pass (memory bound; results do not depend on it beyond float32 rounding).
        batch_size: consecutive images of one size per forward pass (None: 1 on the CPU, 8 on CUDA), at most
            ``max_batch_pixels`` pixels per batch. Scores do not depend on it beyond float32 rounding.
        decode_workers: threads decoding the next images while the models run (0: decode in the caller's thread).
        amp: "off" (float32, the reference), "bf16" or "fp16" (``torch.autocast``; the NIQE statistics and
            Eq. 2 / Eq. 6 stay float32); checked with the device by :func:`grepq.utils.check_amp` when the
            scorer is made.
        channels_last: channels_last memory format for the models and batches (same scores up to rounding).
        small_image: "upsample" or "error" for images giving fewer than two patches.
        progress: show progress bars.
        exif_orientation: "apply" (default) or "ignore" the EXIF orientation tag of image files (grepq.data.io).
    """

    device: str = "cpu"
    components: Tuple[str, ...] = COMPONENTS
    k1: float = K1
    patch_size: int = PATCH_SIZE
    patch_stride: int = PATCH_STRIDE
    cov_eps: float = COV_EPS
    chunk_size: int = 64
    batch_size: Optional[int] = None
    max_batch_pixels: int = 4_000_000
    decode_workers: int = 0
    amp: str = "off"
    channels_last: bool = False
    small_image: str = "upsample"
    progress: bool = True
    exif_orientation: str = "apply"

    def __post_init__(self):
        comps = tuple(self.components) if not isinstance(self.components, str) else (self.components,)
        bad = [c for c in comps if c not in COMPONENTS]
        if bad or not comps:
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {list(comps)}")
        object.__setattr__(self, "components", tuple(c for c in COMPONENTS if c in comps))
        object.__setattr__(self, "device", str(self.device))
        if self.small_image not in SMALL_IMAGE_MODES:
            raise ValueError(f"small_image must be one of {SMALL_IMAGE_MODES}, got {self.small_image!r}")
        if self.exif_orientation not in EXIF_ORIENTATION_MODES:
            raise ValueError(f"exif_orientation must be one of {EXIF_ORIENTATION_MODES}, got {self.exif_orientation!r}")
        if ((self.batch_size is not None and self.batch_size < 1) or self.max_batch_pixels < 1
                or self.decode_workers < 0 or self.chunk_size < 1):
            raise ValueError("batch_size, max_batch_pixels and chunk_size must be positive and decode_workers >= 0, "
                             "got "
                             f"{self.batch_size}, {self.max_batch_pixels}, {self.chunk_size} and {self.decode_workers}")
        if self.patch_size < 1 or not 0 < self.patch_stride <= self.patch_size:
            raise ValueError(f"need patch_size >= 1 and 0 < patch_stride <= patch_size, got {self.patch_size}, "
                             f"{self.patch_stride}")

    def as_dict(self) -> dict:
        return asdict(self)
