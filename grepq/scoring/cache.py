"""On-disk cache of the scoring constants, computed once per machine instead of once per process.

Entries: ``pristine-stats`` (μ_p (1, C), Σ_p (C, C) of Eq. 5) and ``prompt-embeddings`` (the (2, E) text embeddings
of Eq. 2; with them cached CLIP's text transformer is not built). An entry's file ``<root>/<kind>-<key>.npz`` is
named by a hash of everything its values depend on, as content fingerprints, including what changes them only by
float32 rounding (chunk size, device type, channels_last, torch version): a cached run gives the same bits as an
uncached one. Files hold numpy arrays only (``allow_pickle=False``) with their key and a SHA-256 checksum; an entry
unreadable, corrupt or made for another key is reported, deleted and recomputed. Writes are atomic.

A file's content fingerprint (hashing CLIP's text tower costs about what the cache saves) is remembered in
``files.json`` under the file's (absolute path, size, mtime_ns, inode, device). Folder: ``$GREPQ_CACHE_DIR``, else
``$XDG_CACHE_HOME/grepq``, else ``~/.cache/grepq`` (``--cache-dir``; ``--no-cache`` bypasses it).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import numpy as np

from ..utils import atomic_write

log = logging.getLogger("grepq")

#: Environment variable naming the cache folder.
CACHE_ENV = "GREPQ_CACHE_DIR"
#: Bumped when what an entry holds changes, so older entries are not read.
CACHE_FORMAT = 1
_CHECKSUM, _KEY = "__checksum__", "__key__"
_MEMO = "files.json"


def default_cache_dir() -> Path:
    """``$GREPQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/grepq``, else ``~/.cache/grepq``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "grepq"


def _contiguous(a) -> np.ndarray:
    """``a`` as a C-contiguous array of its own shape (np.ascontiguousarray would make a 0-d array 1-d)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


def _checksum(key_text: str, arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(key_text.encode())
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class ConstantsCache:
    """The scoring-constants cache in one folder (``root=None``: :func:`default_cache_dir`)."""

    def __init__(self, root: Union[str, os.PathLike, None] = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    @staticmethod
    def key_text(kind: str, parts: Mapping[str, object]) -> str:
        """The canonical JSON of an entry's key: its kind, :data:`CACHE_FORMAT` and ``parts``."""
        return json.dumps({"kind": kind, "format": CACHE_FORMAT, **parts}, sort_keys=True)

    def path(self, kind: str, parts: Mapping[str, object]) -> Path:
        """The file of an entry: ``<root>/<kind>-<first 24 hex digits of SHA-256(key)>.npz``."""
        digest = hashlib.sha256(self.key_text(kind, parts).encode()).hexdigest()[:24]
        return self.root / f"{kind}-{digest}.npz"

    def load(self, kind: str, parts: Mapping[str, object]) -> Optional[Dict[str, np.ndarray]]:
        """The arrays of an entry, or None when there is none or it cannot be trusted (then it is deleted)."""
        path = self.path(kind, parts)
        if not path.is_file():
            return None
        key = self.key_text(kind, parts)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            stored_key = str(arrays.pop(_KEY))
            stored_sum = str(arrays.pop(_CHECKSUM))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            return self._reject(path, f"unreadable ({type(exc).__name__}: {exc})")
        if stored_key != key:
            return self._reject(path, "made for another key")
        if stored_sum != _checksum(key, arrays):
            return self._reject(path, "checksum mismatch (corrupt or edited)")
        log.info("cache: using %s", path)
        return arrays

    def _reject(self, path: Path, why: str) -> None:
        log.warning("cache entry %s is %s: recomputing it", path, why)
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def save(self, kind: str, parts: Mapping[str, object], arrays: Mapping[str, np.ndarray]) -> Optional[Path]:
        """Write an entry atomically; a cache folder that cannot be written is a warning, not an error."""
        path = self.path(kind, parts)
        key = self.key_text(kind, parts)
        payload = {k: _contiguous(v) for k, v in arrays.items()}
        payload[_KEY] = np.asarray(key)
        payload[_CHECKSUM] = np.asarray(_checksum(key, {k: v for k, v in payload.items() if k != _KEY}))
        try:
            with atomic_write(path, fsync=False, tmp=path.with_name(f".tmp-{os.getpid()}-{path.name}")) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **payload)
        except OSError as exc:
            log.warning("cannot write the cache entry %s (%s); continuing without it", path, exc)
            return None
        return path

    def get_or_compute(self, kind: str, parts: Mapping[str, object],
                       compute: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """The entry's arrays, computed by ``compute()`` and saved when missing or untrusted."""
        arrays = self.load(kind, parts)
        if arrays is None:
            arrays = compute()
            self.save(kind, parts, arrays)
        return arrays

    def file_fingerprint(self, path: Union[str, os.PathLike], what: str, compute: Callable[[], str]) -> str:
        """The content fingerprint ``compute()`` gives for ``what`` in the file ``path``, remembered under the
        file's (absolute path, size, mtime_ns, inode, device) in ``files.json``; computed again when any changed."""
        st = os.stat(path)
        ident = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]
        name = f"{os.path.abspath(path)}|{what}"
        memo = self._read_memo()
        entry = memo.get(name)
        if isinstance(entry, dict) and entry.get("stat") == ident and isinstance(entry.get("fingerprint"), str):
            return entry["fingerprint"]
        fp = compute()
        memo = self._read_memo()  # another process may have written meanwhile
        memo[name] = {"stat": ident, "fingerprint": fp}
        self._write_memo(memo)
        return fp

    def _read_memo(self) -> dict:
        try:
            memo = json.loads((self.root / _MEMO).read_text())
        except (OSError, ValueError):
            return {}
        return memo if isinstance(memo, dict) else {}

    def _write_memo(self, memo: dict) -> None:
        try:
            with atomic_write(self.root / _MEMO, fsync=False, tmp=self.root / f".tmp-{os.getpid()}-{_MEMO}") as tmp:
                tmp.write_text(json.dumps(memo, indent=0, sort_keys=True))
        except OSError as exc:
            log.warning("cannot write %s (%s); continuing without it", self.root / _MEMO, exc)
