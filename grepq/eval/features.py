"""Per-image features for evaluation, extracted once into a resumable cache (docs/method.md §5).

For each image, one decode gives everything the protocols need:

- ``hl``: CLIP image-encoder output on the whole image (E = 1024 for RN50; CLIP normalisation, no resize or crop);
- ``ll``: LL model output (head, 128) on the whole image (ResNet's global pooling), as the official
  ``get_concatenated_features.py``;
- ``q_low`` / ``q_high``: the zero-shot scores of Eq. 6 and Eq. 2 (``q_total = q_low + q_high``).

Images are decoded ahead in threads and consecutive images of one size go through the models as one batch
(the scorer's ``decode_workers``, ``batch_size`` and ``max_batch_pixels``: :meth:`grepq.GRepQ.iter_computed`).

The cache lives in ``<cache_dir>/<name>-<key>/``: ``meta.json`` (what the key was made of) and ``part-*.npz`` files
written atomically every ``save_every`` images, so a killed extraction resumes where it stopped and nothing is
computed twice. The key hashes the weights (tensor values), the pristine patches, the settings and the image list.

Several processes can fill one cache folder at once, each its own :class:`grepq.parallel.Shard` of the images
(``grepq eval --shard I/N`` or torchrun): the key does not depend on the shard, and a shard's part and temporary
file names carry its tag (``part-s<i>of<n>-...``), so writers never collide and a shard only clears its own
leftover temporary files. An extraction without a shard reads every part, whoever wrote it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..data.io import ImageReadError, read_image
from ..fingerprint import digest_tensors as _digest_tensors
from ..parallel import Shard
from ..scoring.zero_shot import total_quality
from ..version import __version__

__all__ = ["FeatureSet", "extract_features", "cache_key", "FEATURE_FORMAT"]

#: Bumped when what is stored changes, so old caches are not reused.
FEATURE_FORMAT = 1
#: Images per cache part file when ``extract_features`` is not given ``save_every`` (``grepq eval --cache-every N``
#: passes another). Smaller: less lost to a kill, more files.
DEFAULT_SAVE_EVERY = 50


@dataclass
class FeatureSet:
    """Features of N images. Arrays of a component that was not computed are None."""

    names: List[str]
    hl: Optional[np.ndarray] = None      # (N, E) float32
    ll: Optional[np.ndarray] = None      # (N, 128) float32
    q_low: Optional[np.ndarray] = None   # (N,) float64
    q_high: Optional[np.ndarray] = None  # (N,) float64
    cache_dir: Optional[Path] = None
    failed: List[Tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def q_total(self) -> Optional[np.ndarray]:
        return total_quality(self.q_low, self.q_high)

    def matrix(self, which: str = "hl+ll") -> np.ndarray:
        """Regression features: "hl" (N, E), "ll" (N, 128) or "hl+ll" (N, E + 128) = [HL | LL] as docs/method.md §5."""
        parts = {"hl": [self.hl], "ll": [self.ll], "hl+ll": [self.hl, self.ll]}
        if which not in parts:
            raise ValueError(f"feature set must be one of {list(parts)}, got {which!r}")
        if any(p is None for p in parts[which]):
            raise ValueError(f"feature set {which!r} needs components that were not extracted")
        return np.concatenate(parts[which], axis=1)


def cache_key(scorer, paths: Sequence[Union[str, Path]],
              resize: Optional[Dict[str, Tuple[int, int]]] = None) -> Tuple[str, dict]:
    """A hash of everything the features depend on, and the readable parts of it."""
    h = hashlib.sha256()
    s = scorer.settings
    info = {
        "grepq": __version__, "format": FEATURE_FORMAT, "components": list(s.components),
        "patch_size": s.patch_size, "patch_stride": s.patch_stride, "k1": s.k1,
        "cov_eps": s.cov_eps, "small_image": s.small_image, "n_images": len(paths),
        "amp": s.amp, "channels_last": bool(s.channels_last), "exif_orientation": s.exif_orientation,
        "resize": {str(k): list(v) for k, v in sorted((resize or {}).items())},
    }
    if scorer.hl is not None:
        info.update(pos_embedding=scorer.hl.pos_embedding, prompts=list(scorer.hl.prompts), k2=scorer.hl.k2)
    h.update(json.dumps(info, sort_keys=True).encode())
    if scorer.ll is not None:
        _digest_tensors(h, scorer.ll.state_dict())
        _digest_tensors(h, {"pristine": scorer.pristine_patches})
    if scorer.hl is not None:
        _digest_tensors(h, {k: v for k, v in scorer.hl.state_dict().items() if not k.startswith("head.")})
    for p in paths:
        h.update(str(p).encode() + b"\0")
    return h.hexdigest()[:20], info


def _load_parts(folder: Path, wanted: range) -> Dict[int, dict]:
    """Rows {index: {component: value}} of the cache's part files whose index is in ``wanted``."""
    done: Dict[int, dict] = {}
    for part in sorted(folder.glob("part-*.npz")):
        with np.load(part, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        for j, idx in enumerate(arrays["index"].tolist()):
            if idx in wanted:
                done[idx] = {k: arrays[k][j] for k in arrays if k != "index"}
    return done


def _shard_tag(shard: Optional[Shard]) -> str:
    """"" without a shard (the names of single-process caches), else ``s<i>of<n>-``."""
    return "" if shard is None else f"s{shard.index}of{shard.count}-"


def _save_part(folder: Path, rows: Dict[int, dict], tag: str = "") -> None:
    if not rows:
        return
    idx = sorted(rows)
    arrays = {"index": np.asarray(idx, dtype=np.int64)}
    for k in rows[idx[0]]:
        arrays[k] = np.stack([np.asarray(rows[i][k]) for i in idx])
    n = len(list(folder.glob(f"part-{tag}*.npz")))
    final = folder / f"part-{tag}{n:05d}-{idx[0]:07d}.npz"
    tmp = folder / f".tmp-{tag}{os.getpid()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, final)


def _open_cache(folder: Path, info: dict, paths: List[str], tag: str) -> None:
    """Create the cache folder and its meta.json (atomically: shards may start together); remove the temporary
    files a killed run of this shard (or, without a shard, of a single process) left."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.exists():
        tmp = folder / f".meta-{tag}{os.getpid()}.tmp"
        tmp.write_text(json.dumps(dict(info, names=paths), indent=1))
        os.replace(tmp, meta)
    own = re.compile(re.escape(f".tmp-{tag}") + r"\d+\.npz$")
    for stale in folder.glob(".tmp-*"):
        if own.match(stale.name):
            stale.unlink(missing_ok=True)


def extract_features(
    scorer,
    paths: Sequence[Union[str, Path]],
    cache_dir: Optional[Union[str, Path]] = None,
    name: str = "images",
    resize: Optional[Dict[str, Tuple[int, int]]] = None,
    save_every: Optional[int] = None,
    progress: bool = True,
    on_error: str = "raise",
    shard: Optional[Shard] = None,
) -> FeatureSet:
    """HL/LL features and zero-shot scores of every image, cached and resumable.

    Args:
        scorer: a :class:`grepq.GRepQ` (its models, pristine statistics and settings are used).
        paths: image files, in the order of the returned arrays.
        cache_dir: where to keep the cache (None: no cache).
        name: a label for the cache folder (e.g. the dataset name).
        resize: optional ``{path: (h, w)}`` of images to resize (bilinear, antialiased) after decoding, e.g. the two
            CLIVE images the official code resizes to 500x500.
        save_every: write a cache part file every this many images (default :data:`DEFAULT_SAVE_EVERY`).
        on_error: "raise" at the first image that cannot be read or scored (e.g. too small with
            ``small_image="error"``), or "record" it in ``failed`` with the reason (its rows are NaN).
        shard: compute only this share of ``paths`` (:meth:`grepq.parallel.Shard.share`) into the cache, whose key
            is that of all ``paths``; the returned set holds the share's images only, in order.
    """
    save_every = DEFAULT_SAVE_EVERY if save_every is None else int(save_every)
    if save_every < 1:
        raise ValueError(f"save_every must be a positive number of images, got {save_every}")
    paths = [str(p) for p in paths]
    resize = {str(k): v for k, v in (resize or {}).items()}
    share = range(len(paths)) if shard is None else shard.share(len(paths))
    tag = _shard_tag(shard)
    folder: Optional[Path] = None
    done: Dict[int, dict] = {}
    if cache_dir is not None:
        key, info = cache_key(scorer, paths, resize)
        folder = Path(cache_dir) / f"{name}-{key}"
        _open_cache(folder, info, paths, tag)
        done = _load_parts(folder, share)
    todo = [i for i in share if i not in done]
    pending: Dict[int, dict] = {}
    failed: List[Tuple[str, str]] = []

    def decode(i: int) -> torch.Tensor:
        img = read_image(paths[i], scorer.settings.exif_orientation)
        if paths[i] in resize:
            img = F.interpolate(img[None], size=tuple(resize[paths[i]]), mode="bilinear", align_corners=False,
                                antialias=True)[0]
        return img

    desc = f"features {name}" + ("" if shard is None else f" [shard {shard}]")
    for i, res in scorer.iter_computed(todo, decode, features=True, progress_desc=desc,
                                       initial=len(done), total=len(share), progress=progress):
        if isinstance(res, Exception):
            if not isinstance(res, (ImageReadError, ValueError)):
                raise res
            if on_error == "raise":
                if isinstance(res, ImageReadError):
                    raise res
                raise ValueError(f"{paths[i]}: {res}") from res
            failed.append((paths[i], res.reason if isinstance(res, ImageReadError) else str(res)))
            continue
        pending[i] = {k: (np.float64(v) if k.startswith("q_") else v) for k, v in res.items()}
        if folder is not None and len(pending) >= save_every:
            _save_part(folder, pending, tag)
            done.update(pending)
            pending = {}
    if folder is not None:
        _save_part(folder, pending, tag)
    done.update(pending)
    return _feature_set([paths[i] for i in share], {i - share.start: row for i, row in done.items()}, folder, failed)


def _feature_set(names: List[str], rows: Dict[int, dict], folder: Optional[Path], failed) -> FeatureSet:
    """A FeatureSet of ``names`` from rows {position: {component: value}} (positions without a row are NaN)."""
    fs = FeatureSet(names=names, cache_dir=folder, failed=failed)
    for key in ("hl", "ll", "q_low", "q_high"):
        present = [row[key] for row in rows.values() if key in row]
        if not present:
            continue
        shape = np.asarray(present[0]).shape
        arr = np.full((len(names),) + shape, np.nan, dtype=np.float64 if key.startswith("q") else np.float32)
        for i, row in rows.items():
            arr[i] = row[key]
        setattr(fs, key, arr)
    return fs
