"""Run the paper's evaluation protocols on a dataset: features (cached) -> protocol -> result files and plots.

Used by ``grepq eval``; every function also works from Python. Result JSON files follow the schema of
:mod:`grepq.eval.protocols` and are what ``grepq tables`` renders.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..data.datasets import IQADataset
from . import protocols
from .features import FeatureSet, extract_features
from .metrics import orient
from .paper_numbers import table_name
from .regressor import (
    Regressor,
    build_regressor,
    feature_dims_of,
    feature_matrix,
    fit_regressor,
    label_info,
    scorer_feature_settings,
)
from .results import ProtocolResult

__all__ = ["dataset_features", "run_zero_shot", "run_data_efficient", "run_cross_dataset", "feature_slices",
           "fit_on_dataset", "CLIVE_OFFICIAL_RESIZE"]

#: The official CLIVE loader resizes these two images (whose size differs from the others) to 500x500.
CLIVE_OFFICIAL_RESIZE = {"1024.JPG": (500, 500), "1113.JPG": (500, 500)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_")


def dataset_features(scorer, dataset: IQADataset, cache_dir: Optional[Path], official_clive_resize: bool = True,
                     progress: bool = True, cache_every: Optional[int] = None, shard=None) -> FeatureSet:
    """Features of every image of ``dataset`` (cached under ``cache_dir``, a part file every ``cache_every``
    images); unreadable images are errors. With a :class:`grepq.parallel.Shard`, only its share of the images is
    computed into the cache (and returned)."""
    resize: Dict[str, Tuple[int, int]] = {}
    if official_clive_resize and table_name(dataset.name) == "CLIVE":
        resize = {str(p): CLIVE_OFFICIAL_RESIZE[p.name] for p in dataset.paths if p.name in CLIVE_OFFICIAL_RESIZE}
    return extract_features(scorer, dataset.paths, cache_dir=cache_dir, name=_slug(dataset.name), resize=resize,
                            progress=progress, save_every=cache_every, shard=shard)


def fit_on_dataset(scorer, dataset, settings=None, *, feature_set: str = "hl+ll", cache_dir=None,
                   progress: bool = True, source: Optional[dict] = None) -> Regressor:
    """Extract (cached) features of every image of an :class:`grepq.data.datasets.IQADataset` with ``scorer`` and
    fit a :class:`Regressor` on its scores (folds by scene for synthetic datasets)."""
    fs = dataset_features(scorer, dataset, cache_dir, progress=progress)
    return fit_regressor(feature_matrix(fs, feature_set), dataset.scores, settings, feature_set=feature_set,
                         feature_dims=feature_dims_of(fs, feature_set), polarity=dataset.polarity, refs=dataset.refs,
                         source=source or {"kind": "dataset", "name": dataset.name, "root": str(dataset.root)},
                         fingerprints=scorer.fingerprints(), feature_settings=scorer_feature_settings(scorer))


def feature_slices(fs: FeatureSet) -> Dict[str, slice]:
    """Column slices of ``fs.matrix("hl+ll")`` = [HL | LL]: {"hl", "ll", "hl+ll"} (those that exist)."""
    e = fs.hl.shape[1] if fs.hl is not None else 0
    c = fs.ll.shape[1] if fs.ll is not None else 0
    out: Dict[str, slice] = {}
    if e:
        out["hl"] = slice(0, e)
    if c:
        out["ll"] = slice(e, e + c)
    if e and c:
        out["hl+ll"] = slice(0, e + c)
    return out


def _matrix(fs: FeatureSet) -> np.ndarray:
    return np.concatenate([a for a in (fs.hl, fs.ll) if a is not None], axis=1).astype(np.float64)


def _write_scores_csv(path: Path, dataset: IQADataset, fs: FeatureSet) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", dataset.polarity, "q_low", "q_high", "q_total"])
        for i, p in enumerate(dataset.paths):
            vals = [None if a is None else float(a[i]) for a in (fs.q_low, fs.q_high, fs.q_total)]
            w.writerow([str(p), float(dataset.scores[i])] + ["" if v is None else f"{v:.8g}" for v in vals])


def run_zero_shot(scorer, dataset: IQADataset, out_dir: Path, cache_dir: Optional[Path] = None,
                  official_clive_resize: bool = True, plots: bool = True, progress: bool = True,
                  cache_every: Optional[int] = None) -> ProtocolResult:
    """Table 2: Q_L, Q_H and GRepQ_Z per image, SRCC/KRCC/PLCC per predictor against the dataset's scores."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fs = dataset_features(scorer, dataset, cache_dir, official_clive_resize, progress, cache_every)
    preds = {k: v for k, v in (("GRepQ_Z", fs.q_total), ("Q_H", fs.q_high), ("Q_L", fs.q_low)) if v is not None}
    name = table_name(dataset.name)
    result = protocols.zero_shot_correlations(preds, dataset.scores, dataset.polarity, dataset=name)
    stem = out_dir / f"zeroshot_{_slug(name)}"
    result.save_json(str(stem) + ".json")
    result.save_csv(str(stem) + ".csv")
    _write_scores_csv(Path(str(stem) + "_scores.csv"), dataset, fs)
    if plots:
        from .plots import plot_scatter
        key = next(iter(preds))
        plot_scatter(preds[key], dataset.scores, str(stem) + "_scatter.png", title=f"{key} on {name}",
                     ylabel=dataset.polarity.upper())
        if fs.hl is not None:
            plot_good_bad_embedding(fs.hl, dataset, str(stem) + "_hl_embedding.png")
    return result


#: Fig. 3 of the paper shows HL features of the images whose quality is in the lowest and highest quarter.
GOOD_BAD_QUANTILE = 0.25


def plot_good_bad_embedding(features: np.ndarray, dataset: IQADataset, path: str, method: str = "pca") -> str:
    """2-D embedding (PCA by default) of features (N, E) of the worst and best quarter of images (paper Fig. 3)."""
    from .plots import plot_embedding
    q = orient(dataset.scores, dataset.polarity)
    lo, hi = np.quantile(q, [GOOD_BAD_QUANTILE, 1 - GOOD_BAD_QUANTILE])
    keep = (q <= lo) | (q >= hi)
    labels = np.where(q[keep] >= hi, "good", "bad")
    return plot_embedding(features[keep], labels, path, method=method,
                          title=f"{table_name(dataset.name)}: HL features, best vs worst quarter")


def run_data_efficient(scorer, dataset: IQADataset, out_dir: Path, cache_dir: Optional[Path] = None,
                       official_clive_resize: bool = True, plots: bool = True, progress: bool = True,
                       cache_every: Optional[int] = None, feature_sets: Sequence[str] = ("hl+ll", "hl", "ll"),
                       pair_weight: Optional[str] = None,
                       **protocol_options) -> ProtocolResult:
    """Table 1 (and Table 4 with ``pair_weight`` = the LL model's pair weight): regression from few labels."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fs = dataset_features(scorer, dataset, cache_dir, official_clive_resize, progress, cache_every)
    slices = feature_slices(fs)
    missing = [f for f in feature_sets if f not in slices]
    if missing:
        raise ValueError(f"feature sets {missing} need components that were not computed (have {list(slices)})")
    name = table_name(dataset.name)
    result = protocols.data_efficient(_matrix(fs), dataset.scores, refs=dataset.refs,
                              feature_sets={f: slices[f] for f in feature_sets}, dataset=name, pair_weight=pair_weight,
                              progress=progress, **protocol_options)
    s = result.settings
    stem = out_dir / "_".join(_slug(x) for x in ("data_efficient", name, pair_weight or "", s.get("regressor", ""),
                                                   s.get("alpha_selection", "")) if x)
    result.save_json(str(stem) + ".json")
    result.save_csv(str(stem) + ".csv")
    if plots:
        from .plots import plot_srcc_vs_labels
        plot_srcc_vs_labels(result.medians, str(stem) + "_srcc_vs_labels.png", title=f"{name}: SRCC vs labels")
    return result


def run_cross_dataset(scorer, source: Optional[IQADataset], target: IQADataset, out_dir: Path,
                      cache_dir: Optional[Path] = None, official_clive_resize: bool = True, progress: bool = True,
                      cache_every: Optional[int] = None, feature_sets: Sequence[str] = ("hl+ll",), *,
                      save_regressor: Optional[Path] = None, regressor_file: Optional[Path] = None,
                      allow_weight_mismatch: bool = False, **protocol_options) -> ProtocolResult:
    """Table 3: one regressor fit on the whole source dataset, tested on the whole target.

    ``save_regressor``: also write the source regressor as a :class:`grepq.eval.regressor.Regressor` file (one feature
    set). ``regressor_file``: test a saved regressor instead of fitting one (``source`` is then not used), the
    same code path as ``grepq score --regressor``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if regressor_file is not None:
        result = _cross_with_regressor_file(scorer, target, Path(regressor_file), cache_dir, official_clive_resize,
                                            progress, cache_every, allow_weight_mismatch,
                                            protocol_options.get("plcc_fit", "none"))
    else:
        result = _cross_fit(scorer, source, target, cache_dir, official_clive_resize, progress, cache_every,
                            feature_sets, save_regressor, protocol_options)
    stem = out_dir / f"cross_{_slug(result.source or 'regressor')}_to_{_slug(result.dataset)}"
    result.save_json(str(stem) + ".json")
    result.save_csv(str(stem) + ".csv")
    return result


def _cross_fit(scorer, source, target, cache_dir, official_clive_resize, progress, cache_every, feature_sets,
               save_regressor, protocol_options) -> ProtocolResult:
    if save_regressor is not None and len(feature_sets) != 1:
        raise ValueError(f"--save-regressor saves one regressor: expected one feature set, got {list(feature_sets)}")
    fs_src = dataset_features(scorer, source, cache_dir, official_clive_resize, progress, cache_every)
    fs_tgt = dataset_features(scorer, target, cache_dir, official_clive_resize, progress, cache_every)
    slices = feature_slices(fs_src)
    src_name, tgt_name = table_name(source.name), table_name(target.name)
    fitted: Dict[str, dict] = {}
    result = protocols.cross_dataset(_matrix(fs_src), source.scores, _matrix(fs_tgt), target.scores,
                             train_polarity=source.polarity, test_polarity=target.polarity, train_refs=source.refs,
                             feature_sets={f: slices[f] for f in feature_sets}, source=src_name, dataset=tgt_name,
                             fitted=fitted, **protocol_options)
    if save_regressor is not None:
        fset = feature_sets[0]
        fit = fitted[fset]
        X = feature_matrix(fs_src, fset)
        y = orient(source.scores, source.polarity)
        labels = dict(label_info(y, "mos"), oriented_from=source.polarity if source.polarity != "mos" else None)
        reg = build_regressor(fit["path"], fit["best"], fit["cv"], fit["folds"], fit["settings"], X, y,
                              feature_set=fset, feature_dims={k: getattr(fs_src, k).shape[1] for k in fset.split("+")},
                              labels=labels, source={"kind": "cross_dataset", "source": src_name,
                                                     "root": str(source.root)},
                              fingerprints=scorer.fingerprints(), feature_settings=scorer_feature_settings(scorer))
        reg.save(save_regressor)
    return result


def _cross_with_regressor_file(scorer, target, path: Path, cache_dir, official_clive_resize, progress, cache_every,
                               allow_weight_mismatch: bool, plcc_fit: str) -> ProtocolResult:
    reg = Regressor.load(path)
    reg.check_scorer(scorer, allow_weight_mismatch)
    fs_tgt = dataset_features(scorer, target, cache_dir, official_clive_resize, progress, cache_every)
    return protocols.cross_dataset_with_regressor(reg, feature_matrix(fs_tgt, reg.feature_set), target.scores,
                                          test_polarity=target.polarity, plcc_fit=plcc_fit,
                                          dataset=table_name(target.name), regressor_file=str(path))
