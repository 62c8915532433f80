"""Content fingerprints of the tensors a result depends on (weights, pristine patches, prompt embeddings): the
SHA-256 of names, dtypes, shapes and bytes, keys sorted, so independent of the file format (the official .tar and
grepq's export of the same weights agree). The feature cache and ``grepq fit``'s regressors use them."""
from __future__ import annotations

import hashlib
from typing import Mapping, Optional

import torch

__all__ = ["digest_tensors", "tensors_fingerprint", "FINGERPRINT_LENGTH"]

#: Hex digits kept of the SHA-256 (64 bits: collisions between weight files are not a practical concern).
FINGERPRINT_LENGTH = 16


def digest_tensors(h: "hashlib._Hash", tensors: Mapping[str, torch.Tensor]) -> None:
    """Feed ``tensors`` (name -> tensor of any shape and dtype) into the hash object ``h``, keys sorted."""
    for k in sorted(tensors):
        v = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(str(tuple(v.shape)).encode())
        if v.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the raw bits
            v = v.view(torch.int16)
        h.update(v.reshape(-1).numpy().tobytes())


def tensors_fingerprint(tensors: Optional[Mapping[str, torch.Tensor]]) -> Optional[str]:
    """Fingerprint (16 hex digits) of a name -> tensor mapping, or None for None."""
    if tensors is None:
        return None
    h = hashlib.sha256()
    digest_tensors(h, tensors)
    return h.hexdigest()[:FINGERPRINT_LENGTH]
