"""The evaluation protocols on feature arrays (docs/method.md §5): data-efficient (Table 1), cross-dataset
(Table 3) and zero-shot correlations (Table 2). Inputs are features (N, P) ([HL 1024 | LL 128] in grepq) and
subjective scores (N,); nothing here reads images. Splits and folds: :mod:`grepq.eval.splits`; regressors and
every setting: :mod:`grepq.eval.regression`; results: :mod:`grepq.eval.results`.

Polarity: within one dataset the regressor learns the labels' own direction (MOS and DMOS alike). Across datasets
both label sets are first turned "higher = better" (DMOS negated, :func:`grepq.eval.metrics.orient`), as are the
labels of zero-shot correlations.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from tqdm import tqdm

from . import metrics as M
from .regression import (
    Fit,
    GramPath,
    LabelledGram,
    RegressionSettings,
    check_features,
    check_scores,
    check_svr_size,
    choose_alpha,
    fit_select,
    gram_fit,
    limit_blas_threads,
    row_metrics,
)
from .results import ProtocolResult
from .selection import select_subset
from .splits import labelled_folds, make_folds, scene_codes, split_indices

__all__ = ["Labelled", "data_efficient", "cross_dataset", "cross_dataset_with_regressor", "zero_shot_correlations"]

#: BLAS threads of ``data_efficient`` (grepq choice, measured): its matrices are small (n <= 200), and
#: multithreaded OpenBLAS on busy cores was 50x slower (102 s vs 1.9 s for the 5-dataset benchmark).
DATA_EFFICIENT_BLAS_THREADS = 1


@dataclass
class Labelled:
    """One dataset's features (N, P) and labels (N,), with the labels' polarity ("mos" | "dmos"), optional (N,)
    reference scenes (splits and folds by scene) and its name."""

    features: Any
    scores: Any
    polarity: str = "mos"
    refs: Any = None
    name: Optional[str] = None


def _columns(feature_sets, n_cols: int) -> Dict[str, Union[slice, np.ndarray]]:
    """Validated {name: column slice or index array} (None: {"all": every column})."""
    if feature_sets is None:
        return {"all": slice(None)}
    if not isinstance(feature_sets, Mapping) or not feature_sets:
        raise ValueError(f"feature_sets: expected a non-empty mapping name -> column slice, got {feature_sets!r}")
    out: Dict[str, Union[slice, np.ndarray]] = {}
    for name, spec in feature_sets.items():
        if isinstance(spec, slice):
            if any(b is not None and b > n_cols for b in (spec.start, spec.stop)) or not np.arange(n_cols)[spec].size:
                raise ValueError(f"feature set {name!r}: {spec} reaches column {spec.stop} or selects no column, "
                                 f"but the features have {n_cols} columns")
            out[str(name)] = spec
            continue
        idx = np.asarray(spec)
        if idx.dtype == bool:
            if idx.shape != (n_cols,):
                raise ValueError(f"feature set {name!r}: expected a boolean mask of {n_cols}, got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < -n_cols or idx.max() >= n_cols:
            raise ValueError(f"feature set {name!r}: expected {idx.size or 'some'} column indices in [0, {n_cols})")
        out[str(name)] = idx
    return out


# ---------------------------------------------------------------------------------------------------------
# Data-efficient protocol (Table 1)
# ---------------------------------------------------------------------------------------------------------


def data_efficient(features, scores, settings: Optional[RegressionSettings] = None, *, refs=None, feature_sets=None,
                   dataset: Optional[str] = None, pair_weight: Optional[str] = None, keep_indices: bool = False,
                   progress: bool = False, blas_threads: Optional[int] = DATA_EFFICIENT_BLAS_THREADS) -> ProtocolResult:
    """Few-label evaluation: for each split s < ``settings.splits`` (:func:`split_indices`; by scene with ``refs``),
    each n in ``settings.n_train`` and each feature set, fit on n labelled training images (the first n of
    :func:`grepq.eval.selection.select_subset` by ``settings.selection`` from the split's training part only; alpha
    by ``settings.alpha_selection``), predict the test part and record SRCC, PLCC and KRCC.

    Args:
        features: (N, P). scores: (N,) MOS or DMOS. settings: :class:`RegressionSettings` (default: the paper's).
        refs: optional (N,) reference scenes. feature_sets: {name: column slice or index array} (default: all).
        dataset, pair_weight: labels stored in the rows (pair_weight: the LL model's, Table 4).
        keep_indices: keep the split indices in the result. progress: a tqdm bar over splits.
        blas_threads: BLAS threads during the run (None: leave the process setting alone).

    Returns:
        :class:`ProtocolResult` "data_efficient"; one row per split, n and feature set; ``.medians`` per n.
    """
    settings = settings or RegressionSettings()
    X = check_features(features)
    N, P = X.shape
    y = check_scores(scores, N)
    fsets = _columns(feature_sets, P)
    codes = scene_codes(refs, N) if refs is not None else None
    rows: List[Dict[str, Any]] = []
    kept: Dict[int, Dict[str, Any]] = {}
    with limit_blas_threads(blas_threads):
        if settings.regressor == "svr":
            check_svr_size(max(settings.n_train), "labelled images (label count)")
        for s in tqdm(range(settings.splits), desc=f"data-efficient {dataset or ''}".strip(), disable=not progress):
            train, test = _split(N, s, settings, refs)
            # nested: the first n of these are the n labelled images ("random": train[:n], the paper's rule)
            lab = select_subset(X, train, max(settings.n_train), settings.selection, [settings.seed, s])
            if keep_indices:
                kept[s] = {"train": train, "test": test, "labelled": {n: lab[:n] for n in settings.n_train}}
            head = {"protocol": "data_efficient", "dataset": dataset, "split": s, "n_test": int(test.size)}
            if codes is not None:
                head["train_scenes"] = int(np.unique(codes[train]).size)
                head["test_scenes"] = int(np.unique(codes[test]).size)
            tail = {} if pair_weight is None else {"pair_weight": pair_weight}
            rows.extend(_split_rows(X, y, lab, test, fsets, settings, None if codes is None else codes[lab],
                                    (head, tail)))
    run = {"n_train_list": list(settings.n_train), "n_splits": settings.splits,
           "train_fraction": settings.train_fraction, "seed": settings.seed, "regressor": settings.regressor,
           "alphas": list(settings.alphas), "alpha_selection": settings.alpha_selection,
           "cv_folds": settings.cv_folds, "cv_criterion": settings.cv_criterion, "split_by_scene": codes is not None,
           "standardize": settings.standardize, "plcc_fit": settings.plcc_fit,
           "svr_epsilon": settings.svr_epsilon if settings.regressor == "svr" else None,
           "svr_C": "1/(2*alpha)" if settings.regressor == "svr" else None, "feature_sets": dict(fsets),
           "n_images": N, "n_features": P, "blas_threads": blas_threads, "selection": settings.selection}
    return ProtocolResult(protocol="data_efficient", dataset=dataset, rows=rows, settings=run, pair_weight=pair_weight,
                          split_indices=kept if keep_indices else None)



def _split(N: int, s: int, settings: RegressionSettings, refs) -> Tuple[np.ndarray, np.ndarray]:
    """Split ``s`` (train in random order, test), checked against the label counts."""
    train, test = split_indices(N, s, seed=settings.seed, train_fraction=settings.train_fraction, refs=refs)
    if test.size < 3:
        raise ValueError(f"split {s}: expected at least 3 test images, got {test.size}")
    if max(settings.n_train) > train.size:
        raise ValueError(f"n_train={max(settings.n_train)} exceeds the {train.size} training images of split {s} "
                         f"({N} images, train_fraction={settings.train_fraction})")
    return train, test


def _split_rows(X, y, lab, test, fsets, settings: RegressionSettings, lab_codes, head_tail) -> List[Dict[str, Any]]:
    """Rows of one split: every feature set and label count n (the first n of the labelled images ``lab``)."""
    head, tail = head_tail
    s = head["split"]
    folds = {}
    if settings.alpha_selection == "cv":
        for n in settings.n_train:
            folds[n] = labelled_folds(n, settings.cv_folds, settings.seed, s,
                                      None if lab_codes is None else lab_codes[:n])
    y_lab, y_test = y[lab], y[test]
    rows = []
    for fs_name, cols in fsets.items():
        X_l = X[lab][:, cols]
        X_t = X[test][:, cols]
        # one Gram matrix of the (up to) max_n labelled images serves every n, alpha and CV fold
        gram = None if settings.standardize else LabelledGram(X_l)
        for n in settings.n_train:
            if gram is None:
                path, cv_scores = fit_select(X_l[:n], y_lab[:n], settings, folds.get(n))
            else:
                path, cv_scores = gram_fit(gram, n, y_lab[:n], settings, folds.get(n))
            preds = path.predict(X_t)
            best = choose_alpha(settings, cv_scores, preds, y_test)
            row = dict(head, n_train=n, alpha=settings.alphas[best], **row_metrics(preds[best], y_test,
                                                                                   settings.plcc_fit))
            row.update({"plcc_fit": settings.plcc_fit, "feature_set": fs_name, "regressor": settings.regressor,
                        "alpha_selection": settings.alpha_selection, "standardize": settings.standardize,
                        "seed": settings.seed, "selection": settings.selection})
            if settings.alpha_selection == "cv":
                row.update(cv_criterion=settings.cv_criterion, cv_score=float(cv_scores[best]))
            rows.append(dict(row, **tail))
    return rows


# ---------------------------------------------------------------------------------------------------------
# Cross-dataset protocol (Table 3)
# ---------------------------------------------------------------------------------------------------------


def _polarity(p: str) -> str:
    return "mos" if M.polarity_sign(p) > 0 else "dmos"


def cross_dataset(source: Labelled, target: Labelled, settings: Optional[RegressionSettings] = None, *,
                  feature_sets=None, blas_threads: Optional[int] = None) -> Tuple[ProtocolResult, Dict[str, Fit]]:
    """Fit one regressor on the whole ``source`` and test it on the whole ``target``, both label sets oriented
    "higher = better" first (correlations are then positive for any pair of polarities).

    Alpha by ``settings.alpha_selection``: "cv" on the source only (by scene with ``source.refs``), "oracle" (best
    SRCC on the target; labelled) or "fixed". ``feature_sets``: {name: columns}, one row each. ``blas_threads``:
    None leaves the process setting alone (the P x P matrices here profit from threads).

    Returns:
        (result, fits): :class:`ProtocolResult` "cross_dataset" and the source regressor of each feature set
        (:class:`grepq.eval.regression.Fit`, a :class:`LinearPath` of every alpha and the chosen one).
    """
    settings = settings or RegressionSettings()
    Xs = check_features(source.features, "train_features")
    Xt = check_features(target.features, "test_features")
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(f"test_features: expected {Xs.shape[1]} columns like train_features, got {Xt.shape[1]}")
    ys = M.orient(check_scores(source.scores, Xs.shape[0], "train_scores"), source.polarity)
    yt = M.orient(check_scores(target.scores, Xt.shape[0], "test_scores"), target.polarity)
    if settings.regressor == "svr":
        check_svr_size(Xs.shape[0], "source images")
    fsets = _columns(feature_sets, Xs.shape[1])
    codes = scene_codes(source.refs, Xs.shape[0]) if source.refs is not None else None
    folds = None
    if settings.alpha_selection == "cv":
        folds = make_folds(Xs.shape[0], settings.cv_folds, np.random.default_rng([settings.seed, 0]), codes)
    labels = {"n_train": int(Xs.shape[0]), "n_test": int(Xt.shape[0]), "train_polarity": _polarity(source.polarity),
              "test_polarity": _polarity(target.polarity)}
    rows, fits = [], {}
    with limit_blas_threads(blas_threads):
        for fs_name, cols in fsets.items():
            t0 = time.perf_counter()
            path, cv = fit_select(Xs[:, cols], ys, settings, folds)
            preds = path.predict(Xt[:, cols])
            best = choose_alpha(settings, cv, preds, yt)
            fits[fs_name] = Fit(path=path.linear() if isinstance(path, GramPath) else path, best=best, cv=cv,
                                folds=folds)
            row = {"protocol": "cross_dataset", "source": source.name, "dataset": target.name,
                   "feature_set": fs_name, "regressor": settings.regressor, "alpha": settings.alphas[best],
                   "alpha_selection": settings.alpha_selection, **row_metrics(preds[best], yt, settings.plcc_fit),
                   "plcc_fit": settings.plcc_fit, **labels, "standardize": settings.standardize,
                   "seconds": time.perf_counter() - t0}
            if settings.alpha_selection == "cv":
                row["cv_criterion"] = settings.cv_criterion
            rows.append(row)
    run = {"regressor": settings.regressor, "alphas": list(settings.alphas),
           "alpha_selection": settings.alpha_selection, "cv_folds": settings.cv_folds,
           "cv_criterion": settings.cv_criterion, "standardize": settings.standardize,
           "plcc_fit": settings.plcc_fit, "seed": settings.seed, "train_polarity": labels["train_polarity"],
           "test_polarity": labels["test_polarity"], "cv_by_scene": codes is not None, "feature_sets": dict(fsets),
           "blas_threads": blas_threads}
    result = ProtocolResult(protocol="cross_dataset", dataset=target.name, source=source.name, rows=rows,
                            settings=run)
    return result, fits


def cross_dataset_with_regressor(regressor, target: Labelled, plcc_fit: str = "none",
                                 regressor_file: Optional[str] = None) -> ProtocolResult:
    """Table 3 with a saved source regressor (:class:`grepq.eval.regressor.Regressor`): predict the ``target``
    features and correlate with its labels, both oriented "higher = better" (by the regressor's labels polarity).
    One row, keys as :func:`cross_dataset`'s plus ``regressor_file``."""
    Xt = check_features(target.features, "test_features")
    yt = M.orient(check_scores(target.scores, Xt.shape[0], "test_scores"), target.polarity)
    if plcc_fit not in M.PLCC_FITS:
        raise ValueError(f"plcc_fit: expected one of {M.PLCC_FITS}, got {plcc_fit!r}")
    q = M.orient(regressor.predict(Xt), regressor.polarity)
    info = regressor.info
    src = info.get("source") or {}
    source = src.get("source") or src.get("name") or src.get("path")
    labels = info.get("labels") or {}
    saved = info.get("settings") or {}
    row = {"protocol": "cross_dataset", "source": source, "dataset": target.name, "feature_set": regressor.feature_set,
           "regressor": info.get("regressor"), "alpha": info.get("alpha"),
           "alpha_selection": saved.get("alpha_selection"), **row_metrics(q, yt, plcc_fit), "plcc_fit": plcc_fit,
           "n_train": labels.get("n"), "n_test": int(Xt.shape[0]),
           "train_polarity": labels.get("oriented_from") or labels.get("polarity"),
           "test_polarity": _polarity(target.polarity), "standardize": saved.get("standardize"),
           "regressor_file": regressor_file}
    settings = dict(saved, regressor_file=regressor_file, fingerprints=regressor.fingerprints)
    return ProtocolResult(protocol="cross_dataset", dataset=target.name, source=source, rows=[row], settings=settings)


# ---------------------------------------------------------------------------------------------------------
# Zero-shot (Table 2)
# ---------------------------------------------------------------------------------------------------------


def zero_shot_correlations(
    pred, mos, polarity: str = "mos", *, dataset: Optional[str] = None, predictor: str = "GRepQ_Z"
) -> ProtocolResult:
    """Correlations of zero-shot scores with subjective scores on a whole dataset.

    Args:
        pred: (N,) predicted quality, higher = better; or a mapping {predictor name: (N,) array} (e.g.
            {"GRepQ_Z": ..., "Q_H": ..., "Q_L": ...}) for one row each.
        mos: (N,) subjective scores. polarity: "mos" | "dmos" of ``mos`` (DMOS is negated first, so a
            good predictor has positive correlations).
        dataset: name stored in the result. predictor: row name when ``pred`` is an array.

    Returns:
        :class:`ProtocolResult` (protocol "zero_shot"); rows: dataset, predictor, polarity, n, srcc, krcc,
        plcc_raw, plcc_cubic (official code's PLCC), plcc_logistic (+ plcc_logistic_error if it failed).
    """
    preds = pred.items() if isinstance(pred, Mapping) else [(predictor, pred)]
    rows = []
    for name, p in preds:
        corr = M.signed_correlations(p, mos, polarity)
        row = {"protocol": "zero_shot", "dataset": dataset, "predictor": str(name),
               "polarity": corr.pop("polarity"), "n": corr.pop("n")}
        row.update(corr)
        rows.append(row)
    return ProtocolResult(protocol="zero_shot", dataset=dataset, rows=rows,
                          settings={"polarity": rows[0]["polarity"],
                                    "plcc_fits": {"plcc_raw": "none", "plcc_cubic": "cubic",
                                                  "plcc_logistic": "logistic4"}})
