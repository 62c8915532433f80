"""The high-level (HL) model: CLIP's image encoder (RN50) with a projection head, paper §3.2, docs/method.md §3-4, §7.

OpenAI's ``clip`` package is used as installed, never edited. The attention-pool positional embedding (which fixes
RN50 to 224x224) is grepq's :func:`attention_pool`: "drop" (none: the official evaluation), "interpolate" (bicubic,
as pyiqa) or "keep" (CLIP as trained, 224x224 only). The frozen text encoder's prompt embeddings are a buffer.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.io import CLIP_MEAN, CLIP_STD
from ..fingerprint import tensors_fingerprint
from ..utils import atomic_write, load_weights
from . import POS_EMBEDDING_MODES

with warnings.catch_warnings():  # clip imports pkg_resources, which warns about its own deprecation
    warnings.simplefilter("ignore")
    import clip
    import clip.model as clip_model_lib

__all__ = [
    "POS_EMBEDDING_MODES", "DEFAULT_PROMPTS", "HIGH_LEVEL_FORMAT", "K2",
    "load_clip", "build_clip", "build_visual", "resolve_clip_file", "clip_state_dict", "clip_text_fingerprint",
    "attention_pool", "encode_image", "text_embeddings", "HighLevelModel", "load_hl_visual_weights", "check_hl_keys",
    "high_level_weights", "save_high_level", "normalize", "pseudo_quality",
]

#: Antonym prompts of Eq. 2 (paper §3.2; the official "A good photo."/"A bad photo." tokenise the same).
DEFAULT_PROMPTS = ("a good photo.", "a bad photo.")
#: k2 of Eq. 2 (paper §4.1 and the official code: 10).
K2 = 10.0
#: Environment variable naming CLIP weights (a file or a model name) when none is given.
CLIP_ENV = "GREPQ_CLIP_WEIGHTS"
#: The ``format`` tag of grepq's HL weight files (and of the model part of training checkpoints).
HIGH_LEVEL_FORMAT = "grepq-high-level"


def normalize(x: torch.Tensor) -> torch.Tensor:
    """CLIP normalisation of (..., 3, H, W) images in [0, 1]."""
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def clip_architecture(state_dict: Dict[str, torch.Tensor]) -> Dict[str, object]:
    """The constructor arguments of ``clip.model.CLIP`` that a full CLIP state dict was made with (from its shapes)."""
    sd = state_dict
    vision = _vision_architecture(sd)
    width = sd["ln_final.weight"].shape[0]
    return dict(embed_dim=sd["text_projection"].shape[1], context_length=sd["positional_embedding"].shape[0],
                vocab_size=sd["token_embedding.weight"].shape[0], transformer_width=width,
                transformer_heads=width // 64, transformer_layers=_count(sd, "transformer.resblocks."), **vision)


def _count(sd: Dict[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})


def _vision_architecture(sd: Dict[str, torch.Tensor]) -> Dict[str, object]:
    """The ``vision_*`` and ``image_resolution`` arguments of ``clip.model.CLIP`` from the ``visual.*`` shapes."""
    if "visual.proj" in sd:  # ViT image encoder
        width = sd["visual.conv1.weight"].shape[0]
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        return dict(vision_layers=_count(sd, "visual.transformer.resblocks."), vision_width=width,
                    vision_patch_size=patch, image_resolution=patch * grid)
    grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)  # ModifiedResNet
    return dict(vision_layers=tuple(_count(sd, f"visual.layer{b}.") for b in (1, 2, 3, 4)),
                vision_width=sd["visual.layer1.0.conv1.weight"].shape[0], vision_patch_size=None,
                image_resolution=grid * 32)


def build_visual(state_dict: Dict[str, torch.Tensor], source: str = "<state dict>") -> nn.Module:
    """CLIP's ResNet image encoder (``ModifiedResNet``) alone, float32, strictly from the ``visual.*`` tensors of
    ``state_dict`` (other keys ignored). Built on the meta device and given the tensors (float32 ones not copied)."""
    vis = {k[len("visual."):]: (v.float() if v.is_floating_point() else v)
           for k, v in state_dict.items() if k.startswith("visual.")}
    if "attnpool.positional_embedding" not in vis or "attnpool.c_proj.weight" not in vis:
        raise ValueError(f"{source}: not the weights of a CLIP ResNet image encoder (no visual.attnpool.*)")
    arch = _vision_architecture(state_dict)
    width = arch["vision_width"]
    with torch.device("meta"):
        visual = clip_model_lib.ModifiedResNet(
            layers=arch["vision_layers"], output_dim=vis["attnpool.c_proj.weight"].shape[0], heads=width * 32 // 64,
            input_resolution=arch["image_resolution"], width=width)
    res = visual.load_state_dict(vis, strict=False, assign=True)  # strict below, naming the file
    if res.missing_keys or res.unexpected_keys:
        raise ValueError(f"{source}: does not match the CLIP image encoder: missing {res.missing_keys[:6]}, "
                         f"unexpected {res.unexpected_keys[:6]} (is it the image encoder of a CLIP ResNet, e.g. RN50?)")
    return visual.eval()


def build_clip(state_dict: Dict[str, torch.Tensor]) -> "clip_model_lib.CLIP":
    """A float32 CLIP model from a full CLIP state dict (architecture from the shapes, as ``clip.model.build_model``).

    Built on the meta device and given float32 copies of the tensors: no random init, and no pass through float16
    (which ``build_model`` does, rounding fp32 checkpoints). OpenAI's fp16 archives become fp32 losslessly."""
    if "visual.attnpool.positional_embedding" not in state_dict and "visual.proj" not in state_dict:
        raise ValueError("not a CLIP state dict: expected keys visual.* (image encoder) and transformer.* (text "
                         "encoder)")
    sd = {k: (v.to(torch.float32, copy=True) if v.is_floating_point() else v.clone())
          for k, v in state_dict.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    arch = clip_architecture(sd)
    with torch.device("meta"):
        model = clip_model_lib.CLIP(**arch)
    model.load_state_dict(sd, strict=True, assign=True)
    # the text transformer's causal mask is a plain attribute made in __init__ (on the meta device there)
    mask = model.build_attention_mask()
    for block in model.transformer.resblocks:
        block.attn_mask = mask
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            raise ValueError(f"CLIP state dict: {name} was not filled by the file")
    return model.eval()


def clip_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read a CLIP checkpoint as stored (OpenAI: fp16): a TorchScript archive (``RN50.pt``) or a plain state dict
    file (memory-mapped). grepq opens it itself: ``clip.load`` fails on plain state dicts with current torch."""
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export; the archives stay
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError:
        pass
    obj = load_weights(path, "CLIP weights")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a CLIP state dict (a dict of tensors)")
    return obj


def clip_text_fingerprint(state_dict: Dict[str, torch.Tensor]) -> str:
    """Fingerprint of a CLIP state dict without ``visual.*``: what the prompt embeddings depend on (their cache key)."""
    return tensors_fingerprint({k: v for k, v in state_dict.items() if not k.startswith("visual.")})


def resolve_clip_file(source: Optional[Union[str, os.PathLike]] = None, download_root: Optional[str] = None) -> Path:
    """The CLIP weights file ``source`` names: a path, or a ``clip.available_models()`` name (in ``download_root`` or
    ~/.cache/clip; downloaded when online). ``None``: ``$GREPQ_CLIP_WEIGHTS``, else "RN50"."""
    if source is None:
        source = os.environ.get(CLIP_ENV) or "RN50"
    path = Path(str(source)).expanduser()
    if path.is_file():
        return path
    name = str(source)
    if name not in clip.available_models():
        raise FileNotFoundError(f"CLIP weights {name!r}: no such file, and not a CLIP model name (available models = "
                                f"{clip.available_models()})")
    root = download_root or os.path.expanduser("~/.cache/clip")
    cached = Path(root) / os.path.basename(clip.clip._MODELS[name])
    if not cached.is_file():
        try:
            clip.clip._download(clip.clip._MODELS[name], root)
        except Exception as exc:  # urllib raises several types when offline
            raise FileNotFoundError(
                f"CLIP weights {name!r} are not in {root} and could not be downloaded ({type(exc).__name__}: {exc}). "
                f"Pass a local file (--clip-weights /path/to/RN50.pt) or set {CLIP_ENV}.") from None
    return cached


def load_clip(source: Optional[Union[str, os.PathLike]] = None,
              download_root: Optional[str] = None) -> "clip_model_lib.CLIP":
    """A float32 CLIP model on the CPU from a model name or a file (:func:`resolve_clip_file`)."""
    return build_clip(clip_state_dict(resolve_clip_file(source, download_root)))


#: ``attention_query="auto"`` uses every token as a query (CLIP's own computation, bit for bit the official
#: numbers) while the attention matrix stays under this many bytes, and only the first token above it.
AUTO_QUERY_BYTES = 256 * 2 ** 20


def attention_pool(pool: nn.Module, x: torch.Tensor, pos_embedding: str = "drop", query: str = "auto") -> torch.Tensor:
    """CLIP's ``AttentionPool2d`` with a choice of positional embedding; (N, C, H, W) -> (N, output_dim).
    ``query="all"``: CLIP's computation; ``"first"``: only the first token as query, O(HW) memory instead of
    O((HW)²), sums in another order (8e-6 relative); ``"auto"``: "all" under :data:`AUTO_QUERY_BYTES` per image."""
    if pos_embedding not in POS_EMBEDDING_MODES:
        raise ValueError(f"pos_embedding must be one of {POS_EMBEDDING_MODES}, got {pos_embedding!r}")
    if query not in ("auto", "all", "first"):
        raise ValueError(f"query must be 'auto', 'all' or 'first', got {query!r}")
    n, c, h, w = x.shape
    x = x.reshape(n, c, h * w).permute(2, 0, 1)                       # (HW, N, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)            # (HW+1, N, C)
    pe = pool.positional_embedding
    if pos_embedding == "keep":
        if pe.shape[0] != h * w + 1:
            side = int(round((pe.shape[0] - 1) ** 0.5))
            raise ValueError(f"pos_embedding='keep' needs a {side}x{side} feature grid ({side * 32}x{side * 32} "
                             f"input), got {h}x{w}; resize the input or use 'drop' / 'interpolate'")
        x = x + pe[:, None, :].to(x.dtype)
    elif pos_embedding == "interpolate":
        side = int(round((pe.shape[0] - 1) ** 0.5))
        grid = pe[1:].reshape(side, side, -1).permute(2, 0, 1).unsqueeze(0)        # (1, C, s, s)
        grid = F.interpolate(grid.float(), size=(h, w), mode="bicubic", align_corners=False)
        spatial = grid.squeeze(0).permute(1, 2, 0).reshape(h * w, -1)
        x = x + torch.cat([pe[:1], spatial.to(pe.dtype)], dim=0)[:, None, :].to(x.dtype)
    per_sample = pool.num_heads * (h * w + 1) ** 2 * x.element_size()
    if query == "auto":
        query = "all" if per_sample <= AUTO_QUERY_BYTES else "first"
        step = max(1, AUTO_QUERY_BYTES // per_sample)
        if query == "all" and n > step:
            return torch.cat([_attention(pool, x[:, i:i + step], "all") for i in range(0, n, step)])
    return _attention(pool, x, query)


def _attention(pool: nn.Module, x: torch.Tensor, query: str) -> torch.Tensor:
    """CLIP's multi-head attention over tokens (L, N, C) with all or only the first token as queries -> (N, E)."""
    out, _ = F.multi_head_attention_forward(
        query=x if query == "all" else x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1],
        num_heads=pool.num_heads, q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True, training=pool.training, need_weights=False)
    return out[0]


def encode_image(visual: nn.Module, x: torch.Tensor, pos_embedding: str = "drop") -> torch.Tensor:
    """CLIP's ``ModifiedResNet`` on CLIP-normalised images (N, 3, H, W) -> (N, E), with :func:`attention_pool`."""
    if not hasattr(visual, "attnpool"):
        raise TypeError("grepq's high-level model needs a CLIP ResNet image encoder (RN50, RN101, ...), not a ViT")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < 32:
        raise ValueError(f"CLIP's ResNet needs images of at least 32x32 pixels, got {tuple(x.shape[-2:])}")
    v = visual
    x = x.type(v.conv1.weight.dtype)
    x = v.relu1(v.bn1(v.conv1(x)))
    x = v.relu2(v.bn2(v.conv2(x)))
    x = v.relu3(v.bn3(v.conv3(x)))
    x = v.avgpool(x)
    x = v.layer4(v.layer3(v.layer2(v.layer1(x))))
    return attention_pool(v.attnpool, x, pos_embedding)


@torch.no_grad()
def text_embeddings(clip_model: nn.Module, prompts: Sequence[str]) -> torch.Tensor:
    """Embeddings (P, E) of the prompts from CLIP's (frozen) text encoder, float32, not normalised."""
    device = clip_model.text_projection.device
    tokens = clip.tokenize(list(prompts)).to(device)
    return clip_model.encode_text(tokens).float()


def pseudo_quality(cos_good: torch.Tensor, cos_bad: torch.Tensor, k2: float = K2) -> torch.Tensor:
    """Paper Eq. 2: Q_H = 1 / (1 + exp(k2 (cos(z, z_bad) − cos(z, z_good)))), the zero-shot Q_H and the HL
    pseudo-label. cos_good, cos_bad: (N,) cosines with the prompt embeddings -> (N,) in (0, 1), higher is better."""
    return torch.sigmoid(k2 * (cos_good - cos_bad))


def load_hl_visual_weights(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read HL weights (the official ``high_level_model_weights.pth``: CLIP's ``visual`` state dict without prefix;
    or a grepq HL file or training checkpoint) -> ``visual.*`` (and ``head.*`` when held) tensors."""
    obj = load_weights(path, "high-level weights")
    if isinstance(obj, dict) and obj.get("format") == HIGH_LEVEL_FORMAT:
        return obj["state_dict"]
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and obj["model"].get("format") == HIGH_LEVEL_FORMAT:
        return obj["model"]["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a CLIP visual state dict or a grepq high-level checkpoint")
    if any(k.startswith("visual.") for k in obj):
        return obj
    return {"visual." + k: v for k, v in obj.items()}


def check_hl_keys(state_dict: Dict[str, torch.Tensor], source: str = "<state dict>") -> None:
    """HL weights hold ``visual.*`` (and ``head.*``, ``text_features``) keys only; a ValueError names others."""
    other = [k for k in state_dict
             if not k.startswith("visual.") and not k.startswith("head.") and k != "text_features"]
    if other:
        raise ValueError(f"{source}: unexpected keys for a CLIP image encoder: {other[:6]}")


class HighLevelModel(nn.Module):
    """CLIP image encoder + projection head (paper §3.2), the frozen prompt embeddings as a buffer.

    ``forward(x)``: CLIP-normalised (N, 3, H, W) -> (embedding (N, E), head output (N, head_dim)); ``quality(x)``:
    Eq. 2, (N,). Give a CLIP model (its text encoder embeds ``prompts``), or ``visual`` and ``text_features`` (2, E).
    ``head_activation``: "none" (paper) or "relu" (official); ``pos_embedding``: see :func:`attention_pool`.
    """

    def __init__(self, clip_model: Optional[nn.Module] = None, prompts: Tuple[str, str] = DEFAULT_PROMPTS,
                 head_dim: int = 128, head_activation: str = "none", pos_embedding: str = "drop", k2: float = K2, *,
                 visual: Optional[nn.Module] = None, text_features: Optional[torch.Tensor] = None):
        super().__init__()
        parts = (visual is not None, text_features is not None)
        if parts != ((False, False) if clip_model is not None else (True, True)):
            raise ValueError("HighLevelModel needs a CLIP model, or both visual and text_features (not both ways)")
        if len(prompts) != 2:
            raise ValueError(f"prompts must be a (good, bad) pair, got {prompts!r}")
        if pos_embedding not in POS_EMBEDDING_MODES:
            raise ValueError(f"pos_embedding must be one of {POS_EMBEDDING_MODES}, got {pos_embedding!r}")
        if head_activation not in ("none", "relu"):
            raise ValueError(f"head_activation must be 'none' or 'relu', got {head_activation!r}")
        self.visual = clip_model.visual if clip_model is not None else visual
        self.embed_dim = int(self.visual.output_dim)
        layers = [nn.Linear(self.embed_dim, head_dim)] + ([nn.ReLU()] if head_activation == "relu" else [])
        self.head = nn.Sequential(*layers)
        self.prompts = tuple(prompts)
        self.pos_embedding = pos_embedding
        self.k2 = float(k2)
        self.head_dim = head_dim
        self.head_activation = head_activation
        if clip_model is not None:
            text_features = text_embeddings(clip_model, self.prompts)
        if tuple(text_features.shape) != (2, self.embed_dim):
            raise ValueError(f"text_features must be (2, {self.embed_dim}), got {tuple(text_features.shape)} (are the "
                             "image encoder and the text encoder parts of the same CLIP model?)")
        self.register_buffer("text_features", text_features.detach().float().clone())

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP image embedding (N, E) of CLIP-normalised images (N, 3, H, W)."""
        return encode_image(self.visual, x, self.pos_embedding)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x)
        return e, self.head(e)

    def quality_from_embedding(self, e: torch.Tensor) -> torch.Tensor:
        """Eq. 2 on embeddings (N, E) -> (N,)."""
        t = self.text_features.to(e.dtype)
        cos = F.cosine_similarity(e[:, None, :], t[None, :, :], dim=-1)  # (N, 2): good, bad
        return pseudo_quality(cos[:, 0], cos[:, 1], self.k2)

    def quality(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality_from_embedding(self.embed(x))

    def arch(self) -> dict:
        return {"prompts": list(self.prompts), "head_dim": self.head_dim, "head_activation": self.head_activation,
                "pos_embedding": self.pos_embedding, "k2": self.k2}

    def load_visual(self, state_dict: Dict[str, torch.Tensor], source: str = "<state dict>",
                    with_head: bool = False) -> None:
        """Load ``visual.*`` (and, if ``with_head``, ``head.*``) strictly."""
        check_hl_keys(state_dict, source)
        vis = {k[len("visual."):]: v.float() for k, v in state_dict.items() if k.startswith("visual.")}
        res = self.visual.load_state_dict(vis, strict=False)  # strict below, naming the file
        if res.missing_keys or res.unexpected_keys:
            raise ValueError(f"{source}: does not match the CLIP image encoder: missing {res.missing_keys[:6]}, "
                             f"unexpected {res.unexpected_keys[:6]} (is it the image encoder of the same CLIP model, "
                             f"e.g. RN50?)")
        if with_head:
            head = {k[len("head."):]: v for k, v in state_dict.items() if k.startswith("head.")}
            if not head:
                raise ValueError(f"{source}: holds no head weights")
            self.head.load_state_dict(head, strict=True)


def high_level_weights(model: HighLevelModel) -> Dict:
    """The model in grepq's HL format: ``{"format", "arch", "state_dict": {"visual.*", "head.*"}}`` (CPU copies)."""
    sd = {"visual." + k: v.detach().cpu().clone() for k, v in model.visual.state_dict().items()}
    sd.update({"head." + k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()})
    return {"format": HIGH_LEVEL_FORMAT, "arch": dict(model.arch(), embed_dim=model.embed_dim), "state_dict": sd}


def save_high_level(weights: Dict, path: Union[str, Path], fmt: str = "grepq", extra: Optional[dict] = None) -> Path:
    """Save HL weights given in grepq's format (:func:`high_level_weights`) atomically: ``fmt="grepq"`` as they are
    (plus ``extra`` entries), ``"official"`` as the released ``high_level_model_weights.pth`` (the ``visual``
    state dict without prefix; the official code drops the head at inference)."""
    if weights.get("format") != HIGH_LEVEL_FORMAT:
        raise ValueError(f"expected grepq high-level weights (format {HIGH_LEVEL_FORMAT!r})")
    if fmt == "grepq":
        obj = {"format": HIGH_LEVEL_FORMAT, "arch": weights.get("arch", {}), "state_dict": weights["state_dict"],
               **(extra or {})}
    elif fmt == "official":
        obj = {k[len("visual."):]: v for k, v in weights["state_dict"].items() if k.startswith("visual.")}
    else:
        raise ValueError(f"fmt must be 'grepq' or 'official', got {fmt!r}")
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
