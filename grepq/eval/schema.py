"""The evaluation configurations (:mod:`grepq.config` machinery): :data:`EVAL_SCHEMA` (``grepq eval``: ``weights``,
``scoring``, ``data``, ``protocol``, ``output``) and :data:`REPRODUCE_SCHEMA` (``grepq reproduce``: the same
``weights``, ``scoring``, ``protocol``, ``output``, plus ``datasets`` and ``tables``). Each key names its source
(paper / official / grepq); the protocol keys' defaults are the protocols' own constants.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

from ..config import ConfigError, Key, Schema, flatten, suggest
from ..data.datasets import DatasetError, loader_name
from ..scoring.settings import scoring_keys
from . import metrics as _metrics
from . import paper_numbers as _paper
from . import regression as _regression
from . import selection as _selection
from . import splits as _splits

__all__ = ["EVAL_SCHEMA", "REPRODUCE_SCHEMA", "EVAL_WEIGHTS", "EVAL_SCORING", "EVAL_PROTOCOL", "EVAL_OUTPUT",
           "EVAL_DATA", "DATASET_ENTRY_KEYS"]

_NUM = (int, float)

EVAL_WEIGHTS: Dict[str, Key] = {
    "ll": Key(None, str, "low-level model weights: the official low_level_model_weights.tar or a grepq checkpoint",
              nullable=True, source="grepq"),
    "hl": Key(None, str, "high-level weights: the official high_level_model_weights.pth or a grepq checkpoint "
                         "('stock-clip': CLIP's own image encoder)", nullable=True, source="grepq"),
    "clip": Key(None, str, "CLIP weights: RN50.pt, a state-dict file or a model name (null: $GREPQ_CLIP_WEIGHTS, "
                           "else RN50; paper: CLIP RN50)", nullable=True, source="paper"),
    "pristine": Key(None, str, "pristine patches of Eq. 5: the official .hdf5 file or a folder of pristine images "
                               "(docs/method.md §4)", nullable=True, source="paper"),
    "save_pristine": Key(None, str, "with a pristine folder: also write the selected patches to this .hdf5",
                         nullable=True, source="grepq"),
}

#: The scorer's options (declared in grepq.scoring.settings) and the eval-only CLIVE resize.
EVAL_SCORING: Dict[str, Key] = {
    **scoring_keys(),
    "official_clive_resize": Key(True, bool, "resize CLIVE's 1024.JPG and 1113.JPG to 500x500 as the official "
                                             "loader does (docs/method.md §8)", source="official"),
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
    "selection": Key("random", str, "how the n labelled images are chosen from a split's training part: 'random' "
                                    "(paper §4.2) or 'k-center' (greedy k-center on standardised features; grepq "
                                    "select's rule)", _selection.SELECTION_RULES, source="paper"),
    "feature_sets": Key(None, list, "hl+ll, hl, ll (null: all three for data-efficient, hl+ll for cross-dataset; "
                                    "paper: GRepQ_D = [HL | LL], §3.3, Eq. 4)", ("hl+ll", "hl", "ll"), nullable=True,
                        source="paper", items=str),
    "pair_weight": Key(None, str, "label stored with the result: the pair weight of Eq. 1 the LL model was trained "
                                  "with (Table 4)", nullable=True, source="grepq"),
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
                                     "(grepq.eval.regressor.Regressor JSON; one feature set)", nullable=True,
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
        raise ConfigError("scoring.components: expected ll, hl or both")
    if cfg["scoring"]["decode_workers"] < 0:
        raise ConfigError(f"scoring.decode_workers: expected >= 0, got {cfg['scoring']['decode_workers']}")


def _check_eval(cfg: Dict[str, Any]) -> None:
    _check_eval_common(cfg)
    _check_positive(cfg, ("data.limit",))


EVAL_SCHEMA = Schema("eval", {"weights": EVAL_WEIGHTS, "scoring": EVAL_SCORING, "data": EVAL_DATA,
                              "protocol": EVAL_PROTOCOL, "output": EVAL_OUTPUT},
                     _check_eval)


#: What an entry of ``grepq reproduce``'s ``datasets`` may hold.
DATASET_ENTRY_KEYS = ("root", "loader", "options", "limit")

REPRODUCE_TABLES: Dict[str, Key] = {
    "run": Key([1, 2, 3, 4], list, "tables to produce: 1 = data-efficient and 2 = zero-shot on every dataset given, "
                                   "3 = cross-dataset pairs (tables.cross_pairs), 4 = LL-only by pair weight "
                                   "(weights.ll_per_pair_weight)", (1, 2, 3, 4), source="paper", items=int),
    "cross_pairs": Key([[loader_name(s), loader_name(t)] for s, t in _paper.TABLE3_SRCC], list,
                       "Table 3's (train, test) pairs of dataset names (paper Table 3)", source="paper"),
    "table4_dataset": Key(loader_name(_paper.TABLE4_DATASET), str, "Table 4's dataset (paper: KonIQ-10k)",
                          source="paper"),
}

REPRODUCE_SCHEMA_TREE: Dict[str, Any] = {
    "weights": dict(EVAL_WEIGHTS, ll_per_pair_weight=Key(
        {}, dict, "Table 4: LL weights per pair weight s of Eq. 1, {none|ssim|ms_ssim|gmsd|lpips|fsim: path}; "
                  "each scored with LL features only (paper Table 4)", source="paper")),
    "datasets": Key({}, dict, "name -> {root: folder, loader: (default the name), options: {...}, limit: N}; "
                              "a paper dataset without a root is skipped and listed as skipped", source="grepq"),
    "tables": REPRODUCE_TABLES,
    "scoring": EVAL_SCORING,
    # a saved regressor is grepq eval's (one cross-dataset pair), not reproduce's: every pair fits its own
    "protocol": {k: v for k, v in EVAL_PROTOCOL.items() if k not in ("regressor_file", "allow_weight_mismatch")},
    "output": dict({k: v for k, v in EVAL_OUTPUT.items() if k != "save_regressor"},
                   out=Key("reproduce", str, "folder of the results, tables, report.md and "
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
                          f"{suggest(unknown[0], DATASET_ENTRY_KEYS)}")
    try:
        loader_name(entry.get("loader") or name)
    except DatasetError as exc:
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
    for pair_weight, path in cfg["weights"]["ll_per_pair_weight"].items():
        if _paper.table4_pair_weight(str(pair_weight)) not in _paper.TABLE4_PAIR_WEIGHTS:
            raise ConfigError(f"weights.ll_per_pair_weight: unknown pair weight {pair_weight!r}; expected one of "
                              f"{list(_paper.TABLE4_PAIR_WEIGHTS)}")
        if not isinstance(path, str):
            raise ConfigError(f"weights.ll_per_pair_weight.{pair_weight}: expected a weights file, got {path!r}")


REPRODUCE_SCHEMA = Schema("reproduce", REPRODUCE_SCHEMA_TREE, _check_reproduce)
