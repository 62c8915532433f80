"""The two training tasks (model, data, trainable parameters, loss); one engine runs both. ``forward`` scales the
loss so that DDP's gradient average over processes equals the single-process gradient of the global batch: LL
(QACL, docs/method.md §2) multiplies a per-process sum by the number of processes; HL (GCL, §3) gathers embeddings
(detached) and head outputs (with gradients) so every process computes the same global loss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from ..data.training_set import HLTrainingDataset, LLTrainingDataset
from ..losses import gcl, group_size_from_divisor, pseudo_label_groups, qacl
from ..models.high_level import (
    HIGH_LEVEL_FORMAT,
    HighLevelModel,
    high_level_weights,
    load_clip,
    save_high_level,
)
from ..models.low_level import LOW_LEVEL_FORMAT, LowLevelModel, low_level_weights, save_low_level
from ..parallel import DistInfo
from ..utils import autocast_context, check_amp
from .batchnorm import convert_global_batchnorm
from .distributed import gather_no_grad, gather_with_grad

__all__ = ["Task", "LLTask", "HLTask", "build_task", "TASK_CLASSES"]


class Task:
    """What differs between the LL and HL training. A task defines ``build_model()``, ``build_dataset(root,
    limit)``, ``forward(batch) -> scalars``, ``weights_dict()`` (grepq's weight format: ``checkpoint.pth["model"]``),
    ``_load_state_dict`` and ``save_weights``. ``model`` is the unwrapped model that is saved; ``net`` what
    ``forward`` calls (``model`` or a view wrapper, in DDP after :meth:`wrap_ddp`).
    """

    name = ""
    weights_file = ""
    weights_format = ""
    drop_last = False

    def __init__(self, cfg: Dict, info: Optional[DistInfo] = None):
        self.cfg = cfg
        self.section = cfg[self.name]
        self.info = info or DistInfo()
        self.device = self.info.device
        self.model = self.build_model()
        if self.section["bn"] == "sync":
            if self.device.type != "cuda":
                raise ValueError(f"{self.name}.bn: 'sync' (SyncBatchNorm) needs CUDA devices, got {self.device}; "
                                 f"use 'global' (the same statistics on the CPU), 'train' or 'frozen'")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        elif self.section["bn"] == "global":  # the single-process statistics however the batch is split
            self.model = convert_global_batchnorm(self.model, self.device, self.info.world_size)
        self.amp = check_amp(self.device, cfg["run"]["amp"])
        self.channels_last = cfg["run"]["channels_last"]
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.module = self.wrap_module(self.model)
        self.net: nn.Module = self.module

    def load_weights_dict(self, obj: Dict, source: str = "<checkpoint>") -> None:
        if obj.get("format") != self.weights_format:
            raise ValueError(f"{source}: expected {self.weights_format} weights, got format {obj.get('format')!r}")
        self._load_state_dict(obj["state_dict"], source)

    def wrap_module(self, model: nn.Module) -> nn.Module:
        return model

    def wrap_ddp(self) -> None:
        """Wrap ``net`` in DistributedDataParallel (CPU: no device_ids)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.net = DDP(self.module, device_ids=ids)

    def trainable_parameters(self) -> List[nn.Parameter]:
        """The parameters given to the optimiser (those with requires_grad)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def make_optimizer(self) -> torch.optim.Optimizer:
        s = self.section
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[s["optimizer"]]
        return cls(self.trainable_parameters(), lr=s["lr"], betas=tuple(s["betas"]), weight_decay=s["weight_decay"])

    def train_mode(self) -> None:
        """model.train(); with ``bn: frozen`` the BatchNorm layers stay in eval mode (running statistics fixed)."""
        self.model.train()
        if self.section["bn"] == "frozen":
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _to(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        """A (N, 3, H, W) batch in the memory format of ``run.channels_last``."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        """The ``run.amp`` context for the model's forward pass (the losses are computed in float32 after it)."""
        return autocast_context(self.device, self.amp)


class _TwoViews(nn.Module):
    """Runs the LL model on the anchor and the positive view separately (BatchNorm statistics per view, as the
    official code's two forward passes) inside one call, so DDP sees one forward per step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor):
        return self.model(anchor), self.model(positive)


class LLTask(Task):
    """Low-level model: ResNet18 + MLP head trained with QACL on aligned fragments (docs/method.md §2)."""

    name = "ll"
    weights_file = "ll_weights.pt"
    weights_format = LOW_LEVEL_FORMAT

    def build_model(self) -> nn.Module:
        return LowLevelModel(feat_dim=self.section["feat_dim"], hidden_dim=self.section["hidden_dim"])

    @property
    def drop_last(self) -> bool:  # type: ignore[override]
        return bool(self.section["drop_last"])

    def wrap_module(self, model: nn.Module) -> nn.Module:
        return _TwoViews(model)

    def build_dataset(self, root, limit: Optional[int] = None) -> LLTrainingDataset:
        s = self.section
        return LLTrainingDataset(root, limit=limit, versions=s["versions"], fsim_source=s["fsim_source"],
                                 pair_weight=s["pair_weight"], grid=s["grid"], patch=s["patch"], flip_p=s["flip_p"],
                                 seed=self.cfg["seed"])

    def forward(self, batch: Dict) -> Dict[str, torch.Tensor]:
        """batch: anchor/positive (B, D, 3, S, S), pair weights (B, D, D) -> {"loss", "loss_per_image"}."""
        a, p, w = self._to(batch["anchor"]), self._to(batch["positive"]), self._to(batch["pair_weight"])
        if self.section["pair_weight"] == "none":  # Table 4 "None": no quality-aware weighting (InfoNCE)
            w = torch.zeros_like(w)
        b, d = a.shape[:2]
        with self.autocast():
            fa, fp = self.net(self._images(a.flatten(0, 1)), self._images(p.flatten(0, 1)))
        fa, fp = fa.float().view(b, d, -1), fp.float().view(b, d, -1)
        loss = qacl(fa, fp, w, temperature=self.section["temperature"], variant=self.section["loss"])
        if self.section["loss"] == "paper":  # a sum over images: DDP averages, so scale back to the global sum
            loss = loss * self.info.world_size
            per_image = loss.detach() / (b * self.info.world_size)
        else:
            per_image = loss.detach()
        return {"loss": loss, "loss_per_image": per_image}

    def weights_dict(self) -> Dict:
        return low_level_weights(self.model)

    def _load_state_dict(self, sd: Dict, source: str) -> None:
        self.model.load_state_dict(sd, strict=True)

    def save_weights(self, path: Path, extra: Optional[Dict] = None) -> Path:
        return save_low_level(self.model, path, fmt="grepq", extra=extra)


class HLTask(Task):
    """High-level model: CLIP's image encoder + head trained with GCL on pseudo-labelled groups (docs/method.md §3)."""

    name = "hl"
    weights_file = "hl_weights.pt"
    weights_format = HIGH_LEVEL_FORMAT
    drop_last = True  # official DataLoader drop_last=True: every step has the full N for the groups

    def build_model(self) -> nn.Module:
        s = self.section
        clip_model = load_clip(s["clip"])
        model = HighLevelModel(clip_model, prompts=tuple(s["prompts"]), head_dim=s["head_dim"],
                               head_activation=s["head_activation"], pos_embedding=s["pos_embedding"], k2=s["k2"])
        del clip_model  # the text encoder is not kept: its prompt embeddings are the model's text_features buffer
        pe = model.visual.attnpool.positional_embedding
        if s["pos_embedding"] == "drop":
            pe.requires_grad_(False)  # unused by the forward pass: no gradient, not optimised (as official)
        elif s["pos_embedding"] == "keep":
            side = int(round((pe.shape[0] - 1) ** 0.5)) * 32
            if s["crop"] != side:
                raise ValueError(f"hl.pos_embedding: 'keep' needs hl.crop = {side} (CLIP's input size), "
                                 f"got {s['crop']}")
        if not s["head_trainable"]:
            model.head.requires_grad_(False)  # official: the head is never given to the optimiser
        return model

    def build_dataset(self, root, limit: Optional[int] = None) -> HLTrainingDataset:
        return HLTrainingDataset(root, limit=limit, crop=self.section["crop"], small_crop=self.section["small_crop"])

    def group_size(self, n: int) -> int:
        """M for a global batch of n images: hl.group_size, else round(n / k) (paper §3.3, §4.1)."""
        m = self.section["group_size"]
        if m is None:
            return group_size_from_divisor(n, self.section["group_divisor"])
        if m < 2 or 2 * m > n:
            raise ValueError(f"hl.group_size M={m} needs 2 <= M and 2M <= N={n}")
        return int(m)

    def forward(self, batch: Dict) -> Dict[str, torch.Tensor]:
        """batch: image (n, 3, crop, crop) per process -> {"loss", "q_mean", "q_gap"} over the global batch."""
        x = self._images(self._to(batch["image"]))
        with self.autocast():
            emb, head = self.net(x)
        emb, head = emb.float(), head.float()
        emb_all = gather_no_grad(emb.detach())        # (N, E): pseudo-labels need no gradient
        head_all = gather_with_grad(head)             # (N, C)
        q = self.model.quality_from_embedding(emb_all.float())  # Eq. 2, detached
        m = self.group_size(q.shape[0])
        bad, good = pseudo_label_groups(q, m)
        loss = gcl(head_all[bad], head_all[good], temperature=self.section["temperature"],
                   variant=self.section["loss"])
        return {"loss": loss, "q_mean": q.mean(), "q_gap": q[good].mean() - q[bad].mean()}

    def weights_dict(self) -> Dict:
        return high_level_weights(self.model)

    def _load_state_dict(self, sd: Dict, source: str) -> None:
        self.model.load_visual(sd, source=source, with_head=True)

    def save_weights(self, path: Path, extra: Optional[Dict] = None) -> Path:
        return save_high_level(self.weights_dict(), path, extra=extra)


TASK_CLASSES = {"ll": LLTask, "hl": HLTask}


def build_task(cfg: Dict, info: Optional[DistInfo] = None) -> Task:
    """The task named by ``cfg["task"]``; its model is built with the global RNG (seed it first)."""
    return TASK_CLASSES[cfg["task"]](cfg, info)
