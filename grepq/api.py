"""The scoring API: ``GRepQ.from_files(...).score(paths)`` gives Q_L, Q_H and GRepQ_Z = Q_H + Q_L per image (Eq. 7)."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .data.io import ImageReadError, as_image_tensor, expand_inputs, read_image
from .fingerprint import tensors_fingerprint
from .models import high_level as hlm
from .models.high_level import DEFAULT_PROMPTS, K2, HighLevelModel
from .models.low_level import LowLevelModel, load_low_level
from .scoring import zero_shot as zs
from .scoring.batching import prefetch_map, same_size_batches
from .scoring.cache import ConstantsCache
from .scoring.maps import DistanceMap, distance_map
from .scoring.pristine import load_pristine, read_pristine_hdf5
from .scoring.settings import RELEASED_FILES, ScoringSettings
from .utils import autocast_context, check_amp

__all__ = ["GRepQ", "ScoreRow", "ScoringSettings", "resolve_device", "STOCK_CLIP"]

log = logging.getLogger("grepq")

#: ``hl_weights`` value that scores with CLIP's own image encoder (no GRepQ fine-tuning), chosen explicitly.
STOCK_CLIP = "stock-clip"
#: What :meth:`GRepQ.score` accepts (its TypeError lists it).
ACCEPTED_INPUTS = ("a path (str or os.PathLike) to an image file or a folder", "a PIL image",
                   "a numpy array (H, W, 3) or (H, W): uint8, or float in [0, 1]",
                   "a torch tensor (3, H, W) or a batch (N, 3, H, W): uint8, or float in [0, 1]", "a list of these")


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """A torch.device from "cpu", "cuda", "cuda:1", ...; asking for CUDA where there is none is an error."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    return dev


@dataclass
class ScoreRow:
    """One image's zero-shot scores: None for a component not computed; ``error`` names why an image failed;
    ``upsampled``: the image was smaller than two patches (or CLIP's 32 px) and scored upsampled; ``quality_map``:
    with ``maps=True``, the per-patch :class:`DistanceMap` of the features that gave ``q_low``."""

    image: str
    q_low: Optional[float] = None
    q_high: Optional[float] = None
    q_total: Optional[float] = None
    error: Optional[str] = None
    upsampled: bool = False
    quality_map: Optional[DistanceMap] = None

    def as_dict(self) -> dict:
        """The fields but ``quality_map``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "quality_map"}


class GRepQ:
    """Zero-shot GRepQ scorer from built models: ``GRepQ(ll, hl, pristine, settings)``; from files:
    :meth:`from_files`.

    Args:
        ll, hl: :class:`LowLevelModel` (for "ll"), :class:`HighLevelModel` with its prompt embeddings (for "hl").
        pristine: the pristine patches (N, 3, R, R) float32 in [0, 1] of Eq. 5, or a function returning them (called
            only if the pristine statistics are not cached).
        settings: :class:`ScoringSettings` (default: its defaults), read as ``scorer.settings``.
        cache: a :class:`ConstantsCache` for the pristine statistics, or None (computed once per scorer).
        fingerprints: known :meth:`fingerprints` entries (``"ll"``, ``"pristine"``); the others are computed.
    """

    def __init__(self, ll: Optional[LowLevelModel] = None, hl: Optional[HighLevelModel] = None,
                 pristine: Union[torch.Tensor, Callable[[], torch.Tensor], None] = None,
                 settings: Optional[ScoringSettings] = None, *, cache: Optional[ConstantsCache] = None,
                 fingerprints: Optional[Dict[str, str]] = None):
        if not isinstance(ll, (LowLevelModel, type(None))) or not isinstance(hl, (HighLevelModel, type(None))):
            raise TypeError("GRepQ(ll, hl, pristine, settings) takes built models; for weight files use "
                            "GRepQ.from_files(...)")
        settings = ScoringSettings() if settings is None else settings
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.batch_size = settings.batch_size or (8 if self.device.type == "cuda" else 1)
        check_amp(self.device, settings.amp)
        self._memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.cache = cache
        self._fingerprints = dict(fingerprints or {})
        self._pristine_stats: Optional[zs.GaussianStats] = None
        self._pristine = pristine
        self.ll: Optional[LowLevelModel] = None
        self.hl: Optional[HighLevelModel] = None
        if "ll" in self.settings.components:
            if ll is None:
                raise ValueError("the low-level score needs low-level weights (--ll-weights; the released "
                                 f"low_level_model_weights.tar is {RELEASED_FILES}), or leave out the 'll' component")
            if pristine is None:
                raise ValueError("the low-level score needs pristine patches (--pristine FILE.hdf5 or a folder of "
                                 "pristine images; the released pristine_patches_096_0.75_0.80.hdf5 is "
                                 f"{RELEASED_FILES})")
            self.ll = ll.to(self.device, memory_format=self._memory_format).eval()
        if "hl" in self.settings.components:
            if hl is None:
                raise ValueError(
                    f"the high-level score needs high-level weights (--hl-weights FILE; the released "
                    f"high_level_model_weights.pth is {RELEASED_FILES}), or hl_weights='{STOCK_CLIP}' to score with "
                    "CLIP's own image encoder, or leave out the 'hl' component")
            self.hl = hl.to(self.device, memory_format=self._memory_format).eval()

    @classmethod
    def from_files(cls, ll_weights=None, hl_weights=None, clip_weights=None, pristine=None, *,
                   pos_embedding: str = "drop", prompts: Tuple[str, str] = DEFAULT_PROMPTS, k2: float = K2,
                   save_pristine: Optional[Union[str, Path]] = None,
                   cache: Union[bool, str, Path, ConstantsCache, None] = True, **settings) -> "GRepQ":
        """A scorer from weight files (or built models) and :class:`ScoringSettings` keywords.

        Args:
            ll_weights: the official ``.tar``, a grepq checkpoint or a :class:`LowLevelModel`.
            hl_weights: the official ``high_level_model_weights.pth``, a grepq checkpoint, a :class:`HighLevelModel`
                (its ``pos_embedding`` is set), or ``"stock-clip"`` for CLIP's untouched image encoder.
            clip_weights: CLIP for the prompt embeddings (and "stock-clip"): a model name, ``RN50.pt`` or a state dict
                file (default: ``$GREPQ_CLIP_WEIGHTS``, else "RN50" from CLIP's cache).
            pristine: the official HDF5 file, a folder of pristine images, or a (N, 3, R, R) tensor.
            pos_embedding: "drop" (official), "interpolate" or "keep" (docs/method.md §4).
            prompts, k2: Eq. 2's (good, bad) prompts and k2 (paper §3.2, §4.1: "a good photo." / "a bad photo.", 10).
            save_pristine: with a folder as ``pristine``, also write the selected patches to this HDF5 file.
            cache: True: the pristine statistics and prompt embeddings in :func:`default_cache_dir`; a folder or a
                ConstantsCache; False/None: computed in every process. Same bits either way.
        """
        settings = ScoringSettings(**settings)
        store = _as_cache(cache)
        fps: Dict[str, str] = {}
        ll = hl = pristine_source = None  # a missing one the components need: GRepQ() says which
        if "ll" in settings.components and ll_weights is not None:
            ll = _low_level(ll_weights, store, fps)
        if "ll" in settings.components and pristine is not None:
            pristine_source = _pristine_source(pristine, store, fps, save_pristine, settings)
        if "hl" in settings.components and hl_weights is not None:
            hl = _high_level(hl_weights, clip_weights, store, prompts, pos_embedding, k2)
        return cls(ll, hl, pristine_source, settings, cache=store, fingerprints=fps)

    @property
    def pristine_patches(self) -> Optional[torch.Tensor]:
        """The pristine patches (N, 3, R, R) in [0, 1] of Eq. 5 (read on first use), None without the LL model."""
        if self.ll is None:
            return None
        if callable(self._pristine):
            self._pristine = self._pristine()
        return self._pristine

    def fingerprints(self) -> dict:
        """Content fingerprints (:func:`tensors_fingerprint`) of ``ll`` (LL weights), ``hl`` (CLIP image encoder),
        ``clip_text`` (Eq. 2's prompt embeddings) and ``pristine`` (the patches); None for a missing component."""
        fp = {"ll": None, "hl": None, "clip_text": None, "pristine": None}
        if self.ll is not None:
            fp["ll"] = self._fingerprint("ll", lambda: self.ll.state_dict())
            fp["pristine"] = self._fingerprint("pristine", lambda: {"pristine": self.pristine_patches})
        if self.hl is not None:
            fp["hl"] = tensors_fingerprint({k: v for k, v in self.hl.state_dict().items()
                                            if k.startswith("visual.")})
            fp["clip_text"] = tensors_fingerprint({"text_features": self.hl.text_features})
        return fp

    def _fingerprint(self, name: str, tensors: Callable[[], dict]) -> str:
        if name not in self._fingerprints:
            self._fingerprints[name] = tensors_fingerprint(tensors())
        return self._fingerprints[name]

    @property
    def pristine_stats(self) -> zs.GaussianStats:
        """μ_p (1, C) and Σ_p (C, C) of Eq. 5 from the pristine patches' LL features: once per scorer, or once per
        machine with a cache (the same bits)."""
        if self._pristine_stats is None:
            if self.cache is None:
                arrays = self._fit_pristine()
            else:
                arrays = self.cache.get_or_compute("pristine-stats", self._pristine_stats_key(), self._fit_pristine)
            self._pristine_stats = zs.GaussianStats(torch.from_numpy(arrays["mean"]).to(self.device),
                                                    torch.from_numpy(arrays["cov"]).to(self.device),
                                                    int(arrays["count"]))
        return self._pristine_stats

    def _fit_pristine(self) -> Dict[str, np.ndarray]:
        feats = []
        patches = self.pristine_patches
        with torch.no_grad(), autocast_context(self.device, self.settings.amp):
            for sl in range(0, patches.shape[0], self.settings.chunk_size):
                chunk = patches[sl:sl + self.settings.chunk_size].to(self.device, torch.float32)
                feats.append(self.ll(chunk).float())
        stats = zs.fit_gaussian(torch.cat(feats))
        return {"mean": stats.mean.cpu().numpy(), "cov": stats.cov.cpu().numpy(), "count": np.asarray(stats.count)}

    def _pristine_stats_key(self) -> dict:
        """What μ_p and Σ_p depend on, rounding-only settings included (:mod:`grepq.scoring.cache`)."""
        fp = self.fingerprints()
        s = self.settings
        return {"ll": fp["ll"], "pristine": fp["pristine"], "amp": s.amp, "device": self.device.type,
                "chunk_size": s.chunk_size, "channels_last": bool(s.channels_last), "torch": torch.__version__}

    def ll_patch_features(self, imgs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """LL features (N_i, 128) float32 of the patches (R, stride) of images (3, H_i, W_i) in [0, 1], small ones
        upsampled as ``small_image`` says: the features of Q_L."""
        s = self.settings
        imgs = [zs.ensure_min_size(im, s.small_image, s.patch_size, s.patch_stride) for im in imgs]
        with autocast_context(self.device, s.amp):
            feats = zs.ll_patch_features(self.ll, imgs, s.chunk_size, s.patch_size, s.patch_stride)
        return [f.float() for f in feats]

    def _hl_input(self, img: torch.Tensor) -> torch.Tensor:
        if min(img.shape[-2:]) < 32:
            if self.settings.small_image == "error":
                raise ValueError(f"image of {img.shape[-1]}x{img.shape[-2]} pixels is under CLIP's 32 px minimum")
            img = zs.ensure_min_size(img, "upsample", 32, 32)
        return img

    @torch.no_grad()
    def compute(self, imgs: Sequence[torch.Tensor], features: bool = False,
                components: Optional[Sequence[str]] = None, maps: bool = False) -> List[dict]:
        """Zero-shot scores, and with ``features`` the evaluation features, of images that share one size.

        Args:
            imgs: B tensors (3, H, W) float32 in [0, 1], all of one shape (one batch through each model).
            features: also return ``"ll"`` (128,) and ``"hl"`` (E,): the LL model's output and the CLIP embedding of
                the whole image, float32 numpy arrays (docs/method.md §5).
            components: a subset of the scorer's components (default: all of them).
            maps: also return ``"quality_map"``: the :class:`DistanceMap` (CPU) of the patches that give Q_L.
        Returns:
            B dicts with ``"q_low"`` / ``"q_high"`` (Python floats) for the computed components and ``"upsampled"``.
        """
        if not imgs:
            return []
        shapes = {tuple(im.shape) for im in imgs}
        if len(shapes) > 1:
            raise ValueError(f"compute() needs images of one shape, got {sorted(shapes)}")
        components = self.settings.components if components is None else tuple(components)
        missing = [c for c in components if c not in self.settings.components]
        if missing:
            raise ValueError(f"this scorer was built without the {missing} component(s)")
        s = self.settings
        h, w = imgs[0].shape[-2:]
        low_shape = zs.min_size_shape(h, w, s.patch_size, s.patch_stride)
        upsampled = ("ll" in components and low_shape != (h, w)) or ("hl" in components and min(h, w) < 32)
        out: List[dict] = [{"upsampled": bool(upsampled)} for _ in imgs]
        if "ll" in components:
            pristine = self.pristine_stats
            if features:
                whole = torch.stack(list(imgs)).to(self.device).contiguous(memory_format=self._memory_format)
                with autocast_context(self.device, self.settings.amp):
                    ll = self.ll(whole).float().cpu().numpy()
                for row, f in zip(out, ll):
                    row["ll"] = f
            for row, f in zip(out, self.ll_patch_features(imgs)):
                if maps:
                    dm = distance_map(f, zs.patch_grid(*low_shape, s.patch_size, s.patch_stride), pristine, s.cov_eps)
                    row["quality_map"] = DistanceMap(dm.values.cpu(), dm.distance.cpu(), dm.trace_term.cpu())
                    d = dm.distance
                else:
                    d = zs.niqe_distance(pristine, zs.fit_gaussian(f), s.cov_eps)
                row["q_low"] = float(zs.quality_from_distance(d, s.k1))
        if "hl" in components:
            x = torch.stack([self._hl_input(im) for im in imgs]).contiguous(memory_format=self._memory_format)
            with autocast_context(self.device, self.settings.amp):
                e = zs.hl_embeddings(self.hl, x).float()
            for row, q in zip(out, self.hl.quality_from_embedding(e).tolist()):
                row["q_high"] = float(q)
            if features:
                for row, f in zip(out, e.float().cpu().numpy()):
                    row["hl"] = f
        return out

    def iter_computed(self, sources: Sequence, decode, features: bool = False, progress_desc: Optional[str] = None,
                      initial: int = 0, total: Optional[int] = None, progress: Optional[bool] = None,
                      maps: bool = False):
        """``(source, result)`` for every source, in order: a :meth:`compute` dict, or the exception of
        ``decode(source) -> (3, H, W)`` or a ValueError of :meth:`compute` (e.g. ``small_image="error"``).

        Decoding runs ``decode_workers`` threads ahead; consecutive same-size images form batches; a batch out of
        device memory is recomputed one image at a time. A progress bar shows with ``progress_desc`` and ``progress``
        (default: the settings'). ``features``, ``maps``: as :meth:`compute`.
        """
        show = self.settings.progress if progress is None else progress
        bar = tqdm(total=total if total is not None else len(sources) + initial, initial=initial, desc=progress_desc,
                   disable=progress_desc is None or not show, file=sys.stderr)
        try:
            stream = prefetch_map(decode, sources, self.settings.decode_workers)
            for batch in same_size_batches(stream, self.batch_size, self.settings.max_batch_pixels):
                first = batch[0][1]
                if not isinstance(first, torch.Tensor):
                    results = [first]
                else:
                    results = self._compute_batch([img for _, img in batch], features, maps)
                for (src, _), res in zip(batch, results):
                    yield src, res
                bar.update(len(batch))
        finally:
            bar.close()

    def _compute_batch(self, imgs: List[torch.Tensor], features: bool, maps: bool) -> List[object]:
        """:meth:`compute` of one batch; a ValueError becomes every image's result; out of memory: one at a time."""
        try:
            return self.compute(imgs, features, maps=maps)
        except ValueError as exc:
            return [exc] * len(imgs)
        except torch.OutOfMemoryError:
            if len(imgs) == 1:
                raise
            log.warning("out of memory on a batch of %d images of %dx%d; computing them one at a time (lower "
                        "--batch-size or --max-batch-pixels to avoid this)", len(imgs), imgs[0].shape[-1],
                        imgs[0].shape[-2])
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return [r for img in imgs for r in self._compute_batch([img], features, maps)]

    def score_image(self, img, name: str = "<tensor>", maps: bool = False) -> ScoreRow:
        """Scores of one in-memory image (:data:`ACCEPTED_INPUTS`: a (3, H, W) tensor, an array, a PIL image)."""
        return _row(name, self.compute([as_image_tensor(img, name, self.settings.exif_orientation)], maps=maps)[0])

    def score(self, inputs, on_error: str = "raise", progress: Optional[bool] = None,
              maps: bool = False) -> List[ScoreRow]:
        """One :class:`ScoreRow` per image, in input order.

        Args:
            inputs: one of :data:`ACCEPTED_INPUTS` or a list of them; a folder gives its images sorted by name.
                In-memory images are named ``<tensor i>`` (``<tensor i[j]>`` in a batch), ``<array i>``, ``<PIL i>``,
                ``i`` their position in ``inputs``. Float values outside [0, 1] or not finite are a ValueError.
            on_error: ``"raise"`` stops at the first image that cannot be read or scored, ``"record"`` gives it a
                row with ``error``.
            progress: the progress bar (default: the settings').
            maps: give each row its ``quality_map`` (:mod:`grepq.scoring.maps`), from the same forward pass.
        """
        if on_error not in ("raise", "record"):
            raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
        items = []
        for name, x in _named_inputs(inputs):
            if not isinstance(x, (str, os.PathLike)):
                items.append((name, x))
                continue
            images, skipped = expand_inputs([x])
            for p, why in skipped:
                log.warning("skipped %s: %s", p, why)
                if why == "no such file or folder" and on_error == "raise":
                    raise FileNotFoundError(f"{p}: no such file or folder")
                if why == "no such file or folder":
                    items.append((p, ImageReadError(p, why)))
            items.extend((str(p), p) for p in images)
        exif = self.settings.exif_orientation

        def decode(item):
            name, x = item
            if isinstance(x, Exception):
                raise x
            return read_image(x, exif) if isinstance(x, Path) else as_image_tensor(x, name, exif)

        rows: List[ScoreRow] = []
        desc = "scoring" if len(items) >= 2 else None
        for (name, _), res in self.iter_computed(items, decode, progress_desc=desc, progress=progress, maps=maps):
            if isinstance(res, Exception):
                if not isinstance(res, (ImageReadError, ValueError)):
                    raise res
                msg = str(res) if name in str(res) else f"{name}: {res}"
                if on_error == "raise" and msg == str(res):
                    raise res
                if on_error == "raise":
                    raise ValueError(msg) from res
                rows.append(ScoreRow(name, error=msg))
            else:
                rows.append(_row(name, res))
        return rows

    def __call__(self, inputs, **kwargs) -> List[ScoreRow]:
        """``scorer(x)`` is ``scorer.score(x)``."""
        return self.score(inputs, **kwargs)


def _named_inputs(inputs) -> List[Tuple[str, object]]:
    """(name, input) of every input: paths as given; in-memory images named by kind and position; a TypeError for
    anything not in :data:`ACCEPTED_INPUTS`."""
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    out: List[Tuple[str, object]] = []
    for i, x in enumerate(inputs):
        if isinstance(x, (str, os.PathLike)):
            out.append((str(x), x))
        elif isinstance(x, torch.Tensor) and x.dim() == 4:
            out.extend((f"<tensor {i}[{j}]>", x[j]) for j in range(x.shape[0]))
        elif isinstance(x, (torch.Tensor, np.ndarray, Image.Image)):
            kind = "tensor" if isinstance(x, torch.Tensor) else "array" if isinstance(x, np.ndarray) else "PIL"
            out.append((f"<{kind} {i}>", x))
        else:
            raise TypeError(f"cannot score input {i} of type {type(x).__name__}; GRepQ.score accepts "
                            + "; ".join(ACCEPTED_INPUTS))
    return out


def _row(name: str, res: dict) -> ScoreRow:
    q_low, q_high = res.get("q_low"), res.get("q_high")
    return ScoreRow(name, q_low, q_high, zs.total_quality(q_low, q_high), upsampled=res["upsampled"],
                    quality_map=res.get("quality_map"))


def _as_cache(cache) -> Optional[ConstantsCache]:
    if cache is None or cache is False:
        return None
    if cache is True:
        return ConstantsCache()
    return cache if isinstance(cache, ConstantsCache) else ConstantsCache(cache)


def _low_level(source, store: Optional[ConstantsCache], fps: Dict[str, str]) -> LowLevelModel:
    """The LL model of ``source`` (a model or a weights file); the file's content fingerprint goes into ``fps``."""
    if isinstance(source, LowLevelModel):
        return source
    model, report = load_low_level(source)
    log.info("low-level weights: %s", report)
    if store is not None:
        fps["ll"] = store.file_fingerprint(source, "ll", lambda: tensors_fingerprint(model.state_dict()))
    return model


def _pristine_source(source, store: Optional[ConstantsCache], fps: Dict[str, str], save_to,
                     settings: ScoringSettings) -> Union[torch.Tensor, Callable[[], torch.Tensor]]:
    """Pristine patches (a tensor), or for an HDF5 file with a cache a function reading them on first use (with
    the statistics cached, the file is then never read: its fingerprint is remembered by size and date)."""
    if isinstance(source, torch.Tensor):
        return source
    path = Path(source)
    if path.is_dir() or store is None:
        return load_pristine(path, save_to, settings.progress, settings.patch_size, settings.exif_orientation)
    if not path.is_file():
        raise FileNotFoundError(f"pristine patch file not found: {path}")
    read = _once(lambda: read_pristine_hdf5(path))
    fps["pristine"] = store.file_fingerprint(path, "pristine", lambda: tensors_fingerprint({"pristine": read()}))
    return read


def _once(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    done: List[torch.Tensor] = []
    return lambda: done[0] if done else (done.append(fn()) or done[0])


def _high_level(source, clip_weights, store: Optional[ConstantsCache], prompts, pos_embedding: str,
                k2: float) -> HighLevelModel:
    """The HL model: CLIP's image encoder from the HL weights (or CLIP's own with "stock-clip") and the prompt
    embeddings, cached when ``store`` is given; the text transformer is built only to compute them."""
    if isinstance(source, HighLevelModel):
        source.pos_embedding = pos_embedding
        return source
    clip_path = hlm.resolve_clip_file(clip_weights)
    clip_sd = _once(lambda: hlm.clip_state_dict(clip_path))
    text = _prompt_embeddings(clip_path, clip_sd, prompts, store)
    if source == STOCK_CLIP:
        visual = hlm.build_visual(clip_sd(), source=str(clip_path))
    else:
        weights = hlm.load_hl_visual_weights(source)
        hlm.check_hl_keys(weights, str(source))
        visual = hlm.build_visual(weights, source=str(source))
    return HighLevelModel(prompts=prompts, pos_embedding=pos_embedding, k2=k2, visual=visual, text_features=text)


def _prompt_embeddings(clip_path: Path, clip_sd: Callable[[], dict], prompts,
                       store: Optional[ConstantsCache]) -> torch.Tensor:
    """The (2, E) float32 prompt embeddings by CLIP's text encoder, from the cache when it holds them."""
    def compute() -> Dict[str, np.ndarray]:
        return {"text_features": hlm.text_embeddings(hlm.build_clip(clip_sd()), prompts).numpy()}

    if store is None:
        return torch.from_numpy(compute()["text_features"])
    fp = store.file_fingerprint(clip_path, "clip-text", lambda: hlm.clip_text_fingerprint(clip_sd()))
    parts = {"clip_text": fp, "prompts": list(prompts), "torch": torch.__version__}
    return torch.from_numpy(store.get_or_compute("prompt-embeddings", parts, compute)["text_features"])
