"""The scoring API: ``GRepQ(...).score(paths_or_tensors)`` gives Q_L, Q_H and GRepQ_Z = Q_H + Q_L per image (Eq. 7)."""
from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch
from tqdm import tqdm

from .batching import prefetch_map, same_size_batches
from .eval import zero_shot as zs
from .eval.pristine import load_pristine
from .fingerprint import tensors_fingerprint
from .io import ImageReadError, expand_inputs, read_image
from .models.high_level import DEFAULT_PROMPTS, HighLevelModel, load_clip, load_hl_visual_weights
from .models.low_level import LowLevelModel, load_low_level
from .utils import autocast_context, check_amp

__all__ = ["GRepQ", "ScoreRow", "resolve_device", "STOCK_CLIP"]

log = logging.getLogger("grepq")

#: ``hl_weights`` value that scores with CLIP's own image encoder (no GRepQ fine-tuning), chosen explicitly.
STOCK_CLIP = "stock-clip"
COMPONENTS = ("low", "high")


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """A torch.device from "cpu", "cuda", "cuda:1", ...; asking for CUDA where there is none is an error."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    return dev


@dataclass
class ScoreRow:
    """One image's zero-shot scores. A component not computed is None; ``error`` names why an image failed."""

    image: str
    q_low: Optional[float] = None
    q_high: Optional[float] = None
    q_total: Optional[float] = None
    error: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


class GRepQ:
    """Zero-shot GRepQ scorer.

    Args:
        ll_weights: low-level weights (the official ``.tar``, a grepq checkpoint) or a :class:`LowLevelModel`.
        hl_weights: high-level weights (the official ``high_level_model_weights.pth``, a grepq checkpoint), a
            :class:`HighLevelModel`, or ``"stock-clip"`` to score with CLIP's untouched image encoder.
        clip_weights: CLIP weights for the text encoder and architecture: a model name, ``RN50.pt`` or a state dict
            file (default: ``$GREPQ_CLIP_WEIGHTS``, else "RN50" from CLIP's cache).
        pristine: pristine patches: the official HDF5 file, a folder of pristine images, or a (N, 3, R, R) tensor.
        device: "cpu", "cuda", "cuda:N".
        pos_embedding: "drop" (official), "interpolate" or "keep" (SPEC §4).
        prompts: the (good, bad) prompts of Eq. 2.
        components: which of ("low", "high") to compute; q_total needs both.
        k1, k2: Eq. 6 and Eq. 2 constants (0.01 and 10, paper and official code).
        patch_size, patch_stride, cov_eps: R = 96, stride 48, covariance stabiliser 0.001 (official code).
        chunk_size: LL patches per forward pass (memory bound; results do not depend on it beyond float32 rounding).
        batch_size: consecutive images of one size scored in one forward pass (default 1 on the CPU, where batching
            gains nothing measurable, 8 on CUDA); at most ``max_batch_pixels`` pixels per batch. Scores do not
            depend on it beyond float32 rounding (tested: 1e-5).
        decode_workers: threads decoding the next images while the models run (0: decode in the caller's thread).
        amp: "off" (float32, the reference and default), "bf16" or "fp16": the models run under ``torch.autocast``
            (faster on recent GPUs; scores differ from float32 by the lower precision's rounding). The NIQE statistics
            and Eq. 2 / Eq. 6 are computed in float32 from the features.
        channels_last: keep the models (and whole-image batches) in channels_last memory format (faster convolutions
            on recent GPUs; the same scores up to float32 rounding).
        small_image: "upsample" or "error" for images giving fewer than two patches (:func:`ensure_min_size`).
        save_pristine: when ``pristine`` is a folder, also write the selected patches to this HDF5 file.
    """

    def __init__(
        self,
        ll_weights=None,
        hl_weights=None,
        clip_weights=None,
        pristine=None,
        device: Union[str, torch.device] = "cpu",
        pos_embedding: str = "drop",
        prompts: Tuple[str, str] = DEFAULT_PROMPTS,
        components: Sequence[str] = COMPONENTS,
        k1: float = zs.K1,
        k2: float = 10.0,
        patch_size: int = zs.PATCH_SIZE,
        patch_stride: int = zs.PATCH_STRIDE,
        cov_eps: float = zs.COV_EPS,
        chunk_size: int = 64,
        batch_size: Optional[int] = None,
        max_batch_pixels: int = 4_000_000,
        decode_workers: int = 0,
        amp: str = "off",
        channels_last: bool = False,
        small_image: str = "upsample",
        save_pristine: Optional[Union[str, Path]] = None,
        progress: bool = True,
    ):
        bad = [c for c in components if c not in COMPONENTS]
        if bad or not components:
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {list(components)}")
        if small_image not in zs.SMALL_IMAGE_MODES:
            raise ValueError(f"small_image must be one of {zs.SMALL_IMAGE_MODES}, got {small_image!r}")
        self.device = resolve_device(device)
        self.components = tuple(c for c in COMPONENTS if c in components)
        self.k1, self.patch_size, self.patch_stride, self.cov_eps = k1, patch_size, patch_stride, cov_eps
        self.chunk_size, self.small_image, self.progress = chunk_size, small_image, progress
        if batch_size is None:
            batch_size = 8 if self.device.type == "cuda" else 1
        if batch_size < 1 or max_batch_pixels < 1 or decode_workers < 0 or chunk_size < 1:
            raise ValueError("batch_size, max_batch_pixels and chunk_size must be positive and decode_workers >= 0, got "
                             f"{batch_size}, {max_batch_pixels}, {chunk_size} and {decode_workers}")
        self.batch_size, self.max_batch_pixels, self.decode_workers = int(batch_size), int(max_batch_pixels), int(decode_workers)
        check_amp(self.device, amp)
        self.amp, self.channels_last = amp, bool(channels_last)
        self._memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.ll: Optional[LowLevelModel] = None
        self.hl: Optional[HighLevelModel] = None
        self._pristine_stats: Optional[zs.GaussianStats] = None
        if "low" in self.components:
            if ll_weights is None:
                raise ValueError("the low-level score needs low-level weights (--ll-weights), or leave out the 'low' component")
            if pristine is None:
                raise ValueError("the low-level score needs pristine patches (--pristine FILE.hdf5 or a folder of pristine images)")
            if isinstance(ll_weights, LowLevelModel):
                self.ll = ll_weights
            else:
                self.ll, report = load_low_level(ll_weights)
                log.info("low-level weights: %s", report)
            self.ll = self.ll.to(self.device, memory_format=self._memory_format).eval()
            if isinstance(pristine, torch.Tensor):
                self._pristine_patches = pristine
            else:
                self._pristine_patches = load_pristine(pristine, save_to=save_pristine, progress=progress, patch_size=patch_size)
        if "high" in self.components:
            if hl_weights is None:
                raise ValueError(
                    f"the high-level score needs high-level weights (--hl-weights FILE), or hl_weights='{STOCK_CLIP}' "
                    "to score with CLIP's own image encoder, or leave out the 'high' component"
                )
            if isinstance(hl_weights, HighLevelModel):
                self.hl = hl_weights
                self.hl.pos_embedding = pos_embedding
            else:
                clip_model = load_clip(clip_weights)
                self.hl = HighLevelModel(clip_model, prompts=prompts, pos_embedding=pos_embedding, k2=k2)
                if hl_weights != STOCK_CLIP:
                    self.hl.load_visual(load_hl_visual_weights(hl_weights), source=str(hl_weights))
                del clip_model
            self.hl = self.hl.to(self.device, memory_format=self._memory_format).eval()

    # ------------------------------------------------------------------------------------------------------
    @property
    def pristine_patches(self) -> Optional[torch.Tensor]:
        """The pristine patches (N, 3, R, R) in [0, 1] of Eq. 5, or None when the scorer has no low-level part."""
        return getattr(self, "_pristine_patches", None)

    def fingerprints(self) -> dict:
        """Content fingerprints (:func:`grepq.fingerprint.tensors_fingerprint`) of what the scores and features
        depend on: ``ll`` (LL weights), ``hl`` (CLIP image encoder, without the training-only head),
        ``clip_text`` (the prompt embeddings of Eq. 2: all Q_H uses of CLIP's text encoder) and ``pristine``
        (the pristine patches). A component the scorer was built without has None."""
        fp = {"ll": None, "hl": None, "clip_text": None, "pristine": None}
        if self.ll is not None:
            fp["ll"] = tensors_fingerprint(self.ll.state_dict())
            fp["pristine"] = tensors_fingerprint({"pristine": self.pristine_patches})
        if self.hl is not None:
            fp["hl"] = tensors_fingerprint({k: v for k, v in self.hl.state_dict().items()
                                            if k.startswith("visual.")})
            fp["clip_text"] = tensors_fingerprint({"text_features": self.hl.text_features})
        return fp

    @property
    def pristine_stats(self) -> zs.GaussianStats:
        """Mean and covariance of the LL features of the pristine patches, computed once per scorer."""
        if self._pristine_stats is None:
            feats = []
            with torch.no_grad(), autocast_context(self.device, self.amp):
                for sl in range(0, self._pristine_patches.shape[0], self.chunk_size):
                    chunk = self._pristine_patches[sl:sl + self.chunk_size].to(self.device, torch.float32)
                    feats.append(self.ll(chunk).float())
            self._pristine_stats = zs.fit_gaussian(torch.cat(feats))
        return self._pristine_stats

    def ll_patch_features(self, img: torch.Tensor) -> torch.Tensor:
        """LL features (N, 128) of all R x R patches (stride R/2) of an image (3, H, W) in [0, 1]."""
        img = zs.ensure_min_size(img, self.small_image, self.patch_size, self.patch_stride)
        with autocast_context(self.device, self.amp):
            return zs.ll_patch_features(self.ll, img, self.chunk_size, self.patch_size, self.patch_stride).float()

    def q_low(self, img: torch.Tensor) -> float:
        """Q_L (Eq. 5-6) of one image (3, H, W) in [0, 1]."""
        return self.compute([img], components=("low",))[0]["q_low"]

    def _hl_input(self, img: torch.Tensor) -> torch.Tensor:
        if min(img.shape[-2:]) < 32:
            if self.small_image == "error":
                raise ValueError(f"image of {img.shape[-1]}x{img.shape[-2]} pixels is under CLIP's 32 px minimum")
            img = zs.ensure_min_size(img, "upsample", 32, 32)
        return img

    def q_high(self, img: torch.Tensor) -> float:
        """Q_H (Eq. 2) of one image (3, H, W) in [0, 1], at its own resolution."""
        return self.compute([img], components=("high",))[0]["q_high"]

    @torch.no_grad()
    def compute(self, imgs: Sequence[torch.Tensor], features: bool = False,
                components: Optional[Sequence[str]] = None) -> List[dict]:
        """Zero-shot scores, and with ``features`` the evaluation features, of images that share one size.

        Args:
            imgs: B tensors (3, H, W) float32 in [0, 1], all of one shape (one batch through each model).
            features: also return ``"ll"`` (128,) — the LL model on the whole image — and ``"hl"`` (E,) — the CLIP
                embedding of the whole image — as float32 numpy arrays (SPEC §5).
            components: a subset of the scorer's components (default: all of them).
        Returns:
            B dicts with ``"q_low"`` / ``"q_high"`` (Python floats) for the computed components.
        """
        if not imgs:
            return []
        shapes = {tuple(im.shape) for im in imgs}
        if len(shapes) > 1:
            raise ValueError(f"compute() needs images of one shape, got {sorted(shapes)}")
        components = self.components if components is None else tuple(components)
        missing = [c for c in components if c not in self.components]
        if missing:
            raise ValueError(f"this scorer was built without the {missing} component(s)")
        out: List[dict] = [{} for _ in imgs]
        if "low" in components:
            pristine = self.pristine_stats
            with autocast_context(self.device, self.amp):
                if features:
                    whole = torch.stack(list(imgs)).to(self.device).contiguous(memory_format=self._memory_format)
                    ll = self.ll(whole).float().cpu().numpy()
                    for row, f in zip(out, ll):
                        row["ll"] = f
                prepped = [zs.ensure_min_size(im, self.small_image, self.patch_size, self.patch_stride) for im in imgs]
                patch_feats = zs.ll_patch_features_many(self.ll, prepped, self.chunk_size, self.patch_size,
                                                        self.patch_stride)
            for row, f in zip(out, patch_feats):
                d = zs.niqe_distance(pristine, zs.fit_gaussian(f.float()), self.cov_eps)
                row["q_low"] = float(zs.quality_from_distance(d, self.k1))
        if "high" in components:
            x = torch.stack([self._hl_input(im) for im in imgs]).contiguous(memory_format=self._memory_format)
            with autocast_context(self.device, self.amp):
                e = zs.hl_embeddings(self.hl, x).float()
            for row, q in zip(out, self.hl.quality_from_embedding(e).tolist()):
                row["q_high"] = float(q)
            if features:
                for row, f in zip(out, e.float().cpu().numpy()):
                    row["hl"] = f
        return out

    def iter_computed(self, sources: Sequence, decode, features: bool = False, progress_desc: Optional[str] = None,
                      initial: int = 0, total: Optional[int] = None, progress: Optional[bool] = None):
        """``(source, result)`` for every source, in order: ``result`` is a :meth:`compute` dict, or the exception
        (an :class:`ImageReadError` from ``decode(source) -> (3, H, W)``, or a ValueError such as an image too small
        with ``small_image="error"``) that stopped this source; other exceptions propagate.

        Decoding runs ``decode_workers`` threads ahead; consecutive images of one size go through the models together
        (``batch_size``, ``max_batch_pixels``). A batch that runs out of device memory is computed again one image at
        a time (only a single image running out of memory propagates). The progress bar shows when ``progress_desc``
        is given and ``progress`` (default: the scorer's ``progress``) is true.
        """
        show = self.progress if progress is None else progress
        bar = tqdm(total=total if total is not None else len(sources) + initial, initial=initial, desc=progress_desc,
                   disable=progress_desc is None or not show, file=sys.stderr)
        try:
            stream = prefetch_map(decode, sources, self.decode_workers)
            for batch in same_size_batches(stream, self.batch_size, self.max_batch_pixels):
                first = batch[0][1]
                if not isinstance(first, torch.Tensor):
                    results = [first]
                else:
                    results = self._compute_batch([img for _, img in batch], features)
                for (src, _), res in zip(batch, results):
                    yield src, res
                bar.update(len(batch))
        finally:
            bar.close()

    def _compute_batch(self, imgs: List[torch.Tensor], features: bool) -> List[object]:
        """:meth:`compute` of one batch; a ValueError becomes every image's result; out of memory: one at a time."""
        try:
            return self.compute(imgs, features)
        except ValueError as exc:
            return [exc] * len(imgs)
        except torch.OutOfMemoryError:
            if len(imgs) == 1:
                raise
            log.warning("out of memory on a batch of %d images of %dx%d; computing them one at a time (lower "
                        "--batch-size or --max-batch-pixels to avoid this)", len(imgs), imgs[0].shape[-1], imgs[0].shape[-2])
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return [r for img in imgs for r in self._compute_batch([img], features)]

    def score_image(self, img: torch.Tensor, name: str = "<tensor>") -> ScoreRow:
        """Scores of one image tensor (3, H, W) in [0, 1]."""
        _check_tensor(img, name)
        return _row(name, self.compute([img])[0])

    def score(self, inputs: Union[str, Path, torch.Tensor, Sequence], on_error: str = "raise") -> List[ScoreRow]:
        """Score images given as file paths, folders (their images, sorted) or (3, H, W) tensors.

        ``on_error="raise"`` stops at the first unreadable image (an :class:`ImageReadError` naming it);
        ``"record"`` keeps going and returns a row with ``error`` set for it. Non-image files and empty folders
        found while expanding folders are logged as warnings. Rows come in the order of the inputs.
        """
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        if isinstance(inputs, (str, Path, torch.Tensor)):
            inputs = [inputs]
        items: List[Tuple[str, object]] = []
        for i, x in enumerate(inputs):
            if isinstance(x, torch.Tensor):
                items.append((f"tensor[{i}]", x))
            else:
                images, skipped = expand_inputs([x])
                for p, why in skipped:
                    log.warning("skipped %s: %s", p, why)
                    if why == "no such file or folder":
                        if on_error == "raise":
                            raise FileNotFoundError(f"{p}: no such file or folder")
                        items.append((p, ImageReadError(p, why)))
                items.extend((str(p), p) for p in images)

        def decode(item):
            name, x = item
            if isinstance(x, Exception):
                raise x
            if isinstance(x, torch.Tensor):
                _check_tensor(x, name)
                return x
            return read_image(x)

        rows: List[ScoreRow] = []
        desc = "scoring" if len(items) >= 2 else None
        for (name, _), res in self.iter_computed(items, decode, progress_desc=desc):
            if isinstance(res, Exception):
                if not isinstance(res, (ImageReadError, ValueError)):
                    raise res
                msg = str(res) if name in str(res) else f"{name}: {res}"
                if on_error == "raise":
                    if isinstance(res, ImageReadError) or msg == str(res):
                        raise res
                    raise ValueError(msg) from res
                rows.append(ScoreRow(name, error=msg))
            else:
                rows.append(_row(name, res))
        return rows


def _check_tensor(img: torch.Tensor, name: str) -> None:
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"{name}: expected an image tensor of shape (3, H, W), got {tuple(img.shape)}")
    if img.dtype != torch.float32:
        raise ValueError(f"{name}: expected float32 values in [0, 1], got {img.dtype}")


def _row(name: str, res: dict) -> ScoreRow:
    row = ScoreRow(name, q_low=res.get("q_low"), q_high=res.get("q_high"))
    if row.q_low is not None and row.q_high is not None:
        row.q_total = row.q_high + row.q_low
    return row
