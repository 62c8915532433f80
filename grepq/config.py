"""Configuration of training, evaluation and reproduction: defaults → YAML file(s) → command-line options →
``key.sub=value`` overrides, strict and saved. One machinery, three schemas (:class:`Schema`):

* :data:`TRAIN_SCHEMA` (``grepq train``; its tree is :data:`SCHEMA`, below);
* :data:`EVAL_SCHEMA` (``grepq eval``): sections ``weights``, ``scoring``, ``data``, ``protocol``, ``output``;
  each key names its source (``paper`` / ``official`` / ``authors`` / ``grepq``, :data:`SOURCES`). The option
  names of ``grepq eval`` map onto keys by :data:`EVAL_OPTIONS`;
* :data:`REPRODUCE_SCHEMA` (``grepq reproduce``): the same ``weights``, ``scoring``, ``protocol``, ``output``
  sections, plus ``datasets`` (a root per dataset) and ``tables``.

``--print-config`` of each command prints the resolved configuration with every key's source and note.
Training:

Every key is declared once in :data:`SCHEMA` with its default, its type and a note naming the paper symbol and
its source (paper section, official code, SPEC section). The defaults are the paper's values; where the paper is
silent the official code's value is used and the note says so. Presets in ``configs/`` override some keys:

=====================  =====================================================================================
``ll_paper.yaml``      LL, paper (SPEC §2): D = 8 distorted versions, QACL Eq. 1
``ll_official.yaml``   LL, official code: all 9 files of a folder, the official cross-view QACL
``hl_paper.yaml``      HL, paper (SPEC §3): k = 8 → M = 16, τ2 = 0.1, Adam 5e-6, trained head
``hl_official.yaml``   HL, official code: M = 128 / 32 = 4, τ2 = 0.5, lr 1e-6 with 2.5 epochs of warm-up,
                       head Linear+ReLU frozen at its random init (never given to the optimiser)
``hl_authors.yaml``    HL, the authors' answer in the official repository's issue #2: M = 8, lr 1e-5
=====================  =====================================================================================

Rules:

* **Strict.** An unknown key (in a YAML file or an override) is an error naming the key and suggesting the
  closest valid one; a value of the wrong type or outside its choices is an error naming the key.
* **Overrides.** ``key.sub=value``; the value is parsed with ``yaml.safe_load`` (``null``, ``true``, ``[a, b]``);
  a float key also accepts ``1e-5`` (which YAML 1.1 reads as a string).
* **Inheritance.** A YAML file may start with ``base: other.yaml`` (a path relative to that file, or a preset
  name); the base is loaded first, then this file's keys are applied on top.
* **Resuming.** :func:`config_differences` lists the keys in which two configurations differ, ignoring
  :data:`MAY_DIFFER_ON_RESUME` (where to run, how often to log, when to stop early) and the section of the task
  that is not trained. The number of epochs may **not** differ: it sets the length of the learning-rate
  schedule, so a run extended by changing it would match no uninterrupted run. To stop a run early and continue
  it later, set the final ``epochs`` and stop with ``run.max_epochs`` / ``run.max_steps`` (allowed to differ).
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

__all__ = [
    "ConfigError", "Key", "Schema", "SCHEMA", "SOURCES", "MAY_DIFFER_ON_RESUME", "TASKS",
    "TRAIN_SCHEMA", "EVAL_SCHEMA", "REPRODUCE_SCHEMA", "EVAL_OPTIONS",
    "defaults", "load_config", "apply_overrides", "set_values", "parse_override", "validate", "flatten",
    "dump_config", "config_differences", "resolve_config_path", "describe",
]

TASKS = ("ll", "hl")
PRESET_DIRS = (Path(__file__).resolve().parent.parent / "configs", Path(__file__).resolve().parent / "configs")


class ConfigError(ValueError):
    """A configuration is invalid: an unknown key, a wrong type, a bad value or an unreadable file."""


#: Where a key's default comes from: the paper, the official code, the authors' answers, or grepq's own choice
#: (where the paper and the official code are silent, or for where/how to run, which changes no result).
SOURCES = ("paper", "official", "authors", "grepq")


@dataclass(frozen=True)
class Key:
    """One configuration key: its default, accepted type(s), allowed values and a note (symbol and source).

    ``source`` (one of :data:`SOURCES`) names where the default comes from; the training keys name it in their
    note. ``items``: for a list key, the type of its items; a string value is then split on commas
    (``"50,100,200"`` -> ``[50, 100, 200]``), as command-line options give lists.
    """

    default: Any
    type: Union[type, Tuple[type, ...]]
    doc: str
    choices: Optional[Tuple[Any, ...]] = None
    nullable: bool = False
    source: Optional[str] = None
    items: Optional[type] = None


_NUM = (int, float)
_BN_MODES = ("global", "train", "sync", "frozen")
_SCHEDULES = ("cosine", "constant")

# Every paper constant is a key here, with its symbol and source.
SCHEMA: Dict[str, Any] = {
    "task": Key("ll", str, "model to train: ll (low-level, SPEC §2) or hl (high-level, SPEC §3)", TASKS),
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
                               "(paper, official); 'bf16' or 'fp16' (with gradient scaling) = torch.autocast, faster on "
                               "recent GPUs, results differ from float32 by rounding; losses stay float32; a non-finite "
                               "loss stops the run under fp16 too (use bf16 if fp16 activations overflow)",
                   ("off", "bf16", "fp16")),
        "channels_last": Key(False, bool, "channels_last memory format for the model and its image inputs (faster "
                                          "convolutions on recent GPUs; the same values up to float32 rounding)"),
        "max_steps": Key(None, int, "stop after this many optimiser steps; the schedule still spans all epochs, "
                                    "so a stopped run is a prefix of the full run and can be resumed", nullable=True),
        "max_epochs": Key(None, int, "stop after this many epochs (like max_steps)", nullable=True),
        "max_seconds": Key(None, (int, float), "stop after this many seconds of training, a time budget (like max_steps: "
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
                                        "in grepq/data/similarity.py is grepq's, the paper gives none); 'none' = "
                                        "s ≡ 0, plain InfoNCE (Table 4's 'None' row). LPIPS is not provided",
                           ("fsim", "ssim", "ms_ssim", "gmsd", "none")),
        "grid": Key(7, int, "fragments: grid x grid cells (paper §4: 7x7; official get_spatial_fragments)"),
        "patch": Key(32, int, "mini-patch side in pixels (official fsize 32); the input is grid*patch = 224"),
        "flip_p": Key(0.5, _NUM, "positive view: probability of a horizontal and of a vertical flip, the same "
                                 "for every version (official RandomHorizontalFlip / RandomVerticalFlip p=0.5)"),
        "feat_dim": Key(128, int, "LL feature size, 'projected onto R^128' (paper §4)"),
        "hidden_dim": Key(512, int, "head hidden width (official MLP 512→512→ReLU→128)"),
        "loss": Key("paper", str, "QACL variant: 'paper' = Eq. 1 summed over images and versions, "
                                  "'official' = α-weighted cross-view form, averaged (SPEC §2)", ("paper", "official")),
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
                                  "(SPEC §3)", ("paper", "official")),
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



# --------------------------------------------------------------------------------------------------------------
# Schemas: one machinery for training (SCHEMA above) and evaluation (EVAL_SCHEMA, REPRODUCE_SCHEMA below).
# Every function below takes ``schema`` (default: the training schema).


def _schema_items(tree: Dict[str, Any], prefix: str = ""):
    for name, node in tree.items():
        full = f"{prefix}{name}"
        if isinstance(node, Key):
            yield full, node
        else:
            yield from _schema_items(node, full + ".")


class Schema:
    """A configuration schema.

    Args:
        name: "train", "eval", "reproduce" (shown in errors).
        tree: nested dict of :class:`Key` (sections are dicts).
        check: whole-configuration checks ``check(cfg)`` raising :class:`ConfigError` (values that must agree).
    """

    def __init__(self, name: str, tree: Dict[str, Any], check: Optional[Callable[[Dict[str, Any]], None]] = None):
        self.name, self.tree, self.check = name, tree, check
        self.flat: Dict[str, Key] = dict(_schema_items(tree))
        bad = [k for k, v in self.flat.items() if v.source is not None and v.source not in SOURCES]
        if bad:
            raise ValueError(f"schema {name}: keys {bad} name a source outside {SOURCES}")

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, {len(self.flat)} keys)"


def _schema(schema: Optional[Schema]) -> Schema:
    return TRAIN_SCHEMA if schema is None else schema


def defaults(schema: Optional[Schema] = None) -> Dict[str, Any]:
    """The default configuration (the paper's values) as a nested dict."""

    def build(node):
        return {k: (copy.deepcopy(v.default) if isinstance(v, Key) else build(v)) for k, v in node.items()}

    return build(_schema(schema).tree)


def describe(key: str, schema: Optional[Schema] = None) -> str:
    """The note of a key (its symbol and source)."""
    spec = _key(key, schema=schema)
    return f"[{spec.source}] {spec.doc}" if spec.source else spec.doc


def _suggest(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    if not close:  # a misspelt last part of a dotted key
        last = key.rsplit(".", 1)[-1]
        cands = {k.rsplit(".", 1)[-1]: k for k in valid}
        near = difflib.get_close_matches(last, list(cands), n=1, cutoff=0.6)
        close = [cands[near[0]]] if near else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _key(key: str, where: str = "", schema: Optional[Schema] = None) -> Key:
    flat = _schema(schema).flat
    if key in flat:
        return flat[key]
    src = f" (in {where})" if where else ""
    if any(k.startswith(key + ".") for k in flat):
        sub = sorted(k for k in flat if k.startswith(key + "."))
        raise ConfigError(f"{key!r}{src} is a section, not a value; set one of its keys: {', '.join(sub)}")
    raise ConfigError(f"unknown configuration key {key!r}{src}{_suggest(key, flat)}")


def _split_items(key: str, spec: Key, value: Any, src: str) -> Any:
    """A list key with ``items``: "8,16" -> [8, 16]; every item converted to / checked as ``items``."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        return value
    out = []
    for v in value:
        try:
            if isinstance(v, bool) or (spec.items is int and isinstance(v, float) and not v.is_integer()):
                raise ValueError
            out.append(spec.items(v) if isinstance(v, (str, int, float)) else v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}{src}: expected a list of {spec.items.__name__}, got the item {v!r}") from None
        if not isinstance(out[-1], spec.items):
            raise ConfigError(f"{key}{src}: expected a list of {spec.items.__name__}, got the item {v!r}")
    return out


def _coerce(key: str, spec: Key, value: Any, where: str = "") -> Any:
    """Check (and lightly convert) a value for ``key``; raise :class:`ConfigError` naming the key."""
    src = f" (in {where})" if where else ""
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"{key}{src}: expected a value of type {_type_name(spec.type)}, got null")
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if spec.items is not None:
        value = _split_items(key, spec, value, src)
    if float in types and isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{key}{src}: expected {_type_name(spec.type)}, got the boolean {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{key}{src}: expected {_type_name(spec.type)}, got {type(value).__name__} {value!r}")
    if float in types and isinstance(value, int):
        value = float(value)
    if spec.choices is not None:
        wrong = [v for v in (value if isinstance(value, list) else [value]) if v not in spec.choices]
        if wrong:
            raise ConfigError(f"{key}{src}: expected {'items in' if isinstance(value, list) else 'one of'} "
                              f"{list(spec.choices)}, got {wrong[0]!r}"
                              f"{_suggest(str(wrong[0]), [str(c) for c in spec.choices]).replace('did you mean', 'closest')}")
    return value


def _type_name(t) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join(x.__name__ for x in types)


def flatten(cfg: Dict[str, Any], prefix: str = "", schema: Optional[Schema] = None) -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; with ``schema``, a mapping that is one key's value (e.g. a loader's
    options) stays a value."""
    out: Dict[str, Any] = {}
    leaves = _schema(schema).flat if schema is not None else {}
    for k, v in cfg.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in leaves:
            out.update(flatten(v, f"{prefix}{k}.", schema))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set(cfg: Dict[str, Any], key: str, value: Any) -> None:
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def set_values(cfg: Dict[str, Any], values: Mapping[str, Any], where: str = "command line",
               schema: Optional[Schema] = None) -> Dict[str, Any]:
    """Set ``{"key.sub": value}`` (dotted keys, Python values, e.g. from command-line options) strictly; returns
    ``cfg`` (modified in place)."""
    schema = _schema(schema)
    for key, value in values.items():
        key, value = _into_mapping(cfg, key, value, schema)
        _set(cfg, key, _coerce(key, _key(key, where, schema), value, where))
    return cfg


def _into_mapping(cfg: Dict[str, Any], key: str, value: Any, schema: Schema) -> Tuple[str, Any]:
    """``datasets.clive.root=/x`` where ``datasets`` is a mapping-valued key: that key, with the entry set."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        leaf = ".".join(parts[:i])
        if leaf in schema.flat and schema.flat[leaf].type is dict:
            node = cfg
            for p in parts[:i]:
                node = node[p]
            whole = copy.deepcopy(node) if isinstance(node, dict) else {}
            inner = whole
            for p in parts[i:-1]:
                if inner.get(p) is None:
                    inner[p] = {}
                if not isinstance(inner[p], dict):
                    raise ConfigError(f"{key}: {p!r} holds {inner[p]!r}, not a mapping")
                inner = inner[p]
            inner[parts[-1]] = value
            return leaf, whole
    return key, value


def _merge(cfg: Dict[str, Any], update: Dict[str, Any], where: str, schema: Optional[Schema] = None) -> None:
    """Apply a nested dict of values onto ``cfg`` strictly (every key must exist in the schema)."""
    schema = _schema(schema)
    set_values(cfg, flatten(update, schema=schema), where, schema)
    # sections given as non-dicts ("run: 3") are caught by _key via flatten: "run" is a section
    for key, value in update.items():
        if key in schema.tree and not isinstance(schema.tree[key], Key) and not isinstance(value, dict):
            raise ConfigError(f"{key!r} (in {where}) is a section: expected a mapping, got {value!r}")


# --------------------------------------------------------------------------------------------------------------
# Files and overrides


def resolve_config_path(name: Union[str, os.PathLike], relative_to: Optional[Path] = None) -> Path:
    """A config file: the path as given (or relative to ``relative_to``), else a preset name in ``configs/``."""
    p = Path(name).expanduser()
    candidates = [p]
    if relative_to is not None and not p.is_absolute():
        candidates.insert(0, relative_to / p)
    for d in PRESET_DIRS:
        candidates += [d / p.name, d / f"{p.name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    presets = sorted({f.name for d in PRESET_DIRS if d.is_dir() for f in d.glob("*.yaml")})
    raise ConfigError(f"config file {str(name)!r} not found (presets: {', '.join(presets) or 'none found'})")


def _read_yaml(path: Path, chain: Tuple[Path, ...] = ()) -> List[Tuple[Path, Dict[str, Any]]]:
    """The chain of (file, mapping) to apply, bases first."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: circular 'base' chain: {' -> '.join(str(c) for c in chain + (path,))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the YAML file ({type(exc).__name__}: {exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of configuration keys, got {type(data).__name__}")
    base = data.pop("base", None)
    out: List[Tuple[Path, Dict[str, Any]]] = []
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
        out += _read_yaml(resolve_config_path(base, relative_to=path.parent), chain + (path,))
    out.append((path, data))
    return out


def parse_override(text: str) -> Tuple[str, Any]:
    """``"hl.lr=1e-5"`` -> ``("hl.lr", 1e-5)``; the value is parsed with ``yaml.safe_load``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.sub=value (e.g. hl.lr=1e-5)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: missing key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse the value ({exc})") from None
    return key, value


def apply_overrides(cfg: Dict[str, Any], overrides: Sequence[str], schema: Optional[Schema] = None) -> Dict[str, Any]:
    """Apply ``key.sub=value`` overrides strictly; returns ``cfg`` (modified in place)."""
    for text in overrides:
        key, value = parse_override(text)
        set_values(cfg, {key: value}, f"override {text!r}", schema)
    return cfg


def validate(cfg: Dict[str, Any], schema: Optional[Schema] = None) -> Dict[str, Any]:
    """Whole-config checks: every key present and well typed, and values that must agree with each other."""
    schema = _schema(schema)
    flat = flatten(cfg, schema=schema)
    for key in flat:
        _coerce(key, _key(key, schema=schema), flat[key])
    missing = [k for k in schema.flat if k not in flat]
    if missing:
        raise ConfigError(f"configuration lacks keys {missing}")
    if schema.check is not None:
        schema.check(cfg)
    return cfg


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


def load_config(path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = (),
                schema: Optional[Schema] = None, values: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Defaults, then the YAML file (and its ``base`` chain), then ``values`` (``{"key.sub": value}``, e.g. from
    command-line options), then ``key=value`` overrides; validated. ``schema``: default the training schema."""
    cfg = defaults(schema)
    if path is not None:
        for file, data in _read_yaml(resolve_config_path(path)):
            _merge(cfg, data, str(file), schema)
    set_values(cfg, dict(values or {}), "command line", schema)
    apply_overrides(cfg, overrides, schema)
    return validate(cfg, schema)


def _scalar_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def dump_config(cfg: Dict[str, Any], comments: bool = True, schema: Optional[Schema] = None) -> str:
    """The configuration as YAML (one key per line); with ``comments``, each key's note (source, symbol)."""
    flat = _schema(schema).flat
    lines: List[str] = []

    def emit(node: Dict[str, Any], prefix: str, indent: int) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            pad = "  " * indent
            if isinstance(v, dict) and key not in flat:
                lines.append(f"{pad}{k}:")
                emit(v, key + ".", indent + 1)
                continue
            block = isinstance(v, dict) and v
            line = f"{pad}{k}:" + ("" if block else f" {_scalar_yaml(v)}")
            if comments and key in flat:
                line += f"  # {describe(key, schema)}"
            lines.append(line)
            if block:
                sub = yaml.safe_dump(v, default_flow_style=None, sort_keys=False, width=1000).rstrip("\n")
                lines.extend(f"{pad}  {s}" for s in sub.split("\n"))

    emit(cfg, "", 0)
    return "\n".join(lines) + "\n"


def config_differences(saved: Dict[str, Any], current: Dict[str, Any],
                       ignore: Sequence[str] = MAY_DIFFER_ON_RESUME) -> List[Tuple[str, Any, Any]]:
    """Keys whose values differ, as ``(key, saved, current)``, ignoring ``ignore`` and the untrained task's section.

    A key the saved configuration lacks (written by a grepq version before the key existed) counts as that version's
    behaviour, the key's default: e.g. ``run.amp`` is "off" in runs made before mixed precision was an option.
    """
    a = dict(flatten(defaults()), **flatten(saved))
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


TRAIN_SCHEMA = Schema("train", SCHEMA, _check_train)


# --------------------------------------------------------------------------------------------------------------
# Evaluation: ``grepq eval`` (EVAL_SCHEMA) and ``grepq reproduce`` (REPRODUCE_SCHEMA) share their sections.

from .eval import metrics as _metrics  # noqa: E402  (constants only: the values the protocols default to)
from .eval import regression as _regression  # noqa: E402
from .eval import splits as _splits  # noqa: E402

#: Zero-shot scoring components (grepq.api.COMPONENTS).
_COMPONENTS = ("low", "high")

EVAL_WEIGHTS: Dict[str, Key] = {
    "ll": Key(None, str, "low-level model weights: the official low_level_model_weights.tar or a grepq checkpoint",
              nullable=True, source="grepq"),
    "hl": Key(None, str, "high-level weights: the official high_level_model_weights.pth or a grepq checkpoint "
                         "('stock-clip': CLIP's own image encoder)", nullable=True, source="grepq"),
    "clip": Key(None, str, "CLIP weights: RN50.pt, a state-dict file or a model name (null: $GREPQ_CLIP_WEIGHTS, "
                           "else RN50; paper: CLIP RN50)", nullable=True, source="paper"),
    "pristine": Key(None, str, "pristine patches of Eq. 5: the official .hdf5 file or a folder of pristine images "
                               "(SPEC §4)", nullable=True, source="paper"),
    "save_pristine": Key(None, str, "with a pristine folder: also write the selected patches to this .hdf5",
                         nullable=True, source="grepq"),
}

EVAL_SCORING: Dict[str, Key] = {
    "device": Key("cpu", str, "cpu, cuda or cuda:N (where to run; changes no result beyond float rounding)",
                  source="grepq"),
    "pos_embedding": Key("drop", str, "CLIP attention-pool positional embedding at test time: 'drop' (official "
                                      "evaluation), 'interpolate' or 'keep' (SPEC §4)",
                         ("drop", "interpolate", "keep"), source="official"),
    "components": Key(list(_COMPONENTS), list, "scores to compute: low (Q_L, Eq. 6), high (Q_H, Eq. 2); GRepQ_Z "
                                                "= Q_H + Q_L needs both (paper Eq. 7)", _COMPONENTS, source="paper",
                      items=str),
    "chunk_size": Key(64, int, "LL patches per forward pass (memory; not results)", source="grepq"),
    "batch_size": Key(None, int, "consecutive images of one size per forward pass (null: 1 on CPU, 8 on CUDA; "
                                 "scores equal to float32 rounding)", nullable=True, source="grepq"),
    "max_batch_pixels": Key(4_000_000, int, "pixel budget of one batch", source="grepq"),
    "decode_workers": Key(0, int, "threads decoding the next images while the models run", source="grepq"),
    "amp": Key("off", str, "mixed precision: 'off' = float32, the reference (SPEC §4; the official code runs CLIP in "
                           "fp16 on CUDA); 'bf16'/'fp16' change scores by rounding", ("off", "bf16", "fp16"),
               source="grepq"),
    "channels_last": Key(False, bool, "channels_last memory format (same scores to rounding)", source="grepq"),
    "small_image": Key("upsample", str, "images giving fewer than two 96x96 patches: 'upsample' to 144 px short "
                                        "side or 'error' (the paper does not say)", ("upsample", "error"),
                       source="grepq"),
    "official_clive_resize": Key(True, bool, "resize CLIVE's 1024.JPG and 1113.JPG to 500x500 as the official "
                                             "loader does (SPEC §8)", source="official"),
}

EVAL_PROTOCOL: Dict[str, Key] = {
    "regressor": Key("ridge", str, "ridge (official README: 'an SVR (ridge regression)') or svr (paper §4.2: a "
                                   "linear SVR; preset eval_table1_paper_svr_oracle)", _regression.REGRESSORS,
                     source="official"),
    "alphas": Key(list(_regression.OFFICIAL_ALPHAS), list, "regularisation grid (official README: 0.1, 1, 10, 100)",
                  source="official", items=float),
    "alpha_selection": Key("cv", str, "'cv' on the training labels (grepq: the paper does not say on what alpha "
                                      "was tuned), 'oracle' = best on the test part (labelled † in tables), "
                                      "'fixed' = one alpha", _regression.ALPHA_SELECTIONS, source="grepq"),
    "cv_folds": Key(_regression.DEFAULT_CV_FOLDS, int, "K of the K-fold alpha selection", source="grepq"),
    "n_train": Key(list(_splits.PAPER_LABEL_COUNTS), list, "labels of Table 1 (paper §4.2: 50, 100, 200)",
                   source="paper", items=int),
    "splits": Key(_splits.PAPER_N_SPLITS, int, "random splits, median reported (paper §4.2: 10)",
                  source="paper"),
    "train_fraction": Key(_splits.PAPER_TRAIN_FRACTION, _NUM, "training part of a split (paper §4.2: 80 %; "
                                                                  "by reference scene for synthetic datasets)",
                          source="paper"),
    "seed": Key(0, int, "seed of the splits (split s draws from [seed, s])", source="grepq"),
    "feature_sets": Key(None, list, "hl+ll, hl, ll (null: all three for data-efficient, hl+ll for cross-dataset; "
                                    "paper: GRepQ_D = [HL | LL], §3.4)", ("hl+ll", "hl", "ll"), nullable=True,
                        source="paper", items=str),
    "variant": Key(None, str, "label stored with the result, e.g. the LL model's pair weight (Table 4)",
                   nullable=True, source="grepq"),
    "regressor_file": Key(None, str, "cross-dataset: test this saved regressor (grepq fit, or --save-regressor of "
                                     "an earlier run) instead of fitting one on the source; the same code path as "
                                     "grepq score --regressor", nullable=True, source="grepq"),
    "allow_weight_mismatch": Key(False, bool, "cross-dataset with regressor_file: warn instead of refusing when the "
                                              "weights differ from the ones the regressor was fit on",
                                 source="grepq"),
    "plcc_fit": Key("none", str, "PLCC of the regression protocols: 'none' (raw Pearson; the paper gives PLCC "
                                 "only in its supplement), 'cubic' (official zero-shot code), 'logistic4' (VQEG)",
                    _metrics.PLCC_FITS, source="grepq"),
}

EVAL_OUTPUT: Dict[str, Key] = {
    "out": Key("results", str, "folder of result files (rendered by grepq tables)", source="grepq"),
    "cache": Key(".grepq_cache", str, "feature cache folder (null or 'none': no cache)", nullable=True,
                 source="grepq"),
    "cache_every": Key(None, int, "write the feature cache every N images (null: 50)", nullable=True, source="grepq"),
    "plots": Key(True, bool, "scatter, embedding and SRCC-vs-labels plots", source="grepq"),
    "save_regressor": Key(None, str, "cross-dataset: also write the regressor fit on the source to this file "
                                     "(grepq.regressor.Regressor JSON; one feature set)", nullable=True,
                          source="grepq"),
    "progress": Key(True, bool, "tqdm progress bars", source="grepq"),
}

EVAL_DATA: Dict[str, Key] = {
    "dataset": Key(None, str, "dataset name (clive, koniq10k, live, csiq, pipal, flive, spaq, tid2013, kadid10k, "
                              "agiqa3k, csv)", nullable=True, source="grepq"),
    "root": Key(None, str, "the dataset's folder as its owners distribute it", nullable=True, source="grepq"),
    "options": Key({}, dict, "loader options, e.g. {include_training: true} (CLIVE)", source="grepq"),
    "source": Key(None, str, "cross-dataset: the dataset the regressor is fit on", nullable=True, source="grepq"),
    "source_root": Key(None, str, "cross-dataset: its folder", nullable=True, source="grepq"),
    "source_options": Key({}, dict, "loader options of the source", source="grepq"),
    "limit": Key(None, int, "use only the first N images of each dataset (quick runs)", nullable=True,
                 source="grepq"),
}


def _key_value_list(items: Any) -> Dict[str, Any]:
    """``--dataset-option k=v`` options -> ``{k: v}`` (values parsed as YAML)."""
    out = {}
    for item in ([items] if isinstance(items, str) else list(items)):
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"expected KEY=VALUE loader options, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


#: ``grepq eval`` option name (argparse dest) -> configuration key and a converter of the option's value.
EVAL_OPTIONS: Dict[str, Tuple[str, Optional[Callable[[Any], Any]]]] = {
    **{o: (f"data.{o}", None) for o in ("dataset", "root", "source", "source_root", "limit")},
    "dataset_option": ("data.options", _key_value_list), "source_option": ("data.source_options", _key_value_list),
    **{o: (f"protocol.{o}", None) for o in ("regressor", "alphas", "alpha_selection", "n_train", "splits", "seed",
                                            "feature_sets", "variant", "plcc_fit", "cv_folds", "regressor_file",
                                            "allow_weight_mismatch")},
    "save_regressor": ("output.save_regressor", None),
    **{o: (f"output.{o}", None) for o in ("out", "cache_every")},
    "cache": ("output.cache", lambda v: None if str(v).lower() == "none" else v),
    "no_plots": ("output.plots", lambda v: not v),
    "no_official_clive_resize": ("scoring.official_clive_resize", lambda v: not v),
    **{f"{o}_weights": (f"weights.{o}", None) for o in ("ll", "hl", "clip")},
    **{o: (f"weights.{o}", None) for o in ("pristine", "save_pristine")},
    **{o: (f"scoring.{o}", None) for o in ("device", "pos_embedding", "components", "chunk_size", "batch_size",
                                           "max_batch_pixels", "decode_workers", "amp", "channels_last",
                                           "small_image")},
}


def _check_positive(cfg: Dict[str, Any], keys: Sequence[str]) -> None:
    flat = flatten(cfg)
    for key in keys:
        if flat.get(key) is not None and flat[key] < 1:
            raise ConfigError(f"{key}: expected a positive integer, got {flat[key]}")


def _check_eval_common(cfg: Dict[str, Any]) -> None:
    _check_positive(cfg, ("scoring.chunk_size", "scoring.batch_size", "scoring.max_batch_pixels",
                          "protocol.splits", "protocol.cv_folds", "output.cache_every"))
    p = cfg["protocol"]
    if not 0 < p["train_fraction"] < 1:
        raise ConfigError(f"protocol.train_fraction: expected a fraction in (0, 1), got {p['train_fraction']}")
    if not p["n_train"] or min(p["n_train"]) < 2:
        raise ConfigError(f"protocol.n_train: expected label counts >= 2, got {p['n_train']}")
    if not p["alphas"] or min(p["alphas"]) <= 0:
        raise ConfigError(f"protocol.alphas: expected positive values, got {p['alphas']}")
    if not cfg["scoring"]["components"]:
        raise ConfigError("scoring.components: expected low, high or both")
    if cfg["scoring"]["decode_workers"] < 0:
        raise ConfigError(f"scoring.decode_workers: expected >= 0, got {cfg['scoring']['decode_workers']}")


def _check_eval(cfg: Dict[str, Any]) -> None:
    _check_eval_common(cfg)
    _check_positive(cfg, ("data.limit",))


EVAL_SCHEMA = Schema("eval", {"weights": EVAL_WEIGHTS, "scoring": EVAL_SCORING, "data": EVAL_DATA,
                              "protocol": EVAL_PROTOCOL, "output": EVAL_OUTPUT},
                     _check_eval)


# --------------------------------------------------------------------------------------------------------------
# ``grepq reproduce``: the paper's tables from one file of weights and dataset folders.

from .data.datasets import DatasetError as _DatasetError, canonical_name as _loader_name  # noqa: E402
from .eval import paper_numbers as _paper  # noqa: E402

#: What a dataset entry of ``datasets`` may hold.
DATASET_ENTRY_KEYS = ("root", "loader", "options", "limit")

REPRODUCE_TABLES: Dict[str, Key] = {
    "run": Key([1, 2, 3, 4], list, "tables to produce: 1 = data-efficient and 2 = zero-shot on every dataset given, "
                                   "3 = cross-dataset pairs (tables.cross_pairs), 4 = LL-only by pair weight "
                                   "(weights.ll_variants)", (1, 2, 3, 4), source="paper", items=int),
    "cross_pairs": Key([[_loader_name(s), _loader_name(t)] for s, t in _paper.TABLE3_SRCC], list,
                       "Table 3's (train, test) pairs of dataset names (paper Table 3)", source="paper"),
    "table4_dataset": Key(_loader_name(_paper.TABLE4_DATASET), str, "Table 4's dataset (paper: KonIQ-10k)",
                          source="paper"),
}

REPRODUCE_SCHEMA_TREE: Dict[str, Any] = {
    "weights": dict(EVAL_WEIGHTS, ll_variants=Key(
        {}, dict, "Table 4: LL weights per pair weight s of Eq. 1, {none|ssim|ms_ssim|gmsd|lpips|fsim: path}; "
                  "each scored with LL features only (paper Table 4)", source="paper")),
    "datasets": Key({}, dict, "name -> {root: folder, loader: (default the name), options: {...}, limit: N}; "
                              "a paper dataset without a root is skipped and listed as skipped", source="grepq"),
    "tables": REPRODUCE_TABLES,
    "scoring": EVAL_SCORING,
    # a saved regressor is grepq eval's (one cross-dataset pair), not reproduce's: every pair fits its own
    "protocol": {k: v for k, v in EVAL_PROTOCOL.items() if k not in ("regressor_file", "allow_weight_mismatch")},
    "output": dict({k: v for k, v in EVAL_OUTPUT.items() if k != "save_regressor"}, out=Key("reproduce", str, "folder of the results, tables, report.md and "
                                                         "run_info.json", source="grepq")),
}


def _check_dataset_entry(name: str, entry: Any) -> None:
    where = f"datasets.{name}"
    if entry is None:
        return
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with {list(DATASET_ENTRY_KEYS)}, got {entry!r}")
    unknown = sorted(set(entry) - set(DATASET_ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {list(DATASET_ENTRY_KEYS)}"
                          f"{_suggest(unknown[0], DATASET_ENTRY_KEYS)}")
    try:
        _loader_name(entry.get("loader") or name)
    except _DatasetError as exc:
        raise ConfigError(f"{where}: {exc} (set 'loader:' for a dataset of another name)") from None
    for key, types in (("root", str), ("loader", str), ("options", dict), ("limit", int)):
        value = entry.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise ConfigError(f"{where}.{key}: expected {types.__name__}, got {value!r}")
    if entry.get("limit") is not None and entry["limit"] < 1:
        raise ConfigError(f"{where}.limit: expected a positive integer, got {entry['limit']}")


def _check_reproduce(cfg: Dict[str, Any]) -> None:
    _check_eval_common(cfg)
    for name, entry in cfg["datasets"].items():
        _check_dataset_entry(str(name), entry)
    for pair in cfg["tables"]["cross_pairs"]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise ConfigError(f"tables.cross_pairs: expected [train, test] pairs of dataset names, got {pair!r}")
    for measure, path in cfg["weights"]["ll_variants"].items():
        if _paper.canonical_similarity(str(measure)) not in _paper.SIMILARITY_MEASURES:
            raise ConfigError(f"weights.ll_variants: unknown pair weight {measure!r}; expected one of "
                              f"{list(_paper.SIMILARITY_MEASURES)}")
        if not isinstance(path, str):
            raise ConfigError(f"weights.ll_variants.{measure}: expected a weights file, got {path!r}")


REPRODUCE_SCHEMA = Schema("reproduce", REPRODUCE_SCHEMA_TREE, _check_reproduce)
