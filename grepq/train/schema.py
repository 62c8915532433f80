"""The training configuration (``grepq train``): :data:`TRAIN_SCHEMA`, in the machinery of :mod:`grepq.config`.

Every key is declared once in :data:`TRAIN_SCHEMA` with its default, its type and a note naming the paper symbol and
its source (paper section, official code, grepq). The defaults are the paper's values; where the paper is
silent the official code's value is used and the note says so. Presets in ``configs/`` override some keys:

=====================  =====================================================================================
``ll_paper.yaml``      LL, paper (docs/method.md §2): D = 8 distorted versions, QACL Eq. 1
``ll_official.yaml``   LL, official code: all 9 files of a folder, the official cross-view QACL
``hl_paper.yaml``      HL, paper (docs/method.md §3): k = 8 → M = 16, τ2 = 0.1, Adam 5e-6, trained head
``hl_official.yaml``   HL, official code: M = 128 / 32 = 4, τ2 = 0.5, lr 1e-6 with 2.5 epochs of warm-up,
                       head Linear+ReLU frozen at its random init (never given to the optimiser)
``hl_authors.yaml``    HL, the authors' answer in the official repository's issue #2: M = 8, lr 1e-5
=====================  =====================================================================================

**Resuming.** :func:`config_differences` lists the keys in which two configurations differ, ignoring
:data:`MAY_DIFFER_ON_RESUME` (where to run, how often to log, when to stop early) and the section of the task
that is not trained. The number of epochs may **not** differ: it sets the length of the learning-rate
schedule, so a run extended by changing it would match no uninterrupted run. To stop a run early and continue
it later, set the final ``epochs`` and stop with ``run.max_epochs`` / ``run.max_steps`` (allowed to differ).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..config import ConfigError, Key, Schema, defaults, flatten, load_config

__all__ = ["TRAIN_SCHEMA", "TASKS", "MAY_DIFFER_ON_RESUME", "load_train_config", "config_differences"]

TASKS = ("ll", "hl")

_NUM = (int, float)
_BN_MODES = ("global", "train", "sync", "frozen")
_SCHEDULES = ("cosine", "constant")

# Every paper constant is a key here, with its symbol and source.
_TREE: Dict[str, Any] = {
    "task": Key("ll", str, "model to train: ll (low-level, method.md §2) or hl (high-level, method.md §3)", TASKS),
    "seed": Key(0, int, "seeds the model's initialisation and every random choice of the data, which derive from "
                        "(seed, epoch, sample index) only"),
    "run": {
        "dir": Key(None, str, "run directory: config.yaml, run_info.json, log.jsonl, checkpoint.pth, weights",
                   nullable=True),
        "device": Key(None, str, "cpu, cuda or cuda:N; null: cuda:LOCAL_RANK when CUDA is available, else cpu",
                      nullable=True),
        "deterministic": Key(False, bool, "torch.use_deterministic_algorithms(True) (CUDA: warn_only, since some "
                                          "kernels have no deterministic version)"),
        "amp": Key("off", str, "mixed precision of the models' forward passes: 'off' = float32, the reference "
                               "(paper, official); 'bf16' or 'fp16' (with gradient scaling) = torch.autocast, faster "
                               "on "
                               "recent GPUs, results differ from float32 by rounding; losses stay float32; a "
                               "non-finite "
                               "loss stops the run under fp16 too (use bf16 if fp16 activations overflow)",
                   ("off", "bf16", "fp16")),
        "channels_last": Key(False, bool, "channels_last memory format for the model and its image inputs (faster "
                                          "convolutions on recent GPUs; the same values up to float32 rounding)"),
        "max_steps": Key(None, int, "stop after this many optimiser steps; the schedule still spans all epochs, "
                                    "so a stopped run is a prefix of the full run and can be resumed", nullable=True),
        "max_epochs": Key(None, int, "stop after this many epochs (like max_steps)", nullable=True),
        "max_seconds": Key(None, (int, float),
                           "stop after this many seconds of training, a time budget (like max_steps: "
                                        "the schedule still spans all epochs; which step it stops at depends on "
                                        "the machine's speed)", nullable=True),
        "checkpoint_every": Key(500, int, "write checkpoint.pth every N optimiser steps (and at the end); the "
                                          "official code wrote one every step"),
        "log_every": Key(10, int, "one JSON line in log.jsonl every N steps (and one per epoch)"),
        "tensorboard": Key(False, bool, "also write TensorBoard scalars (only if the tensorboard package is "
                                        "installed; a warning otherwise)"),
        "progress": Key(True, bool, "tqdm progress bar on rank 0"),
    },
    "data": {
        "root": Key(None, str, "folder of image folders: grepq prepare's output (<name>/<name>_REF.png, "
                               "the distorted versions, fsim.npy, versions.json) or the official layout",
                    nullable=True),
        "limit": Key(None, int, "use only the first N image folders (sorted by name)", nullable=True),
        "num_workers": Key(4, int, "DataLoader worker processes (official: 4); the data do not depend on it"),
        "pin_memory": Key(True, bool, "pinned host memory for CUDA transfers (official: True; ignored on CPU)"),
    },
    "ll": {
        "versions": Key("distorted", str, "the D versions of an image folder: 'distorted' = the distortions only "
                                          "(paper §4: '8 distorted versions each', D = 8) or 'all' = every image "
                                          "file, reference included (official loader: 9)", ("distorted", "all")),
        "fsim_source": Key("auto", str, "where FSIM s of Eq. 1 comes from: 'stored' = the folder's fsim.npy, "
                                        "'compute' = piq.fsim per pair in the loader, float64 (official, slow), "
                                        "'auto' = stored when the folder has fsim.npy; used only with pair_weight "
                                        "'fsim'", ("auto", "stored", "compute")),
        "pair_weight": Key("fsim", str, "weight s_jk of a pair of versions in Eq. 1: 'fsim' (paper §3.2); Table 4's "
                                        "'ssim', 'ms_ssim', 'gmsd' (piq, computed in the loader; mapping to [0, 1] "
                                        "in grepq/data/pair_weights.py is grepq's, the paper gives none); 'none' = "
                                        "s ≡ 0, plain InfoNCE (Table 4's 'None' row). LPIPS is not provided",
                           ("fsim", "ssim", "ms_ssim", "gmsd", "none")),
        "grid": Key(7, int, "fragments: grid x grid cells (paper §4: 7x7; official get_spatial_fragments)"),
        "patch": Key(32, int, "mini-patch side in pixels (official fsize 32); the input is grid*patch = 224"),
        "flip_p": Key(0.5, _NUM, "positive view: probability of a horizontal and of a vertical flip, the same "
                                 "for every version (official RandomHorizontalFlip / RandomVerticalFlip p=0.5)"),
        "feat_dim": Key(128, int, "LL feature size, 'projected onto R^128' (paper §4)"),
        "hidden_dim": Key(512, int, "head hidden width (official MLP 512→512→ReLU→128)"),
        "loss": Key("paper", str, "QACL variant: 'paper' = Eq. 1 summed over images and versions, "
                                  "'official' = α-weighted cross-view form, averaged (method.md §2)",
                          ("paper", "official")),
        "temperature": Key(0.5, _NUM, "τ1 of Eq. 1 (paper §4, official 0.5)"),
        "batch_size": Key(8, int, "N_b images per step over all processes (paper §4: 8; official "
                                  "batch_size_qacl 8); must be divisible by the number of processes"),
        "epochs": Key(15, int, "epochs (paper §4, official 15)"),
        "optimizer": Key("adamw", str, "AdamW (paper §4, official)", ("adamw", "adam")),
        "lr": Key(1e-4, _NUM, "initial learning rate (paper §4: 10^-4; official lr_llm)"),
        "weight_decay": Key(0.05, _NUM, "AdamW weight decay on every parameter (paper §4, official 0.05)"),
        "betas": Key([0.9, 0.999], list, "Adam betas (torch defaults, as the official code)"),
        "schedule": Key("cosine", str, "'cosine' (paper §4 'a cosine learning rate scheduler'; official "
                                       "CosineAnnealingLR over all iterations) or 'constant'", _SCHEDULES),
        "eta_min": Key(1e-6, _NUM, "cosine floor (official eta_min 1e-6; the paper gives none)"),
        "warmup_epochs": Key(0.0, _NUM, "linear warm-up from 0 over this many epochs (none in paper or official)"),
        "bn": Key("global", str, "BatchNorm: 'global' = batch statistics of the whole global batch, what one "
                                 "process computes (the paper's and official single-GPU run; several processes: "
                                 "SyncBatchNorm on CUDA, grepq's CrossProcessBatchNorm on the CPU), 'train' = "
                                 "statistics of each process's part (the official code on several GPUs; the same "
                                 "as 'global' with one process), 'sync' (SyncBatchNorm, CUDA only), 'frozen' "
                                 "(eval-mode BN, running statistics fixed)", _BN_MODES),
        "drop_last": Key(False, bool, "drop the last incomplete batch of an epoch (official: False)"),
    },
    "hl": {
        "clip": Key("RN50", str, "CLIP weights: a model name, OpenAI's RN50.pt or a state-dict file (paper: "
                                 "RN50; see grepq.models.high_level.load_clip)"),
        "prompts": Key(["a good photo.", "a bad photo."], list, "z_g, z_b prompts of Eq. 2 (paper §3.3)"),
        "k2": Key(10.0, _NUM, "k2 of Eq. 2 (paper §4: 10; official divides by 0.1)"),
        "pos_embedding": Key("drop", str, "attention-pool positional embedding while training: the official "
                                          "training ran clip.load('RN50') with the user's edited CLIP (the line "
                                          "adding it commented out, as its README asks), i.e. 'drop'; 'keep' "
                                          "(CLIP as trained, needs crop 224) and 'interpolate' also run",
                             ("drop", "interpolate", "keep")),
        "head_dim": Key(128, int, "projection head output, R^128 (paper §4; official ProjectionHead 1024→128)"),
        "head_activation": Key("none", str, "after the head's Linear: 'none' (paper: a projection) or 'relu' "
                                            "(official ProjectionHead)", ("none", "relu")),
        "head_trainable": Key(True, bool, "train the head with the encoder (paper); the official code never "
                                          "gives it to the optimiser, so it stays at its random init"),
        "group_divisor": Key(8, int, "k of M = round(N/k) (paper §4: k = 8 → M = 16; the official config's "
                                     "'tau': 32 → M = 4)"),
        "group_size": Key(None, int, "M directly, overriding group_divisor (authors' issue answer: 8)",
                          nullable=True),
        "loss": Key("paper", str, "GCL variant: 'paper' = Eq. 3, 'official' = the official mean-positive form "
                                  "(docs/method.md §3)", ("paper", "official")),
        "temperature": Key(0.1, _NUM, "τ2 of Eq. 3 (paper §4: 0.1; official loss default 0.5)"),
        "crop": Key(224, int, "centre-crop side (paper §4, official crop_size 224); no resize before it"),
        "small_crop": Key("pad", str, "images under crop x crop: 'pad' = torchvision CenterCrop zero-pads the "
                                      "normalised tensor (official), 'resize' = short side resized to crop first "
                                      "(bicubic, antialiased)", ("pad", "resize")),
        "batch_size": Key(128, int, "N images per step over all processes (paper §4, official 128); groups "
                                    "are formed over this global batch"),
        "epochs": Key(15, int, "epochs (paper §4, official, authors: 15)"),
        "optimizer": Key("adam", str, "Adam (paper §4, official)", ("adam", "adamw")),
        "lr": Key(5e-6, _NUM, "initial learning rate (paper §4: 5e-6; official 1e-6; authors 1e-5)"),
        "weight_decay": Key(0.0, _NUM, "weight decay (none in paper or official)"),
        "betas": Key([0.9, 0.999], list, "Adam betas (torch defaults, as the official code)"),
        "schedule": Key("constant", str, "'constant' (paper gives only an initial lr; official LambdaLR is "
                                         "constant after its warm-up) or 'cosine'", _SCHEDULES),
        "eta_min": Key(0.0, _NUM, "cosine floor (only with schedule: cosine)"),
        "warmup_epochs": Key(0.0, _NUM, "linear warm-up from 0 over this many epochs (official: 2.5; the "
                                        "official factor is step / warm-up steps, 0 at the first step)"),
        "bn": Key("global", str, "BatchNorm of CLIP's ResNet (the official fine-tuning runs it in train mode): "
                                 "'global' = batch statistics of the whole global batch, what one process computes "
                                 "(several processes: SyncBatchNorm on CUDA, grepq's CrossProcessBatchNorm on the "
                                 "CPU), 'train' = statistics of each process's part (the same as 'global' with one "
                                 "process), 'sync' (SyncBatchNorm, CUDA only), 'frozen' (eval-mode BN, running "
                                 "statistics fixed)", _BN_MODES),
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
    """Keys whose values differ, as ``(key, saved, current)``, ignoring ``ignore`` and the untrained task's section.

    A key the saved configuration lacks (written by a grepq version before the key existed) counts as that version's
    behaviour, the key's default: e.g. ``run.amp`` is "off" in runs made before mixed precision was an option.
    """
    a = dict(flatten(defaults(TRAIN_SCHEMA)), **flatten(saved))
    b = flatten(current)
    task = current.get("task")
    other = [t for t in TASKS if t != task]
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or any(key.startswith(t + ".") for t in other):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append((key, a.get(key, "<absent>"), b.get(key, "<absent>")))
    return out
