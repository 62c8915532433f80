"""The training configuration (``grepq train``): :data:`TRAIN_SCHEMA`, each key with its default and a note naming
its symbol and source. Defaults are the paper's values, else the official code's. Presets in ``configs/``:
``ll_paper`` / ``hl_paper`` (docs/method.md §2, §3), ``ll_official`` / ``hl_official`` (the official code),
``hl_authors`` (the authors' answer in the official repository's issue #2: M = 8, lr 1e-5).

**Resuming.** :func:`config_differences` lists the keys in which two configurations differ, ignoring
:data:`MAY_DIFFER_ON_RESUME` and the untrained task's section. ``epochs`` may not differ (it sets the schedule's
length): to stop early and continue later, stop with ``run.max_epochs`` / ``run.max_steps``.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..config import ConfigError, Key, Schema, flatten, load_config

__all__ = ["TRAIN_SCHEMA", "TASKS", "MAY_DIFFER_ON_RESUME", "load_train_config", "config_differences"]

TASKS = ("ll", "hl")

_NUM = (int, float)
_BN_MODES = ("global", "train", "sync", "frozen")
_SCHEDULES = ("cosine", "constant")


def _optimisation(batch_size: Tuple, epochs: Tuple, optimizer: Tuple, lr: Tuple, weight_decay: Tuple,
                  schedule: Tuple, eta_min: Tuple, warmup_epochs: Tuple) -> Dict[str, Key]:
    """The optimisation keys of one model, in order; each argument is (default, source, note)."""
    def key(arg: Tuple, kind, choices=None) -> Key:
        return Key(arg[0], kind, arg[2], choices, source=arg[1])

    return {
        "batch_size": key(batch_size, int), "epochs": key(epochs, int),
        "optimizer": key(optimizer, str, ("adamw", "adam")), "lr": key(lr, _NUM),
        "weight_decay": key(weight_decay, _NUM),
        "betas": Key([0.9, 0.999], list, "Adam betas (torch defaults, as the official code)", source="official"),
        "schedule": key(schedule, str, _SCHEDULES), "eta_min": key(eta_min, _NUM),
        "warmup_epochs": key(warmup_epochs, _NUM),
        "bn": Key("global", str, "BatchNorm: 'global' = statistics of the whole global batch, what one process "
                                 "computes (the paper's and official single-GPU run); 'train' = of each process's "
                                 "part (the official code on several GPUs); 'sync' (SyncBatchNorm, CUDA only); "
                                 "'frozen' (eval-mode BN, running statistics fixed)", _BN_MODES, source="official"),
    }


# Every paper constant is a key here, with its symbol and source.
_TREE: Dict[str, Any] = {
    "task": Key("ll", str, "model to train: ll (low-level, method.md §2) or hl (high-level, method.md §3)", TASKS,
                source="grepq"),
    "seed": Key(0, int, "seeds the model's initialisation and every random choice of the data, which derive from "
                        "(seed, epoch, sample index) only", source="grepq"),
    "run": {
        "dir": Key(None, str, "run directory: config.yaml, run_info.json, log.jsonl, checkpoint.pth, weights",
                   nullable=True, source="grepq"),
        "device": Key(None, str, "cpu, cuda or cuda:N; null: cuda:LOCAL_RANK when CUDA is available, else cpu",
                      nullable=True, source="grepq"),
        "deterministic": Key(False, bool, "torch.use_deterministic_algorithms(True) (CUDA: warn_only)", source="grepq"),
        "amp": Key("off", str, "mixed precision of the forward passes: 'off' = float32, the reference; 'bf16' or "
                               "'fp16' (with gradient scaling) = torch.autocast, faster, results differ by rounding; "
                               "losses stay float32", ("off", "bf16", "fp16"), source="grepq"),
        "channels_last": Key(False, bool, "channels_last memory format for the model and its inputs (faster "
                                          "convolutions on recent GPUs; the same values up to rounding)",
                             source="grepq"),
        "max_steps": Key(None, int, "stop after this many optimiser steps; the schedule still spans all epochs, "
                                    "so a stopped run is a prefix of the full run and can be resumed", nullable=True,
                         source="grepq"),
        "max_epochs": Key(None, int, "stop after this many epochs (like max_steps)", nullable=True, source="grepq"),
        "max_seconds": Key(None, _NUM, "stop after this many seconds of training (like max_steps; the step it "
                                       "stops at depends on the machine's speed)", nullable=True, source="grepq"),
        "checkpoint_every": Key(500, int, "write checkpoint.pth every N optimiser steps and at the end (official: "
                                          "every step)", source="grepq"),
        "log_every": Key(10, int, "one JSON line in log.jsonl every N steps (and one per epoch)", source="grepq"),
        "tensorboard": Key(False, bool, "also write TensorBoard scalars (if the tensorboard package is installed)",
                           source="grepq"),
        "progress": Key(True, bool, "tqdm progress bar on rank 0", source="grepq"),
    },
    "data": {
        "root": Key(None, str, "folder of image folders: grepq prepare's output or the official layout",
                    nullable=True, source="grepq"),
        "limit": Key(None, int, "use only the first N image folders (sorted by name)", nullable=True, source="grepq"),
        "num_workers": Key(4, int, "DataLoader worker processes (official: 4); the data do not depend on it",
                           source="official"),
        "pin_memory": Key(True, bool, "pinned host memory for CUDA transfers (official: True; ignored on CPU)",
                          source="official"),
    },
    "ll": {
        "versions": Key("distorted", str, "the D versions of an image folder: 'distorted' (paper §4.1: '8 "
                                          "distorted versions each', D = 8) or 'all', reference included (official "
                                          "loader: 9)", ("distorted", "all"), source="paper"),
        "fsim_source": Key("auto", str, "FSIM s of Eq. 1: 'stored' (the folder's fsim.npy), 'compute' (piq.fsim "
                                        "per pair in the loader, float64, as official) or 'auto' (stored when "
                                        "present)", ("auto", "stored", "compute"), source="grepq"),
        "pair_weight": Key("fsim", str, "pair weight s_jk of Eq. 1: 'fsim' (paper §3.1); Table 4's 'ssim', "
                                        "'ms_ssim', 'gmsd' (piq, mapped to [0, 1] by grepq/data/pair_weights.py); "
                                        "'none' = s ≡ 0, plain InfoNCE", ("fsim", "ssim", "ms_ssim", "gmsd", "none"),
                           source="paper"),
        "grid": Key(7, int, "fragments: grid x grid cells (paper §4.1: 7x7; official get_spatial_fragments)",
                    source="paper"),
        "patch": Key(32, int, "mini-patch side in pixels (official fsize 32); the input is grid*patch = 224",
                     source="official"),
        "flip_p": Key(0.5, _NUM, "positive view: probability of a horizontal and of a vertical flip, the same for "
                                 "every version (official p=0.5)", source="official"),
        "feat_dim": Key(128, int, "LL feature size, 'projected onto R^128' (paper §4.1)", source="paper"),
        "hidden_dim": Key(512, int, "head hidden width (official MLP 512→512→ReLU→128)", source="official"),
        "loss": Key("paper", str, "QACL variant: 'paper' = Eq. 1 summed over images and versions, 'official' = "
                                  "α-weighted cross-view form, averaged (method.md §2)", ("paper", "official"),
                    source="paper"),
        "temperature": Key(0.5, _NUM, "τ1 of Eq. 1 (paper §4.1, official 0.5)", source="paper"),
        **_optimisation(
            batch_size=(8, "paper", "N_b images per step over all processes (paper §4.1, official 8)"),
            epochs=(15, "paper", "epochs (paper §4.1, official 15)"),
            optimizer=("adamw", "paper", "AdamW (paper §4.1, official)"),
            lr=(1e-4, "paper", "initial learning rate (paper §4.1: 10^-4)"),
            weight_decay=(0.05, "paper", "AdamW weight decay (paper §4.1, official 0.05)"),
            schedule=("cosine", "paper", "'cosine' (paper §4.1; official CosineAnnealingLR over all iterations) or "
                                "'constant'"),
            eta_min=(1e-6, "official", "cosine floor (official 1e-6; the paper gives none)"),
            warmup_epochs=(0.0, "paper", "linear warm-up from 0 over this many epochs (none in paper or official)")),
        "drop_last": Key(False, bool, "drop the last incomplete batch of an epoch (official: False)",
                         source="official"),
    },
    "hl": {
        "clip": Key("RN50", str, "CLIP weights: a model name, OpenAI's RN50.pt or a state-dict file (paper: RN50)",
                    source="paper"),
        "prompts": Key(["a good photo.", "a bad photo."], list, "z_g, z_b prompts of Eq. 2 (paper §3.2)",
                       source="paper"),
        "k2": Key(10.0, _NUM, "k2 of Eq. 2 (paper §4.1: 10; official divides by 0.1)", source="paper"),
        "pos_embedding": Key("drop", str, "attention-pool positional embedding: 'drop' (the official training's "
                                          "edited CLIP, as its README asks), 'keep' (CLIP as trained, crop 224) or "
                                          "'interpolate'", ("drop", "interpolate", "keep"), source="official"),
        "head_dim": Key(128, int, "projection head output, R^128 (paper §4.1; official 1024→128)", source="paper"),
        "head_activation": Key("none", str, "after the head's Linear: 'none' (paper: a projection) or 'relu' "
                                            "(official ProjectionHead)", ("none", "relu"), source="paper"),
        "head_trainable": Key(True, bool, "train the head with the encoder (paper); the official code never gives "
                                          "it to the optimiser, so it stays at its random init", source="paper"),
        "group_divisor": Key(8, int, "k of M = round(N/k) (paper §4.1: k = 8 → M = 16; official 'tau' 32 → M = 4)",
                             source="paper"),
        "group_size": Key(None, int, "M directly, overriding group_divisor (authors' issue answer: 8)",
                          nullable=True, source="paper"),
        "loss": Key("paper", str, "GCL variant: 'paper' = Eq. 3, 'official' = the official mean-positive form "
                                  "(docs/method.md §3)", ("paper", "official"), source="paper"),
        "temperature": Key(0.1, _NUM, "τ2 of Eq. 3 (paper §4.1: 0.1; official loss default 0.5)", source="paper"),
        "crop": Key(224, int, "centre-crop side (paper §4.1, official 224); no resize before it", source="paper"),
        "small_crop": Key("pad", str, "images under crop x crop: 'pad' (CenterCrop zero-pads, official) or "
                                      "'resize' (short side to crop first, bicubic)", ("pad", "resize"),
                          source="official"),
        **_optimisation(
            batch_size=(128, "paper", "N images per step over all processes, the groups' batch (paper §4.1, "
                                      "official 128)"),
            epochs=(15, "paper", "epochs (paper §4.1, official, authors: 15)"),
            optimizer=("adam", "paper", "Adam (paper §4.1, official)"),
            lr=(5e-6, "paper", "initial learning rate (paper §4.1: 5e-6; official 1e-6; authors 1e-5)"),
            weight_decay=(0.0, "paper", "weight decay (none in paper or official)"),
            schedule=("constant", "paper", "'constant' (the paper gives only an initial lr; official LambdaLR is "
                                           "constant after its warm-up) or 'cosine'"),
            eta_min=(0.0, "grepq", "cosine floor (only with schedule: cosine)"),
            warmup_epochs=(0.0, "paper", "linear warm-up from 0 over this many epochs (official: 2.5)")),
    },
}

#: Keys whose values may change between a run and its resumption (flattened names).
MAY_DIFFER_ON_RESUME = (
    "run.dir", "run.device", "run.max_steps", "run.max_epochs", "run.max_seconds", "run.checkpoint_every",
    "run.log_every", "run.channels_last",
    "run.tensorboard", "run.progress", "data.root", "data.num_workers", "data.pin_memory",
)


def _check_train(cfg: Dict[str, Any]) -> None:
    """The training schema's checks of values that must agree."""
    flat = flatten(cfg)
    for section in TASKS:
        s = cfg[section]
        for name in ("batch_size", "epochs"):
            if s[name] < 1:
                raise ConfigError(f"{section}.{name}: expected a positive integer, got {s[name]}")
        if not s["lr"] > 0:
            raise ConfigError(f"{section}.lr: expected a positive learning rate, got {s['lr']}")
        if not s["temperature"] > 0:
            raise ConfigError(f"{section}.temperature: expected a positive temperature, got {s['temperature']}")
        if s["warmup_epochs"] < 0 or s["eta_min"] < 0 or s["weight_decay"] < 0:
            raise ConfigError(f"{section}: warmup_epochs, eta_min and weight_decay must be >= 0")
        if len(s["betas"]) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in s["betas"]):
            raise ConfigError(f"{section}.betas: expected two numbers in [0, 1), got {s['betas']}")
    ll, hl = cfg["ll"], cfg["hl"]
    if ll["grid"] < 1 or ll["patch"] < 1:
        raise ConfigError(f"ll.grid and ll.patch must be positive, got {ll['grid']} and {ll['patch']}")
    if not 0 <= ll["flip_p"] <= 1:
        raise ConfigError(f"ll.flip_p: expected a probability, got {ll['flip_p']}")
    if len(hl["prompts"]) != 2 or not all(isinstance(p, str) for p in hl["prompts"]):
        raise ConfigError(f"hl.prompts: expected two strings (good, bad), got {hl['prompts']}")
    if hl["crop"] < 32:
        raise ConfigError(f"hl.crop: CLIP's ResNet needs at least 32 pixels, got {hl['crop']}")
    if hl["group_divisor"] < 1:
        raise ConfigError(f"hl.group_divisor: expected k >= 1, got {hl['group_divisor']}")
    for key in ("run.checkpoint_every", "run.log_every"):
        if flat[key] < 1:
            raise ConfigError(f"{key}: expected a positive integer, got {flat[key]}")
    for key in ("run.max_steps", "run.max_epochs", "data.limit"):
        if flat[key] is not None and flat[key] < 1:
            raise ConfigError(f"{key}: expected a positive integer or null, got {flat[key]}")
    if flat["run.max_seconds"] is not None and not flat["run.max_seconds"] > 0:
        raise ConfigError(f"run.max_seconds: expected a positive number or null, got {flat['run.max_seconds']}")
    if flat["data.num_workers"] < 0:
        raise ConfigError(f"data.num_workers: expected >= 0, got {flat['data.num_workers']}")


TRAIN_SCHEMA = Schema("train", _TREE, _check_train)


def load_train_config(path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = (),
                      values: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """:func:`grepq.config.load_config` in :data:`TRAIN_SCHEMA`: defaults, the YAML file or preset, ``values``,
    then ``key=value`` overrides; validated."""
    return load_config(path, overrides, schema=TRAIN_SCHEMA, values=values)


def config_differences(saved: Dict[str, Any], current: Dict[str, Any],
                       ignore: Sequence[str] = MAY_DIFFER_ON_RESUME) -> List[Tuple[str, Any, Any]]:
    """Keys whose values differ, as ``(key, saved, current)``, ignoring ``ignore`` and the untrained task's section."""
    a, b = flatten(saved), flatten(current)
    other = [t for t in TASKS if t != current.get("task")]
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or any(key.startswith(t + ".") for t in other):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append((key, a.get(key, "<absent>"), b.get(key, "<absent>")))
    return out
