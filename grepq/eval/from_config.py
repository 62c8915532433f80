"""Objects of an evaluation configuration (:data:`grepq.eval.schema.EVAL_SCHEMA` / ``REPRODUCE_SCHEMA``): the scorer,
the keyword options of the protocols, and one protocol run (``grepq eval``).

The configuration is the nested dict of :func:`grepq.config.load_config`; its ``weights``, ``scoring``,
``protocol`` and ``output`` sections are shared by ``grepq eval`` and ``grepq reproduce``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["scorer_from_config", "feature_options", "data_efficient_options", "cross_dataset_options",
           "default_feature_sets", "eval_datasets", "run_eval"]

def scorer_from_config(cfg: Dict[str, Any], ll_weights: Optional[str] = None,
                       components: Optional[Sequence[str]] = None):
    """A :class:`grepq.GRepQ` from ``cfg["weights"]`` and ``cfg["scoring"]``; ``ll_weights`` / ``components``
    replace the configured ones (Table 4's LL variants are scored with LL weights of their own, LL only)."""
    from ..api import GRepQ
    w, s = cfg["weights"], cfg["scoring"]
    return GRepQ.from_files(
        ll_weights=ll_weights or w["ll"], hl_weights=w["hl"], clip_weights=w["clip"], pristine=w["pristine"],
        save_pristine=w["save_pristine"], device=s["device"], pos_embedding=s["pos_embedding"],
        components=list(components or s["components"]), chunk_size=s["chunk_size"], batch_size=s["batch_size"],
        max_batch_pixels=s["max_batch_pixels"], decode_workers=s["decode_workers"], amp=s["amp"],
        channels_last=s["channels_last"], small_image=s["small_image"], progress=cfg["output"]["progress"],
    )


def feature_options(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Keyword options of the :mod:`grepq.eval.runner` functions that concern features (cache, CLIVE resize)."""
    out = cfg["output"]
    cache = out["cache"]
    return dict(cache_dir=None if cache is None or str(cache).lower() == "none" else Path(cache),
                official_clive_resize=cfg["scoring"]["official_clive_resize"], cache_every=out["cache_every"],
                progress=out["progress"])


def _regression_options(p: Dict[str, Any]) -> Dict[str, Any]:
    return dict(regressor=p["regressor"], alphas=list(p["alphas"]), alpha_selection=p["alpha_selection"],
                cv_folds=p["cv_folds"], plcc_fit=p["plcc_fit"], seed=p["seed"])


def data_efficient_options(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Keyword options of :func:`grepq.eval.protocols.data_efficient` from ``cfg["protocol"]``."""
    p = cfg["protocol"]
    return dict(_regression_options(p), n_train_list=list(p["n_train"]), n_splits=p["splits"],
                train_fraction=p["train_fraction"])


def cross_dataset_options(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Keyword options of :func:`grepq.eval.protocols.cross_dataset` from ``cfg["protocol"]``."""
    return _regression_options(cfg["protocol"])


def default_feature_sets(protocol: str, components: Sequence[str]) -> List[str]:
    """Feature sets when none are configured: data-efficient every set the components allow (hl+ll, hl, ll),
    cross-dataset hl+ll (GRepQ_C), or the one component computed."""
    have = [f for f in ("hl", "ll") if f in components]
    sets = (["hl+ll"] if len(have) == 2 else []) + have
    return sets if protocol == "data-efficient" else sets[:1]


def eval_datasets(protocol: str, cfg: Dict[str, Any]):
    """``(target, source)`` datasets of ``cfg["data"]`` (source None unless ``protocol`` is "cross-dataset")."""
    from ..data.datasets import load_dataset
    d = cfg["data"]
    if not d["dataset"] or not d["root"]:
        raise ValueError("data.dataset and data.root are required (--dataset and --root, or in --config)")
    from_file = protocol == "cross-dataset" and cfg["protocol"]["regressor_file"]
    if protocol == "cross-dataset" and not from_file and not (d["source"] and d["source_root"]):
        raise ValueError("cross-dataset needs data.source and data.source_root (--source, --source-root): the "
                         "dataset the regressor is fit on")
    target = load_dataset(d["dataset"], d["root"], limit=d["limit"], **d["options"])
    if protocol != "cross-dataset" or from_file:
        return target, None
    return target, load_dataset(d["source"], d["source_root"], limit=d["limit"], **d["source_options"])


def run_eval(protocol: str, cfg: Dict[str, Any], scorer=None, target=None, source=None):
    """One protocol ("zeroshot", "data-efficient", "cross-dataset") on ``cfg["data"]`` (or the datasets given);
    result files go to ``cfg["output"]["out"]``. Returns the :class:`grepq.eval.protocols.ProtocolResult`."""
    from . import runner
    p, out = cfg["protocol"], cfg["output"]
    if target is None:
        target, source = eval_datasets(protocol, cfg)
    scorer = scorer or scorer_from_config(cfg)
    common = feature_options(cfg)
    fsets = p["feature_sets"] or default_feature_sets(protocol, scorer.settings.components)
    if protocol == "zeroshot":
        return runner.run_zero_shot(scorer, target, Path(out["out"]), plots=out["plots"], **common)
    if protocol == "data-efficient":
        return runner.run_data_efficient(scorer, target, Path(out["out"]), plots=out["plots"], feature_sets=fsets,
                                         variant=p["variant"], **common, **data_efficient_options(cfg))
    return runner.run_cross_dataset(scorer, source, target, Path(out["out"]), feature_sets=fsets, **common,
                                    **cross_dataset_options(cfg), save_regressor=out["save_regressor"],
                                    regressor_file=p["regressor_file"],
                                    allow_weight_mismatch=p["allow_weight_mismatch"])
