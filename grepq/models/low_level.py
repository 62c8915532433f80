"""The low-level (LL) model: ResNet18 from scratch + MLP head to R^128 (paper §3.1, docs/method.md §2).

grepq's state dict: ``encoder.<i>.*`` (resnet18's children without ``fc``: 0 conv1, 1 bn1, 4-7 layer1-4) and
``head.0.*``, ``head.2.*``. :func:`load_low_level` also reads the official 246-key checkpoint (docs/method.md §7).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torchvision

from ..utils import atomic_write, load_weights

__all__ = ["LowLevelModel", "load_low_level", "LoadReport", "official_state_dict", "low_level_weights",
           "save_low_level", "LOW_LEVEL_FORMAT"]

#: Feature size of ResNet18's pooled output.
RESNET18_DIM = 512
#: LL feature size, "projected onto R^128" (paper §4.1; official head MLP 512→512→ReLU→128).
LL_FEATURE_DIM = 128

# torchvision resnet18 child name -> index in the official ``encoder.resnet18`` Sequential (fc dropped).
_CHILD_INDEX = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}
#: The ``format`` tag of grepq's LL weight files (and of the model part of training checkpoints).
LOW_LEVEL_FORMAT = "grepq-low-level"


class LowLevelModel(nn.Module):
    """ResNet18 (no pretrained weights) + MLP head: ``forward`` (B, 3, H, W) in [0, 1] (not normalised, as the
    official code) -> (B, feat_dim), the LL feature; ``encode`` -> (B, 512), the pooled encoder output."""

    def __init__(self, feat_dim: int = LL_FEATURE_DIM, hidden_dim: int = RESNET18_DIM):
        super().__init__()
        backbone = torchvision.models.resnet18(weights=None)
        self.encoder = nn.Sequential(*list(backbone.children())[:-1])
        self.head = nn.Sequential(nn.Linear(RESNET18_DIM, hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(hidden_dim, feat_dim))
        self.feat_dim = feat_dim
        self.hidden_dim = hidden_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 512)."""
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, feat_dim)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        return self.head(self.encode(x))

    def arch(self) -> Dict[str, int]:
        return {"feat_dim": self.feat_dim, "hidden_dim": self.hidden_dim}


@dataclass
class LoadReport:
    """What a checkpoint load did: the format recognised and the keys present but not used (none are missing)."""

    path: str
    format: str
    unused: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        more = ", ..." if len(self.unused) > 4 else ""
        extra = f"; {len(self.unused)} unused tensors ({', '.join(self.unused[:4])}{more})" if self.unused else ""
        return f"{self.path}: {self.format}{extra}"


def _from_official(sd: Dict[str, torch.Tensor], path: str) -> (Dict[str, torch.Tensor], List[str]):
    """Map the official 246-key layout to grepq's; check the duplicated ``base_model`` copy agrees."""
    out: Dict[str, torch.Tensor] = {}
    unused: List[str] = []
    for k, v in sd.items():
        if k.startswith("encoder.resnet18."):
            out["encoder." + k[len("encoder.resnet18."):]] = v
        elif k.startswith("head."):
            out[k] = v
        elif k.startswith("encoder.base_model."):
            pass
        else:
            raise ValueError(f"{path}: unexpected key {k!r} in an official low-level checkpoint")
    for k, v in sd.items():
        if not k.startswith("encoder.base_model."):
            continue
        rest = k[len("encoder.base_model."):]
        child, _, tail = rest.partition(".")
        if child == "fc":
            unused.append(k)  # resnet18's classifier: saved by the official model, never used in its forward
            continue
        if child not in _CHILD_INDEX:
            raise ValueError(f"{path}: unexpected key {k!r} in an official low-level checkpoint")
        twin = f"encoder.{_CHILD_INDEX[child]}.{tail}"
        if twin not in out:
            raise ValueError(f"{path}: {k!r} has no counterpart encoder.resnet18.{_CHILD_INDEX[child]}.{tail}")
        if not torch.equal(out[twin], v):
            raise ValueError(f"{path}: {k!r} differs from its twin in encoder.resnet18; the checkpoint is inconsistent")
        unused.append(k)  # a second copy of the same tensor
    return out, unused


def load_low_level(source: Union[str, Path, dict],
                   map_location: Union[str, torch.device] = "cpu") -> (LowLevelModel, LoadReport):
    """A :class:`LowLevelModel` loaded strictly from the official ``low_level_model_weights.tar``, a grepq LL file
    or training checkpoint, or a plain state dict in either layout. Tensors of the official file the model does not
    use (the ``base_model`` twins and its ``fc``) are listed in the returned :class:`LoadReport`."""
    name = str(source) if not isinstance(source, dict) else "<state dict>"
    ckpt = load_weights(source, "low-level weights") if not isinstance(source, dict) else source
    arch: Dict[str, int] = {}
    fmt = "plain state dict"
    if isinstance(ckpt, dict) and ckpt.get("format") == LOW_LEVEL_FORMAT:
        sd, arch, fmt = ckpt["state_dict"], ckpt.get("arch", {}), "grepq low-level checkpoint"
    elif (isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict)
          and ckpt["model"].get("format") == LOW_LEVEL_FORMAT):
        sd, arch, fmt = ckpt["model"]["state_dict"], ckpt["model"].get("arch", {}), "grepq training checkpoint"
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) and "state_dict" in ckpt["model"]:
        sd, fmt = ckpt["model"]["state_dict"], "official GRepQ low-level checkpoint"
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        raise ValueError(f"{name}: not a low-level checkpoint (expected the official .tar, a grepq checkpoint or a "
                         f"state dict)")
    unused: List[str] = []
    if any(k.startswith("encoder.resnet18.") or k.startswith("encoder.base_model.") for k in sd):
        sd, unused = _from_official(sd, name)
        fmt = fmt if "official" in fmt else "official layout state dict"
    if not arch:
        w = sd.get("head.2.weight")
        if w is None:
            raise ValueError(f"{name}: missing head.2.weight (expected an MLP head 512→512→ReLU→128)")
        arch = {"feat_dim": int(w.shape[0]), "hidden_dim": int(w.shape[1])}
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = LowLevelModel(**arch)
    # float32, assigned (a state dict handed in is copied: the model never shares the caller's tensors); strict below
    own = isinstance(source, dict)
    tensors = {k: (v.to(torch.float32, copy=own) if v.is_floating_point() else v.clone() if own else v)
               for k, v in sd.items()}
    result = model.load_state_dict(tensors, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{name}: does not match the low-level model: missing {result.missing_keys[:6]}"
                         f"{'...' if len(result.missing_keys) > 6 else ''}, unexpected {result.unexpected_keys[:6]}")
    return model.to(map_location), LoadReport(name, fmt, unused)


def official_state_dict(model: LowLevelModel) -> Dict[str, torch.Tensor]:
    """The weights in the official 246-key layout (``encoder.base_model.*`` + ``encoder.resnet18.*`` + head); the
    unused ``base_model.fc`` is written as zeros (the official loader needs the key, its forward never reads it)."""
    sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    out: Dict[str, torch.Tensor] = {}
    inv = {v: k for k, v in _CHILD_INDEX.items()}
    for k, v in sd.items():
        if k.startswith("encoder."):
            idx, _, tail = k[len("encoder."):].partition(".")
            out[f"encoder.base_model.{inv[int(idx)]}.{tail}"] = v
    out["encoder.base_model.fc.weight"] = torch.zeros(1000, RESNET18_DIM)
    out["encoder.base_model.fc.bias"] = torch.zeros(1000)
    for k, v in sd.items():
        if k.startswith("encoder."):
            out["encoder.resnet18." + k[len("encoder."):]] = v
        else:
            out[k] = v
    return out


def low_level_weights(model: LowLevelModel) -> Dict:
    """The model in grepq's LL format: ``{"format", "arch", "state_dict"}`` (CPU copies)."""
    return {"format": LOW_LEVEL_FORMAT, "arch": model.arch(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def save_low_level(model: LowLevelModel, path: Union[str, Path], fmt: str = "grepq",
                   extra: Optional[dict] = None) -> Path:
    """Save LL weights atomically: ``fmt="grepq"`` (:func:`low_level_weights` plus ``extra``) or ``"official"``
    (the released .tar layout)."""
    if fmt == "grepq":
        obj = {**low_level_weights(model), **(extra or {})}
    elif fmt == "official":
        obj = {"model": {"state_dict": official_state_dict(model)}, "optimizer": {"state_dict": {}},
               "current_iteration": 0}
    else:
        raise ValueError(f"fmt must be 'grepq' or 'official', got {fmt!r}")
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
