"""Evaluation protocols on extracted feature arrays: data-efficient (Table 1), cross-dataset (Table 3) and
zero-shot correlations (Table 2). docs/method.md §5.

Inputs are plain arrays: ``features`` (N, P) (in grepq [HL 1024 | LL 128], P = 1152) and subjective
``scores`` (N,). Nothing here reads images or runs a network.

The parts live in small modules:

* :mod:`grepq.eval.splits`: the train/test splits and the CV folds (seeds, split by scene, nested label sets);
* :mod:`grepq.eval.regression`: ridge and linear SVR for every alpha, the alpha selection and
  :class:`~grepq.eval.regression.RegressionSettings`, the one validated settings object of the protocols and
  of ``grepq fit`` (:func:`~grepq.eval.regression.fit_select` is the one fit-and-select implementation);
* :mod:`grepq.eval.results`: :class:`ProtocolResult` and its JSON schema (read by :mod:`grepq.eval.tables`).

**Polarity.** Within one dataset the regressor learns the labels' own direction, so correlations are
positive for MOS and DMOS alike and the data-efficient protocol needs no polarity. Across datasets
(``cross_dataset``) both label sets are first turned "higher = better" (DMOS negated,
:func:`grepq.eval.metrics.orient`); the regressor is then trained to predict quality and tested against
the target's quality. Zero-shot predictors are "higher = better"; the labels are oriented the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from . import metrics as M
from .regression import (
    DEFAULT_CV_FOLDS,
    OFFICIAL_ALPHAS,
    SVR_EPSILON,
    FeatureSpec,
    LabelledGram,
    RegressionSettings,
    _blas_threads,
    _check_scores,
    _resolve_feature_sets,
    _test_metrics,
    as_linear_path,
    check_features,
    check_svr_size,
    choose_alpha,
    fit_select,
    gram_fit,
)
from .results import ProtocolResult
from .splits import (
    PAPER_LABEL_COUNTS,
    PAPER_N_SPLITS,
    PAPER_TRAIN_FRACTION,
    labelled_folds,
    make_folds,
    scene_codes,
    split_indices,
)

__all__ = ["data_efficient", "cross_dataset", "cross_dataset_with_regressor", "zero_shot_correlations"]

#: BLAS threads used by ``data_efficient`` (grepq choice, measured): its matrices are small (n <= 200
#: labelled images), so one thread loses little, while multithreaded OpenBLAS on busy cores (other jobs on
#: the machine) was measured 50x slower (1.9 s vs 102 s for the 5-dataset benchmark).
DATA_EFFICIENT_BLAS_THREADS = 1


# ---------------------------------------------------------------------------------------------------------
# Data-efficient protocol (Table 1)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _DataEfficientPlan:
    """What data_efficient loops over, besides the regression settings."""

    n_list: List[int]
    n_splits: int
    train_fraction: float
    fsets: Dict[str, Any]
    codes: Optional[np.ndarray]
    refs: Any
    dataset: Optional[str]
    pair_weight: Optional[str]
    keep_indices: bool


def data_efficient(
    features,
    scores,
    *,
    n_train_list: Sequence[int] = PAPER_LABEL_COUNTS,
    n_splits: int = PAPER_N_SPLITS,
    train_fraction: float = PAPER_TRAIN_FRACTION,
    seed: int = 0,
    regressor: str = "ridge",
    alphas: Union[float, Sequence[float]] = OFFICIAL_ALPHAS,
    alpha_selection: str = "cv",
    cv_folds: int = DEFAULT_CV_FOLDS,
    cv_criterion: str = "mse",
    refs=None,
    feature_sets: Optional[Mapping[str, FeatureSpec]] = None,
    standardize: bool = False,
    plcc_fit: str = "none",
    svr_epsilon: float = SVR_EPSILON,
    dataset: Optional[str] = None,
    pair_weight: Optional[str] = None,
    keep_indices: bool = False,
    progress: bool = False,
    blas_threads: Optional[int] = DATA_EFFICIENT_BLAS_THREADS,
) -> ProtocolResult:
    """Few-label evaluation: regress scores from features with n labels, test on a held-out 20 %.

    For each split s < n_splits (:func:`split_indices`), each n in ``n_train_list`` and each feature set:
    fit the regressor on the first n images of the training part (alpha chosen by ``alpha_selection``),
    predict the test part, and record SRCC, PLCC (``plcc_fit``) and KRCC. See :mod:`grepq.eval.regression`
    and :mod:`grepq.eval.splits` for every choice.

    Args:
        features: (N, P) feature array. scores: (N,) subjective scores (MOS or DMOS; no polarity needed).
        n_train_list: label counts (paper: 50, 100, 200). n_splits: number of splits (paper: 10).
        train_fraction: training fraction of images, or of scenes with ``refs`` (paper: 0.8).
        seed: base seed. regressor: "ridge" | "svr". alphas: regularisation grid (official: 0.1, 1, 10, 100).
        alpha_selection: "cv" | "oracle" | "fixed". cv_folds: K of the K-fold CV. cv_criterion: "mse" | "srcc".
        refs: optional (N,) reference-scene labels: split by scene (synthetic datasets: LIVE, CSIQ, ...).
        feature_sets: {name: column slice or index array} (default {"all": all columns}).
        standardize: unit-variance columns from the labelled training samples only.
        plcc_fit: PLCC mapping of each row ("none" | "cubic" | "logistic4").
        dataset, pair_weight: labels stored in the result. keep_indices: keep the split indices in the result.
        progress: show a tqdm bar over splits.
        blas_threads: BLAS threads during the run (default 1, see ``DATA_EFFICIENT_BLAS_THREADS``; None
            leaves the process setting alone).

    Returns:
        :class:`ProtocolResult` (protocol "data_efficient"); rows have keys dataset, split, n_train, n_test,
        alpha, srcc, plcc, krcc, plcc_fit, feature_set, regressor, alpha_selection (+ cv_criterion,
        standardize, seed, pair_weight, train_scenes/test_scenes with refs); ``.medians`` gives the median per
        n_train.
    """
    X = check_features(features)
    N, P = X.shape
    y = _check_scores(scores, N)
    settings = RegressionSettings(regressor=regressor, alphas=alphas, alpha_selection=alpha_selection,
                                  cv_folds=cv_folds, cv_criterion=cv_criterion, standardize=standardize,
                                  plcc_fit=plcc_fit, svr_epsilon=svr_epsilon, seed=seed)
    if int(n_splits) < 1:
        raise ValueError(f"n_splits: expected >= 1, got {n_splits}")
    n_list = [int(n) for n in n_train_list]
    if not n_list or min(n_list) < 2:
        raise ValueError(f"n_train_list: expected label counts >= 2, got {list(n_train_list)}")
    plan = _DataEfficientPlan(n_list=n_list, n_splits=int(n_splits), train_fraction=train_fraction,
                              fsets=_resolve_feature_sets(feature_sets, P),
                              codes=scene_codes(refs, N) if refs is not None else None, refs=refs,
                              dataset=dataset, pair_weight=pair_weight, keep_indices=keep_indices)
    rows: List[Dict[str, Any]] = []
    kept: Dict[int, Dict[str, Any]] = {}
    with _blas_threads(blas_threads):
        if settings.regressor == "svr":
            check_svr_size(max(n_list), "labelled images (label count)")
        for s in tqdm(range(plan.n_splits), desc=f"data-efficient {dataset or ''}".strip(), disable=not progress):
            rows.extend(_data_efficient_split(X, y, s, settings, plan, kept))
    return ProtocolResult(protocol="data_efficient", dataset=dataset, rows=rows,
                          settings=_data_efficient_settings(settings, plan, N, P, blas_threads),
                          pair_weight=pair_weight, split_indices=kept if keep_indices else None)


def _data_efficient_settings(settings: RegressionSettings, plan: _DataEfficientPlan, N: int, P: int,
                             blas_threads) -> Dict[str, Any]:
    s = settings
    return {
        "n_train_list": plan.n_list, "n_splits": plan.n_splits, "train_fraction": float(plan.train_fraction),
        "seed": s.seed, "regressor": s.regressor, "alphas": list(s.alphas),
        "alpha_selection": s.alpha_selection, "cv_folds": s.cv_folds, "cv_criterion": s.cv_criterion,
        "split_by_scene": plan.codes is not None, "standardize": s.standardize, "plcc_fit": s.plcc_fit,
        "svr_epsilon": s.svr_epsilon if s.regressor == "svr" else None,
        "svr_C": "1/(2*alpha)" if s.regressor == "svr" else None,
        "feature_sets": {k: v for k, v in plan.fsets.items()}, "n_images": N, "n_features": P,
        "blas_threads": blas_threads,
    }


def _data_efficient_split(X, y, s: int, settings: RegressionSettings, plan: _DataEfficientPlan,
                          kept: Dict[int, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows of split ``s``: every label count and feature set."""
    N = X.shape[0]
    max_n = max(plan.n_list)
    train, test = split_indices(N, s, seed=settings.seed, train_fraction=plan.train_fraction, refs=plan.refs)
    if test.size < 3:
        raise ValueError(f"split {s}: expected at least 3 test images, got {test.size}")
    if max_n > train.size:
        raise ValueError(
            f"n_train={max_n} exceeds the {train.size} training images of split {s} "
            f"({N} images, train_fraction={plan.train_fraction})"
        )
    lab_max = train[:max_n]  # nested: the first n of these are the n labelled images
    y_lab_all = y[lab_max]
    y_test = y[test]
    split_info = {"protocol": "data_efficient", "dataset": plan.dataset, "split": s, "n_test": int(test.size)}
    if plan.codes is not None:
        split_info["train_scenes"] = int(np.unique(plan.codes[train]).size)
        split_info["test_scenes"] = int(np.unique(plan.codes[test]).size)
    if plan.keep_indices:
        kept[s] = {"train": train, "test": test, "labelled": {n: lab_max[:n] for n in plan.n_list}}
    folds = {}
    if settings.alpha_selection == "cv":
        for n in plan.n_list:
            folds[n] = labelled_folds(n, settings.cv_folds, settings.seed, s,
                                      None if plan.codes is None else plan.codes[lab_max[:n]])
    rows = []
    for fs_name, cols in plan.fsets.items():
        X_l = X[lab_max][:, cols]
        X_t = X[test][:, cols]
        # one Gram matrix of the (up to) max_n labelled images serves every n, alpha and CV fold
        gram = None if settings.standardize else LabelledGram(X_l)
        for n in plan.n_list:
            if gram is None:
                path, cv_scores = fit_select(X_l[:n], y_lab_all[:n], settings, folds.get(n))
            else:
                path, cv_scores = gram_fit(gram, n, y_lab_all[:n], settings, folds.get(n))
            preds = path.predict(X_t)
            best = choose_alpha(settings, cv_scores, preds, y_test)
            row = dict(split_info)
            row.update({"n_train": n, "alpha": settings.alphas[best]})
            row.update(_test_metrics(preds[best], y_test, settings.plcc_fit))
            row.update({"plcc_fit": settings.plcc_fit, "feature_set": fs_name, "regressor": settings.regressor,
                        "alpha_selection": settings.alpha_selection, "standardize": settings.standardize,
                        "seed": settings.seed})
            if settings.alpha_selection == "cv":
                row["cv_criterion"] = settings.cv_criterion
                row["cv_score"] = float(cv_scores[best])
            if plan.pair_weight is not None:
                row["pair_weight"] = plan.pair_weight
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------
# Cross-dataset protocol (Table 3)
# ---------------------------------------------------------------------------------------------------------


def cross_dataset(
    train_features,
    train_scores,
    test_features,
    test_scores,
    *,
    regressor: str = "ridge",
    alphas: Union[float, Sequence[float]] = OFFICIAL_ALPHAS,
    alpha_selection: str = "cv",
    cv_folds: int = DEFAULT_CV_FOLDS,
    cv_criterion: str = "mse",
    train_polarity: str = "mos",
    test_polarity: str = "mos",
    train_refs=None,
    feature_sets: Optional[Mapping[str, FeatureSpec]] = None,
    standardize: bool = False,
    plcc_fit: str = "none",
    svr_epsilon: float = SVR_EPSILON,
    seed: int = 0,
    source: Optional[str] = None,
    dataset: Optional[str] = None,
    blas_threads: Optional[int] = None,
    fitted: Optional[Dict[str, Any]] = None,
) -> ProtocolResult:
    """Fit one regressor on the whole source dataset and test it on the whole target dataset.

    Both label sets are oriented "higher = better" first (DMOS negated, :func:`grepq.eval.metrics.orient`):
    a regressor trained on LIVE's DMOS then predicts quality, and is correlated with CSIQ's negated DMOS or
    a MOS dataset's MOS, so a good model gets positive correlations whatever the two polarities (SRCC, KRCC
    and Pearson are invariant to an increasing affine map: label scales do not matter).

    Args:
        train_features: (N_s, P) source features. train_scores: (N_s,) source labels.
        test_features: (N_t, P) target features. test_scores: (N_t,) target labels.
        regressor: "ridge" | "svr". alphas: grid or one value.
        alpha_selection: "cv" (K-fold on the source only; by scene when ``train_refs`` is given) |
            "oracle" (best SRCC on the target; labelled) | "fixed".
        train_polarity, test_polarity: "mos" | "dmos".
        feature_sets: {name: columns}; one row per feature set. plcc_fit: PLCC mapping.
        seed: seed of the CV folds. source, dataset: names stored in the result.
        blas_threads: limit BLAS threads during the run (None: leave the process setting alone; the
            P x P scatter matrices here profit from threads on an idle machine).
        fitted: optional dict; receives ``{feature set: {"path": LinearPath of every alpha, "cv": CV scores or
            None, "best": index of the chosen alpha, "folds", "settings"}}`` (how ``grepq eval cross-dataset
            --save-regressor`` gets the source regressor).

    Returns:
        :class:`ProtocolResult` (protocol "cross_dataset"); rows: source, dataset, feature_set, regressor,
        alpha, alpha_selection, srcc, plcc, krcc, plcc_fit, n_train, n_test, train_polarity, test_polarity.
    """
    Xs = check_features(train_features, "train_features")
    Xt = check_features(test_features, "test_features")
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(f"test_features: expected {Xs.shape[1]} columns like train_features, got {Xt.shape[1]}")
    ys = M.orient(_check_scores(train_scores, Xs.shape[0], "train_scores"), train_polarity)
    yt = M.orient(_check_scores(test_scores, Xt.shape[0], "test_scores"), test_polarity)
    settings = RegressionSettings(regressor=regressor, alphas=alphas, alpha_selection=alpha_selection,
                                  cv_folds=cv_folds, cv_criterion=cv_criterion, standardize=standardize,
                                  plcc_fit=plcc_fit, svr_epsilon=svr_epsilon, seed=seed)
    if settings.regressor == "svr":
        check_svr_size(Xs.shape[0], "source images")
    fsets = _resolve_feature_sets(feature_sets, Xs.shape[1])
    codes = scene_codes(train_refs, Xs.shape[0]) if train_refs is not None else None
    folds = None
    if settings.alpha_selection == "cv":
        folds = make_folds(Xs.shape[0], settings.cv_folds, np.random.default_rng([settings.seed, 0]), codes)
    labels = {"n_train": int(Xs.shape[0]), "n_test": int(Xt.shape[0]),
              "train_polarity": "mos" if M.polarity_sign(train_polarity) > 0 else "dmos",
              "test_polarity": "mos" if M.polarity_sign(test_polarity) > 0 else "dmos"}
    rows = []
    with _blas_threads(blas_threads):
        for fs_name, cols in fsets.items():
            rows.append(_cross_dataset_row(Xs[:, cols], ys, Xt[:, cols], yt, settings, folds, fitted, labels,
                                           {"protocol": "cross_dataset", "source": source, "dataset": dataset,
                                            "feature_set": fs_name}))
    run_settings = _cross_dataset_settings(settings, labels, codes is not None, fsets, blas_threads)
    return ProtocolResult(protocol="cross_dataset", dataset=dataset, source=source, rows=rows,
                          settings=run_settings)


def _cross_dataset_settings(settings: RegressionSettings, labels, by_scene: bool, fsets, blas_threads):
    return {"regressor": settings.regressor, "alphas": list(settings.alphas),
            "alpha_selection": settings.alpha_selection, "cv_folds": settings.cv_folds,
            "cv_criterion": settings.cv_criterion, "standardize": settings.standardize,
            "plcc_fit": settings.plcc_fit, "seed": settings.seed, "train_polarity": labels["train_polarity"],
            "test_polarity": labels["test_polarity"], "cv_by_scene": by_scene, "feature_sets": dict(fsets),
            "blas_threads": blas_threads}


def _cross_dataset_row(Xs_f, ys, Xt_f, yt, settings: RegressionSettings, folds, fitted, labels, head):
    """One feature set of :func:`cross_dataset`: fit on the source, choose alpha, test on the target."""
    t0 = time.perf_counter()
    path, cv = fit_select(Xs_f, ys, settings, folds)
    preds = path.predict(Xt_f)
    best = choose_alpha(settings, cv, preds, yt)
    if fitted is not None:
        fitted[head["feature_set"]] = {"path": as_linear_path(path), "cv": cv, "best": best, "folds": folds,
                                       "settings": settings}
    row = dict(head)
    row.update({"regressor": settings.regressor, "alpha": settings.alphas[best],
                "alpha_selection": settings.alpha_selection})
    row.update(_test_metrics(preds[best], yt, settings.plcc_fit))
    row.update({"plcc_fit": settings.plcc_fit, **labels, "standardize": settings.standardize,
                "seconds": time.perf_counter() - t0})
    if settings.alpha_selection == "cv":
        row["cv_criterion"] = settings.cv_criterion
    return row


def cross_dataset_with_regressor(regressor, test_features, test_scores, *, test_polarity: str = "mos",
                                 plcc_fit: str = "none", dataset: Optional[str] = None,
                                 regressor_file: Optional[str] = None) -> ProtocolResult:
    """Table 3 with a saved source regressor (:class:`grepq.eval.regressor.Regressor`, e.g. from ``grepq fit`` or
    ``grepq eval cross-dataset --save-regressor``): predict the target (N_t, P) features and correlate with the
    target's labels, both oriented "higher = better" (the regressor's labels polarity says which way it points).

    Returns:
        :class:`ProtocolResult` (protocol "cross_dataset") with one row, keys as :func:`cross_dataset`'s plus
        ``regressor_file``.
    """
    Xt = check_features(test_features, "test_features")
    yt = M.orient(_check_scores(test_scores, Xt.shape[0], "test_scores"), test_polarity)
    if plcc_fit not in M.PLCC_FITS:
        raise ValueError(f"plcc_fit: expected one of {M.PLCC_FITS}, got {plcc_fit!r}")
    q = M.orient(regressor.predict(Xt), regressor.polarity)
    info = regressor.info
    src = info.get("source") or {}
    source = src.get("source") or src.get("name") or src.get("path")
    labels = info.get("labels") or {}
    row = {"protocol": "cross_dataset", "source": source, "dataset": dataset, "feature_set": regressor.feature_set,
           "regressor": info.get("regressor"), "alpha": info.get("alpha"),
           "alpha_selection": (info.get("settings") or {}).get("alpha_selection")}
    row.update(_test_metrics(q, yt, plcc_fit))
    row.update({"plcc_fit": plcc_fit, "n_train": labels.get("n"), "n_test": int(Xt.shape[0]),
                "train_polarity": labels.get("oriented_from") or labels.get("polarity"),
                "test_polarity": "mos" if M.polarity_sign(test_polarity) > 0 else "dmos",
                "standardize": (info.get("settings") or {}).get("standardize"), "regressor_file": regressor_file})
    settings = dict(info.get("settings") or {}, regressor_file=regressor_file, fingerprints=regressor.fingerprints)
    return ProtocolResult(protocol="cross_dataset", dataset=dataset, source=source, rows=[row], settings=settings)


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
