"""Small helpers shared by every layer; torch is imported on first use (the regressor files load without it)."""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

if TYPE_CHECKING:
    import torch

__all__ = ["atomic_write", "AMP_DTYPES", "autocast_context", "check_amp", "load_weights"]

#: Mixed-precision settings (``run.amp``, ``grepq score --amp``) -> torch's autocast dtype; "off" is float32.
AMP_DTYPES = {"off": None, "bf16": "bfloat16", "fp16": "float16"}


def autocast_context(device: Union[str, torch.device], amp: str):
    """``torch.autocast`` with ``amp``'s dtype ("bf16" / "fp16") on ``device``'s type, or a no-op context for "off"."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {list(AMP_DTYPES)}, got {amp!r}")
    if AMP_DTYPES[amp] is None:
        return contextlib.nullcontext()
    import torch
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, AMP_DTYPES[amp]))


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], *, fsync: bool = True,
                 tmp: Optional[Union[str, os.PathLike]] = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (default ``.<name>.tmp<pid>``, or ``tmp``) to write; then fsync it
    (``fsync``: where a lost file would lose work) and ``os.replace`` it onto ``path``, so a reader, or a run
    killed mid-write, never sees half a file. On an error the temporary file is removed. Creates the parent folder.

    ``with atomic_write(p) as tmp: torch.save(obj, tmp)``
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_amp(device: Union[str, torch.device], amp: str) -> str:
    """Validate an ``amp`` setting; warn for float16 on a CPU (emulated: a ResNet18 step 25x slower than float32)."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {list(AMP_DTYPES)}, got {amp!r}")
    if amp == "fp16" and str(device).startswith("cpu"):
        warnings.warn("amp 'fp16' on the CPU is much slower than float32 (about 25x for ResNet convolutions); "
                      "use 'bf16' or 'off' there", UserWarning, stacklevel=3)
    return amp


def load_weights(path: Union[str, os.PathLike], what: str = "weights") -> Any:
    """``torch.load`` on the CPU, ``weights_only`` (no code executed), memory-mapped where the format allows (zip
    files of torch.save since 1.6; older files are read whole). A missing file is a FileNotFoundError, an
    unreadable one a ValueError, naming ``what`` and the file."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files that are not checkpoints
        raise ValueError(f"{path}: not a PyTorch checkpoint readable with weights_only=True "
                         f"({type(exc).__name__}: {exc})") from None
