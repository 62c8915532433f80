"""The protocols on a dataset, as ``grepq eval`` runs them: features (cached) -> protocol -> result files and plots
(the schema of :mod:`grepq.eval.results`, rendered by ``grepq tables``)."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..data.datasets import IQADataset
from . import protocols
from .features import FeatureSet, extract_features
from .metrics import orient
from .paper_numbers import table_name
from .regression import RegressionSettings
from .regressor import Regressor, build_regressor, fit_regressor, label_info, scorer_feature_settings
from .results import ProtocolResult

__all__ = ["FeatureOptions", "dataset_features", "run_zero_shot", "run_data_efficient", "run_cross_dataset",
           "fit_on_dataset", "CLIVE_OFFICIAL_RESIZE"]

#: The official CLIVE loader resizes these two images (whose size differs from the others) to 500x500.
CLIVE_OFFICIAL_RESIZE = {"1024.JPG": (500, 500), "1113.JPG": (500, 500)}
#: Fig. 3 of the paper shows HL features of the images whose quality is in the lowest and highest quarter.
GOOD_BAD_QUANTILE = 0.25


@dataclass(frozen=True)
class FeatureOptions:
    """How a run gets its features: cache folder (None: no cache), a cache part every ``cache_every`` images,
    the official CLIVE resize, progress bars, and the feature sets ("hl+ll", "hl", "ll"; None: every set the
    scorer computes for data-efficient, the widest for cross-dataset)."""

    cache_dir: Optional[Path] = None
    official_clive_resize: bool = True
    progress: bool = True
    cache_every: Optional[int] = None
    feature_sets: Optional[Sequence[str]] = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_")


def dataset_features(scorer, dataset: IQADataset, opts: FeatureOptions = FeatureOptions(), shard=None) -> FeatureSet:
    """Features of every image of ``dataset`` (unreadable images are errors); with a :class:`grepq.parallel.Shard`,
    only its share is computed into the cache (and returned)."""
    resize = {}
    if opts.official_clive_resize and table_name(dataset.name) == "CLIVE":
        resize = {str(p): CLIVE_OFFICIAL_RESIZE[p.name] for p in dataset.paths if p.name in CLIVE_OFFICIAL_RESIZE}
    return extract_features(scorer, dataset.paths, cache_dir=opts.cache_dir, name=_slug(dataset.name), resize=resize,
                            progress=opts.progress, save_every=opts.cache_every, shard=shard)


def fit_on_dataset(scorer, dataset, settings=None, *, feature_set: str = "hl+ll", cache_dir=None,
                   progress: bool = True, source: Optional[dict] = None) -> Regressor:
    """A :class:`Regressor` on the (cached) features of every image of ``dataset`` and its scores (CV folds by
    scene for synthetic datasets)."""
    fs = dataset_features(scorer, dataset, FeatureOptions(cache_dir=cache_dir, progress=progress))
    return fit_regressor(fs.matrix(feature_set), dataset.scores, settings, feature_set=feature_set,
                         feature_dims=fs.dims(feature_set), polarity=dataset.polarity, refs=dataset.refs,
                         source=source or {"kind": "dataset", "name": dataset.name, "root": str(dataset.root)},
                         fingerprints=scorer.fingerprints(), feature_settings=scorer_feature_settings(scorer))


def _save(result: ProtocolResult, stem: Path) -> None:
    result.save_json(str(stem) + ".json")
    result.save_csv(str(stem) + ".csv")


def _write_scores_csv(path: Path, dataset: IQADataset, fs: FeatureSet) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", dataset.polarity, "q_low", "q_high", "q_total"])
        for i, p in enumerate(dataset.paths):
            vals = [None if a is None else float(a[i]) for a in (fs.q_low, fs.q_high, fs.q_total)]
            w.writerow([str(p), float(dataset.scores[i])] + ["" if v is None else f"{v:.8g}" for v in vals])


def run_zero_shot(scorer, dataset: IQADataset, out_dir: Path, opts: FeatureOptions = FeatureOptions(),
                  plots: bool = True) -> ProtocolResult:
    """Table 2: Q_L, Q_H and GRepQ_Z per image, SRCC/KRCC/PLCC per predictor against the dataset's scores."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fs = dataset_features(scorer, dataset, opts)
    preds = {k: v for k, v in (("GRepQ_Z", fs.q_total), ("Q_H", fs.q_high), ("Q_L", fs.q_low)) if v is not None}
    name = table_name(dataset.name)
    result = protocols.zero_shot_correlations(preds, dataset.scores, dataset.polarity, dataset=name)
    stem = Path(out_dir) / f"zeroshot_{_slug(name)}"
    _save(result, stem)
    _write_scores_csv(Path(str(stem) + "_scores.csv"), dataset, fs)
    if plots:
        from .plots import plot_scatter
        key = next(iter(preds))
        plot_scatter(preds[key], dataset.scores, str(stem) + "_scatter.png", title=f"{key} on {name}",
                     ylabel=dataset.polarity.upper())
        if fs.hl is not None:
            plot_good_bad_embedding(fs.hl, dataset, str(stem) + "_hl_embedding.png")
    return result


def plot_good_bad_embedding(features: np.ndarray, dataset: IQADataset, path: str, method: str = "pca") -> str:
    """2-D embedding (PCA by default) of features (N, E) of the worst and best quarter of images (paper Fig. 3)."""
    from .plots import plot_embedding
    q = orient(dataset.scores, dataset.polarity)
    lo, hi = np.quantile(q, [GOOD_BAD_QUANTILE, 1 - GOOD_BAD_QUANTILE])
    keep = (q <= lo) | (q >= hi)
    labels = np.where(q[keep] >= hi, "good", "bad")
    return plot_embedding(features[keep], labels, path, method=method,
                          title=f"{table_name(dataset.name)}: HL features, best vs worst quarter")


def run_data_efficient(scorer, dataset: IQADataset, out_dir: Path, settings: Optional[RegressionSettings] = None,
                       opts: FeatureOptions = FeatureOptions(), plots: bool = True,
                       pair_weight: Optional[str] = None) -> ProtocolResult:
    """Table 1 (and Table 4, ``pair_weight`` naming the LL model's pair weight): regression from few labels."""
    settings = settings or RegressionSettings()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fs = dataset_features(scorer, dataset, opts)
    name = table_name(dataset.name)
    result = protocols.data_efficient(fs.matrix(), dataset.scores, settings, refs=dataset.refs,
                                      feature_sets=fs.columns(opts.feature_sets or fs.available()), dataset=name,
                                      pair_weight=pair_weight, progress=opts.progress)
    selection = "" if settings.selection == "random" else settings.selection  # random: the paper's file names
    parts = ("data_efficient", name, pair_weight or "", settings.regressor, settings.alpha_selection, selection)
    stem = Path(out_dir) / "_".join(_slug(x) for x in parts if x)
    _save(result, stem)
    if plots:
        from .plots import plot_srcc_vs_labels
        plot_srcc_vs_labels(result.medians, str(stem) + "_srcc_vs_labels.png", title=f"{name}: SRCC vs labels")
    return result


def run_cross_dataset(scorer, source: Optional[IQADataset], target: IQADataset, out_dir: Path,
                      settings: Optional[RegressionSettings] = None, opts: FeatureOptions = FeatureOptions(), *,
                      save_regressor: Optional[Path] = None, regressor_file: Optional[Path] = None,
                      allow_weight_mismatch: bool = False) -> ProtocolResult:
    """Table 3: one regressor fit on the whole source, tested on the whole target. ``save_regressor``: also write
    the source regressor (one feature set) as a :class:`Regressor` file. ``regressor_file``: test that saved
    regressor instead of fitting one (``source`` unused; the code path of ``grepq score --regressor``)."""
    settings = settings or RegressionSettings()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    name = table_name(target.name)
    if regressor_file is not None:
        reg = Regressor.load(regressor_file)
        reg.check_scorer(scorer, allow_weight_mismatch)
        X = dataset_features(scorer, target, opts).matrix(reg.feature_set)
        tgt = protocols.Labelled(X, target.scores, target.polarity, name=name)
        result = protocols.cross_dataset_with_regressor(reg, tgt, settings.plcc_fit, str(regressor_file))
    else:
        if save_regressor is not None and opts.feature_sets is not None and len(opts.feature_sets) != 1:
            raise ValueError(f"--save-regressor saves one regressor: expected one feature set, got "
                             f"{list(opts.feature_sets)}")
        fs_src = dataset_features(scorer, source, opts)
        fs_tgt = dataset_features(scorer, target, opts)
        fsets = opts.feature_sets or fs_src.available()[:1]
        src = protocols.Labelled(fs_src.matrix(), source.scores, source.polarity, source.refs, table_name(source.name))
        tgt = protocols.Labelled(fs_tgt.matrix(), target.scores, target.polarity, name=name)
        result, fits = protocols.cross_dataset(src, tgt, settings, feature_sets=fs_src.columns(fsets))
        if save_regressor is not None:
            _save_source_regressor(scorer, source, fs_src, fsets[0], fits[fsets[0]], settings).save(save_regressor)
    _save(result, Path(out_dir) / f"cross_{_slug(result.source or 'regressor')}_to_{_slug(result.dataset)}")
    return result


def _save_source_regressor(scorer, source: IQADataset, fs: FeatureSet, fset: str, fit, settings) -> Regressor:
    y = orient(source.scores, source.polarity)
    labels = dict(label_info(y, "mos"), oriented_from=source.polarity if source.polarity != "mos" else None)
    return build_regressor(fit, settings, fs.matrix(fset), y, feature_set=fset, feature_dims=fs.dims(fset),
                           labels=labels, source={"kind": "cross_dataset", "source": table_name(source.name),
                                                  "root": str(source.root)},
                           fingerprints=scorer.fingerprints(), feature_settings=scorer_feature_settings(scorer))
