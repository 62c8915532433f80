"""Scoring constants and :class:`ScoringSettings`, the options of a :class:`grepq.GRepQ` scorer.

Each option is declared once, here (:func:`scoring_keys`): ``grepq score/eval/fit``'s command-line options
(:func:`grepq.commands.score.add_weight_options`) and the eval configuration's ``scoring`` section
(:data:`grepq.eval.schema.EVAL_SCORING`) are made from it. No torch import: the CLI parsers use this module.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, Optional, Tuple

from ..config import Key
from ..models import POS_EMBEDDING_MODES

__all__ = [
    "PATCH_SIZE", "PATCH_STRIDE", "K1", "COV_EPS", "SMALL_IMAGE_MODES", "EXIF_ORIENTATION_MODES", "COMPONENTS",
    "POS_EMBEDDING",
    "SHARPNESS_THRESHOLD", "COLORFULNESS_THRESHOLD", "default_hdf5_name", "ScoringSettings", "scoring_keys",
    "check_device",
]

#: R: the patch size of test-image and pristine patches (paper §4.1; official ``--patch_size`` = 96).
PATCH_SIZE = 96
#: Patch stride R/2, 50 % overlap (official ``unfold(.., ps, int(ps/2))``).
PATCH_STRIDE = 48
#: k1 of Eq. 6 (official ``exp(-score / 100.0)``).
K1 = 0.01
#: Stabiliser added to the pooled covariance (official NIQE ``stabilitiy_scale = 0.001``).
COV_EPS = 1e-3
#: Pristine-patch selection (docs/method.md §4): sharpness factor (official ``--sharpness_param 0.75``) and
#: colourfulness factor (official ``--colorfulness_param 0.80``).
SHARPNESS_THRESHOLD = 0.75
COLORFULNESS_THRESHOLD = 0.80
#: Where the released weights and pristine patches come from (README: "Weights and data").
RELEASED_FILES = ("linked from the official README, https://github.com/suhas-srinath/GRepQ: "
                  "https://drive.google.com/drive/folders/1wLpdN6TNezur_0_NF7XgmBMyWcSxH5eX")
#: Images too small for two patches (the official code crashes): see ``ensure_min_size``.
SMALL_IMAGE_MODES = ("upsample", "error")
#: EXIF orientation of image files: "apply" (scored as displayed; grepq) or "ignore" (stored pixels, as official).
EXIF_ORIENTATION_MODES = ("apply", "ignore")
#: The two zero-shot components: ``ll`` gives Q_L (Eq. 5-6), ``hl`` gives Q_H (Eq. 2).
COMPONENTS = ("ll", "hl")


def _key(default, type_, doc: str, choices=None, source: str = "grepq", **extra) -> Key:
    return Key(list(default) if isinstance(default, tuple) else default, type_, doc, choices, source=source, **extra)


def _option(default, type_, doc: str, choices=None, source: str = "grepq", **extra):
    """A ScoringSettings field that is also a command-line option and an eval ``scoring.`` key."""
    return field(default=default, metadata={"key": _key(default, type_, doc, choices, source, **extra)})


#: How the HL model pools at test time: an option of loading a scorer (``GRepQ.from_files(pos_embedding=)``), not a
#: ScoringSettings field (the built model carries it).
POS_EMBEDDING = _key("drop", str, "CLIP attention-pool positional embedding at test time: 'drop' (official "
                                  "evaluation), 'interpolate' or 'keep' (docs/method.md §4)",
                     POS_EMBEDDING_MODES, source="official")


@dataclass(frozen=True)
class ScoringSettings:
    """How a scorer runs; checked when made (a ValueError names the bad option).

    k1, patch_size, patch_stride, cov_eps: Eq. 6's k1 = 0.01, R = 96, stride 48, 0.001 (docs/method.md §4).
    The other fields are documented by their ``metadata["key"]`` (also the CLI help).
    """

    device: str = _option("cpu", str, "cpu, cuda or cuda:N (where to run; changes no result beyond float rounding)")
    components: Tuple[str, ...] = _option(
        COMPONENTS, list, "scores to compute: ll (Q_L, Eq. 6), hl (Q_H, Eq. 2); GRepQ_Z = Q_H + Q_L needs both "
                          "(paper Eq. 7)", COMPONENTS, source="paper", items=str)
    k1: float = K1
    patch_size: int = PATCH_SIZE
    patch_stride: int = PATCH_STRIDE
    cov_eps: float = COV_EPS
    chunk_size: int = _option(64, int, "LL patches per forward pass (memory; not results)")
    batch_size: Optional[int] = _option(None, int, "consecutive images of one size per forward pass (null or "
                                                   "unset: 1 on CPU, 8 on CUDA; same scores to float32 rounding)",
                                        nullable=True)
    max_batch_pixels: int = _option(4_000_000, int, "pixel budget of one batch")
    decode_workers: int = _option(0, int, "threads decoding the next images while the models run")
    amp: str = _option("off", str, "mixed precision: 'off' = float32, the reference (docs/method.md §4; the official "
                                   "code runs CLIP in fp16 on CUDA); 'bf16'/'fp16' change scores by rounding",
                       ("off", "bf16", "fp16"))
    channels_last: bool = _option(False, bool, "channels_last memory format (same scores to rounding)")
    small_image: str = _option("upsample", str, "images giving fewer than two 96x96 patches: 'upsample' to 144 px "
                                                "short side or 'error' (the paper does not say)", SMALL_IMAGE_MODES)
    exif_orientation: str = _option("apply", str, "EXIF orientation tag of image files: 'apply' (score the photo as "
                                                  "displayed) or 'ignore' (the stored pixels, as the official code)",
                                    EXIF_ORIENTATION_MODES)
    progress: bool = True

    def __post_init__(self):
        comps = (self.components,) if isinstance(self.components, str) else tuple(self.components)
        if not comps or any(c not in COMPONENTS for c in comps):
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {list(comps)}")
        object.__setattr__(self, "components", tuple(c for c in COMPONENTS if c in comps))
        object.__setattr__(self, "device", check_device(str(self.device)))
        if self.small_image not in SMALL_IMAGE_MODES:
            raise ValueError(f"small_image must be one of {SMALL_IMAGE_MODES}, got {self.small_image!r}")
        if self.exif_orientation not in EXIF_ORIENTATION_MODES:
            raise ValueError(f"exif_orientation must be one of {EXIF_ORIENTATION_MODES}, got {self.exif_orientation!r}")
        counts = ("chunk_size", "batch_size", "max_batch_pixels", "patch_size", "patch_stride", "decode_workers")
        if (any(getattr(self, k) is not None and getattr(self, k) < 1 for k in counts[:-1])
                or self.decode_workers < 0 or self.patch_stride > self.patch_size):
            got = ", ".join(f"{k}={getattr(self, k)}" for k in counts)
            raise ValueError(f"need positive counts, decode_workers >= 0 and patch_stride <= patch_size, got {got}")

    def as_dict(self) -> dict:
        return asdict(self)


def scoring_keys() -> Dict[str, Key]:
    """The scorer's options as configuration keys, in CLI order: device, pos_embedding, then the settings fields."""
    keys = {f.name: f.metadata["key"] for f in fields(ScoringSettings) if "key" in f.metadata}
    return {"device": keys.pop("device"), "pos_embedding": POS_EMBEDDING, **keys}


def check_device(device: str) -> str:
    """``device`` if it is cpu, cuda, cuda:N or mps; else a ValueError listing these forms."""
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ValueError(f"device must be cpu, cuda, cuda:N (N: a GPU index) or mps, got {device!r}")
    return device


def default_hdf5_name(patch_size: int = PATCH_SIZE, sharpness_threshold: float = SHARPNESS_THRESHOLD,
                      colorfulness_threshold: float = COLORFULNESS_THRESHOLD) -> str:
    """The official pristine-patch file name, e.g. ``pristine_patches_096_0.75_0.80.hdf5``."""
    return "pristine_patches_%03d_%0.2f_%0.2f.hdf5" % (patch_size, sharpness_threshold, colorfulness_threshold)
