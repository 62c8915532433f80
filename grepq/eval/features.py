"""Per-image features for the protocols, extracted once into a resumable cache (docs/method.md §5).

One decode per image gives ``hl`` (CLIP image-encoder output on the whole image, E = 1024 for RN50), ``ll`` (the LL
model's 128-d head output on the whole image, as the official ``get_concatenated_features.py``) and the zero-shot
``q_low`` (Eq. 6) and ``q_high`` (Eq. 2). Regression features are the feature sets of :data:`FEATURE_SETS`:
[HL | LL] columns (:meth:`FeatureSet.matrix`).

The cache, ``<cache_dir>/<name>-<key>/``, holds ``meta.json`` and ``part-*.npz`` files written atomically every
``save_every`` images: a killed extraction resumes where it stopped. The key hashes the weights, the pristine
patches, the settings and the image list, not the shard: processes filling one cache as :class:`grepq.parallel.Shard`
s write parts named by their shard (``part-s<i>of<n>-...``) and never collide. Importing this module does not
import torch (a regressor file loads without it).
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

from ..utils import atomic_write
from ..version import __version__

__all__ = ["FEATURE_SETS", "FeatureSet", "extract_features", "cache_key", "FEATURE_FORMAT"]

#: Feature sets of Table 1 and the parts they concatenate, in column order ([HL | LL], docs/method.md §5).
FEATURE_SETS = {"hl+ll": ("hl", "ll"), "hl": ("hl",), "ll": ("ll",)}

#: Bumped when what is stored changes, so old caches are not reused.
FEATURE_FORMAT = 1
#: Images per cache part file when ``extract_features`` is not given ``save_every`` (``grepq eval --cache-every N``
#: passes another). Smaller: less lost to a kill, more files.
DEFAULT_SAVE_EVERY = 50


@dataclass
class FeatureSet:
    """Features of N images: hl (N, E) and ll (N, 128) float32, q_low and q_high (N,) float64; None where a
    component was not computed."""

    names: List[str]
    hl: Optional[np.ndarray] = None
    ll: Optional[np.ndarray] = None
    q_low: Optional[np.ndarray] = None
    q_high: Optional[np.ndarray] = None
    cache_dir: Optional[Path] = None
    failed: List[Tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def q_total(self) -> Optional[np.ndarray]:
        from ..scoring.zero_shot import total_quality  # Eq. 7 (lazy: this module imports no torch)
        return total_quality(self.q_low, self.q_high)

    def available(self) -> List[str]:
        """The feature sets whose components were computed, in :data:`FEATURE_SETS` order (widest first)."""
        return [name for name, parts in FEATURE_SETS.items() if all(getattr(self, p) is not None for p in parts)]

    def parts(self, name: str) -> Tuple[str, ...]:
        """The components of feature set ``name``, or a ValueError naming a missing one."""
        if name not in FEATURE_SETS:
            raise ValueError(f"feature set: expected one of {list(FEATURE_SETS)}, got {name!r}")
        missing = [p for p in FEATURE_SETS[name] if getattr(self, p) is None]
        if missing:
            raise ValueError(f"feature set {name!r} needs the {' and '.join(missing)} component, which was not "
                             f"computed (have {self.available()})")
        return FEATURE_SETS[name]

    def matrix(self, name: Optional[str] = None) -> np.ndarray:
        """(N, P) float64 regression features of feature set ``name`` (None: every computed component), e.g.
        "hl+ll" = [HL | LL] (N, E + 128)."""
        name = self.available()[0] if name is None else name
        return np.concatenate([getattr(self, p) for p in self.parts(name)], axis=1).astype(np.float64)

    def dims(self, name: str) -> Dict[str, int]:
        """Column count of each component of feature set ``name``, in order."""
        return {p: int(getattr(self, p).shape[1]) for p in self.parts(name)}

    def columns(self, names: Sequence[str]) -> Dict[str, slice]:
        """Column slices of the feature sets ``names`` in :meth:`matrix` ``()``."""
        start, out = {}, {}
        for p in ("hl", "ll"):
            if getattr(self, p) is not None:
                start[p] = sum(int(getattr(self, q).shape[1]) for q in start)
        for name in names:
            parts = self.parts(name)
            out[name] = slice(start[parts[0]], start[parts[-1]] + int(getattr(self, parts[-1]).shape[1]))
        return out


def cache_key(scorer, paths: Sequence[Union[str, Path]],
              resize: Optional[Dict[str, Tuple[int, int]]] = None) -> Tuple[str, dict]:
    """A hash of everything the features depend on, and the readable parts of it."""
    from ..fingerprint import digest_tensors

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
        digest_tensors(h, scorer.ll.state_dict())
        digest_tensors(h, {"pristine": scorer.pristine_patches})
    if scorer.hl is not None:
        digest_tensors(h, {k: v for k, v in scorer.hl.state_dict().items() if not k.startswith("head.")})
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


def _shard_tag(shard) -> str:
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
    with atomic_write(final, tmp=folder / f".tmp-{tag}{os.getpid()}.npz") as tmp:
        np.savez(tmp, **arrays)


def _open_cache(folder: Path, info: dict, paths: List[str], tag: str) -> None:
    """Create the cache folder and its meta.json (atomically: shards may start together); remove the temporary
    files a killed run of this shard (or, without a shard, of a single process) left."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.exists():
        with atomic_write(meta, tmp=folder / f".meta-{tag}{os.getpid()}.tmp") as tmp:
            tmp.write_text(json.dumps(dict(info, names=paths), indent=1))
    own = re.compile(re.escape(f".tmp-{tag}") + r"\d+\.npz$")
    for stale in folder.glob(".tmp-*"):
        if own.match(stale.name):
            stale.unlink(missing_ok=True)


def extract_features(scorer, paths: Sequence[Union[str, Path]], cache_dir: Optional[Union[str, Path]] = None,
                     name: str = "images", resize: Optional[Dict[str, Tuple[int, int]]] = None,
                     save_every: Optional[int] = None, progress: bool = True, on_error: str = "raise",
                     shard=None) -> FeatureSet:
    """HL/LL features and zero-shot scores of every image of ``paths`` (in order) with a :class:`grepq.GRepQ`,
    cached under ``cache_dir`` (None: no cache) in ``<name>-<key>/``, a part file every ``save_every`` images.

    ``resize``: ``{path: (h, w)}`` to resize after decoding (bilinear, antialiased; the two CLIVE images the official
    code resizes). ``on_error``: "raise" at the first image that cannot be read or scored, or "record" it in
    ``failed`` (its rows NaN). ``shard``: compute only that share of ``paths`` (:class:`grepq.parallel.Shard`);
    the returned set holds the share's images only.
    """
    import torch.nn.functional as F

    from ..data.io import ImageReadError, read_image

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

    def decode(i: int):
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
