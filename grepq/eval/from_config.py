"""What a parsed evaluation configuration (:data:`grepq.eval.schema.EVAL_SCHEMA`, ``REPRODUCE_SCHEMA``; sections
``weights``, ``scoring``, ``protocol``, ``output``, ``data``) makes: the scorer, the feature options, the regression
settings and one protocol run (``grepq eval``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from .regression import RegressionSettings

__all__ = ["scorer_from_config", "feature_options", "regression_settings", "eval_datasets", "run_eval"]


def scorer_from_config(cfg: Dict[str, Any], ll_weights: Optional[str] = None,
                       components: Optional[Sequence[str]] = None, device: Optional[str] = None):
    """A :class:`grepq.GRepQ` from ``cfg["weights"]`` and ``cfg["scoring"]``; ``ll_weights``, ``components`` and
    ``device`` replace the configured ones (Table 4 scores with LL weights of its own, LL only)."""
    from ..api import GRepQ
    w, s = cfg["weights"], cfg["scoring"]
    return GRepQ.from_files(
        ll_weights=ll_weights or w["ll"], hl_weights=w["hl"], clip_weights=w["clip"], pristine=w["pristine"],
        save_pristine=w["save_pristine"], device=device or s["device"], pos_embedding=s["pos_embedding"],
        components=list(components or s["components"]), chunk_size=s["chunk_size"], batch_size=s["batch_size"],
        max_batch_pixels=s["max_batch_pixels"], decode_workers=s["decode_workers"], amp=s["amp"],
        channels_last=s["channels_last"], small_image=s["small_image"], progress=cfg["output"]["progress"],
    )


def feature_options(cfg: Dict[str, Any]):
    """The :class:`grepq.eval.runner.FeatureOptions` of ``cfg``."""
    from .runner import FeatureOptions
    out, fsets = cfg["output"], cfg["protocol"]["feature_sets"]
    cache = out["cache"]
    return FeatureOptions(cache_dir=None if cache is None or str(cache).lower() == "none" else Path(cache),
                          official_clive_resize=cfg["scoring"]["official_clive_resize"],
                          progress=out["progress"], cache_every=out["cache_every"],
                          feature_sets=tuple(fsets) if fsets else None)


def regression_settings(cfg: Dict[str, Any]) -> RegressionSettings:
    """The :class:`RegressionSettings` of ``cfg["protocol"]``."""
    return RegressionSettings.from_dict(cfg["protocol"])


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
    result files go to ``cfg["output"]["out"]``. Returns the :class:`grepq.eval.results.ProtocolResult`."""
    from . import runner
    p, out = cfg["protocol"], cfg["output"]
    if target is None:
        target, source = eval_datasets(protocol, cfg)
    scorer = scorer or scorer_from_config(cfg)
    opts, settings, out_dir = feature_options(cfg), regression_settings(cfg), Path(out["out"])
    if protocol == "zeroshot":
        return runner.run_zero_shot(scorer, target, out_dir, opts, plots=out["plots"])
    if protocol == "data-efficient":
        return runner.run_data_efficient(scorer, target, out_dir, settings, opts, plots=out["plots"],
                                         pair_weight=p["pair_weight"])
    return runner.run_cross_dataset(scorer, source, target, out_dir, settings, opts,
                                    save_regressor=out["save_regressor"], regressor_file=p["regressor_file"],
                                    allow_weight_mismatch=p["allow_weight_mismatch"])
