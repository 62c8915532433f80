"""Evaluation protocols on extracted feature arrays: data-efficient (Table 1), cross-dataset (Table 3) and
zero-shot correlations (Table 2). SPEC section 5.

Inputs are plain arrays: ``features`` (N, P) (in grepq [HL 1024 | LL 128], P = 1152) and subjective
``scores`` (N,). Nothing here reads images or runs a network.

Design decisions (each one is a parameter; the defaults are stated here and recorded in every result):

* **Splits.** Split ``s`` draws from ``numpy.random.default_rng([seed, s])``: the same seed gives the same
  splits on every machine, and split ``s`` is the same for every label count and feature set (paired
  comparisons). Random 80/20 image split, or, when ``refs`` (reference scene of each image) is given, a
  split by scene: ``round(train_fraction * n_scenes)`` scenes train, the others test; no scene is in both.
  The labelled training images are the first ``n`` of one random permutation of the training part, so the
  50 labels are a subset of the 100, which are a subset of the 200.
* **Regressors.** ``"ridge"``: ``||y - Xw - b||^2 + alpha ||w||^2`` with an unpenalised intercept (the same
  model as ``sklearn.linear_model.Ridge``). With n <= P it is solved in the dual, from the centred Gram
  matrix ``X X^T`` (n x n), for every alpha in one batched solve; the data-efficient protocol computes that
  matrix once per split and feature set for the (up to) 200 labelled images and reuses its blocks for
  n = 50, 100, 200 and every CV fold, so no alpha or fold refits from the features. With n > P (cross-
  dataset) it is solved in the primal from the scatter matrix ``X^T X`` (one Cholesky per alpha; the CV
  folds reuse per-fold scatter sums from a single pass over the features). ``"svr"``: the paper's linear
  epsilon-insensitive SVR, solved exactly by libsvm (``sklearn.svm.SVR``) on the same precomputed linear
  kernel. Mapping of alpha to the SVR's C: the SVR minimises ``1/2 ||w||^2 + C sum(loss)``, i.e.
  ``sum(loss) + 1/(2C) ||w||^2``; to put alpha where ridge has it, ``C = 1 / (2 alpha)``. The SVR is fitted
  to training labels standardised to zero mean and unit variance (predictions mapped back), so epsilon
  (``SVR_EPSILON`` = 0.1, sklearn's default) and C mean the same on a 1-5 MOS and a 0-100 MOS. The exact
  solver needs the n x n kernel: at most ``SVR_MAX_TRAIN`` training samples (use ridge beyond).
* **Feature standardisation.** Off by default (``standardize=False``): the official README regresses the
  concatenated features with plain ridge and the alpha grid {0.1, 1, 10, 100} was tuned for them. With
  ``standardize=True`` every column is scaled to unit variance using the statistics of the training
  samples only (the labelled n, or each CV fold's training part), never the test part.
* **Alpha selection.** ``"cv"`` (default, honest): K-fold cross-validation on the n labelled training
  images only (folds by scene when ``refs`` is given); the criterion is the mean squared error of the
  pooled out-of-fold predictions (``cv_criterion="mse"``; stable with 10-sample folds) or their SRCC
  (``"srcc"``); ties go to the larger alpha. ``"oracle"``: the alpha with the best SRCC *on the test
  part*, as the paper's "SVR parameters are optimized to yield the best performances" may have done; it is
  optimistic and is labelled ``alpha_selection="oracle"`` in every row. ``"fixed"``: exactly one alpha.
  A "cv" run given one alpha is recorded as "fixed".
* **PLCC.** Each row has ``plcc`` computed with ``plcc_fit`` (default "none": raw Pearson of the
  regressor output, which is already on the MOS scale) and records ``plcc_fit``.
* **Polarity.** Within one dataset the regressor learns the labels' own direction, so correlations are
  positive for MOS and DMOS alike and the data-efficient protocol needs no polarity. Across datasets
  (``cross_dataset``) both label sets are first turned "higher = better" (DMOS negated,
  :func:`grepq.eval.metrics.orient`); the regressor is then trained to predict quality and tested against
  the target's quality. Zero-shot predictors are "higher = better"; the labels are oriented the same way.

Results are :class:`ProtocolResult` objects: ``rows`` (one dict per split / run), ``medians`` (median over
splits per n_train), ``to_rows()``, ``save_csv``, ``save_json``; :func:`load_result` reads the JSON back.

JSON schema (``RESULT_SCHEMA`` = "grepq-eval-result", version 1), read by :mod:`grepq.eval.tables`::

    {"schema": "grepq-eval-result", "schema_version": 1,
     "protocol": "data_efficient" | "cross_dataset" | "zero_shot",
     "dataset": target dataset name or null,   "source": source dataset (cross_dataset) or null,
     "variant": free label or null (e.g. the LL model's similarity measure, Table 4),
     "settings": {...every parameter of the run...},
     "rows": [{...}, ...],  "medians": [{...}, ...] (data_efficient)}

NaN (an undefined correlation) is written as ``null`` and read back as NaN.
"""
from __future__ import annotations

import csv
import json
import contextlib
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import linalg
from tqdm import tqdm

from grepq.eval import metrics as M

__all__ = [
    "PAPER_LABEL_COUNTS",
    "PAPER_N_SPLITS",
    "PAPER_TRAIN_FRACTION",
    "OFFICIAL_ALPHAS",
    "REGRESSORS",
    "ALPHA_SELECTIONS",
    "CV_CRITERIA",
    "SVR_EPSILON",
    "SVR_MAX_TRAIN",
    "RESULT_SCHEMA",
    "LinearPath",
    "fit_ridge_path",
    "fit_svr_path",
    "split_indices",
    "data_efficient",
    "cross_dataset",
    "zero_shot_correlations",
    "ProtocolResult",
    "load_result",
    "median_rows",
]

#: Label counts of Table 1 (paper section 4.2: "a random subset of 50, 100, or 200 samples").
PAPER_LABEL_COUNTS = (50, 100, 200)
#: Number of random train/test splits, medians reported (paper section 4.2: "median ... across 10 splits").
PAPER_N_SPLITS = 10
#: Training fraction of each split (paper section 4.2: "randomly split ... into 80% and 20%").
PAPER_TRAIN_FRACTION = 0.8
#: Regularisation grid (official README: "alpha was chosen from the set {0.1, 1, 10, 100}").
OFFICIAL_ALPHAS = (0.1, 1.0, 10.0, 100.0)
#: Default number of cross-validation folds for alpha selection (grepq choice).
DEFAULT_CV_FOLDS = 5

REGRESSORS = ("ridge", "svr")
ALPHA_SELECTIONS = ("cv", "oracle", "fixed")
CV_CRITERIA = ("mse", "srcc")
PROTOCOLS = ("data_efficient", "cross_dataset", "zero_shot")

#: SVR tube half-width in standard deviations of the training labels (sklearn's default 0.1; grepq fits
#: the SVR to standardised labels, see the module doc).
SVR_EPSILON = 0.1
#: Largest training set of the exact (kernel) SVR solver: the n x n linear kernel is held in memory.
SVR_MAX_TRAIN = 2000
#: libsvm stopping tolerance and kernel cache (MB).
SVR_TOL = 1e-4
SVR_CACHE_MB = 500

RESULT_SCHEMA = "grepq-eval-result"
RESULT_SCHEMA_VERSION = 1

#: BLAS threads used by ``data_efficient`` (grepq choice, measured): its matrices are small (n <= 200
#: labelled images), so one thread loses little, while multithreaded OpenBLAS on busy cores (other jobs on
#: the machine) was measured 50x slower (1.9 s vs 102 s for the 5-dataset benchmark).
DATA_EFFICIENT_BLAS_THREADS = 1

# rows are processed in chunks of this many samples when accumulating scatter matrices
_CHUNK = 4096

FeatureSpec = Union[slice, Sequence[int], np.ndarray]


# ---------------------------------------------------------------------------------------------------------
# Linear regressors fitted for every alpha at once
# ---------------------------------------------------------------------------------------------------------


@dataclass
class LinearPath:
    """Linear models ``f_a(x) = x . coef[a] + intercept[a]``, one per alpha.

    Attributes:
        alphas: (A,) regularisation strengths.
        coef: (A, P) weights in the caller's feature units (standardisation folded in).
        intercept: (A,) biases.
    """

    alphas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, X) -> np.ndarray:
        """Predict (A, M) scores for features X (M, P)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[1]:
            raise ValueError(
                f"features: expected shape (M, {self.coef.shape[1]}), got {tuple(X.shape)}"
            )
        return (X @ self.coef.T).T + self.intercept[:, None]


def _check_alphas(alphas) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"alphas: expected a non-empty 1-D sequence, got {alphas!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"alphas: expected finite values > 0, got {arr.tolist()}")
    return arr


def _check_features(X, name: str = "features") -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (N, P), got shape {tuple(arr.shape)}")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite (NaN/inf) of {arr.size}")
    return arr


def _check_scores(y, n: int, name: str = "scores") -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} values (one per feature row), got {arr.shape[0]}")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite (NaN/inf) of {arr.size}")
    return arr


def _column_scale(std: np.ndarray) -> np.ndarray:
    # a constant column is zero after centring: leave it unscaled instead of dividing by zero
    return np.where(std > 0, std, 1.0)


def _path_from_scatter(n, mean_x, mean_y, Sxx, sxy, alphas, standardize) -> LinearPath:
    """Primal ridge path from the centred scatter matrix Sxx (P, P) and cross vector sxy (P,) (n > P)."""
    if standardize:
        scale = _column_scale(np.sqrt(np.maximum(np.diag(Sxx), 0.0) / n))
        Sxx = Sxx / np.outer(scale, scale)
        sxy = sxy / scale
    else:
        scale = np.ones_like(mean_x)
    # one Cholesky factorisation of (Sxx + alpha I) per alpha: about 1/4 of the cost of one eigh of Sxx
    p = Sxx.shape[0]
    coef_s = np.empty((p, alphas.size))
    for i, a in enumerate(alphas):
        system = Sxx.copy()
        system.flat[:: p + 1] += a
        factor = linalg.cho_factor(system, overwrite_a=True, check_finite=False)
        coef_s[:, i] = linalg.cho_solve(factor, sxy, check_finite=False)
    coef = (coef_s / scale[:, None]).T
    intercept = mean_y - coef @ mean_x
    return LinearPath(alphas=alphas, coef=coef, intercept=intercept)


def _dual_solve(K: np.ndarray, y: np.ndarray, alphas: np.ndarray, regressor: str, svr_epsilon: float):
    """Dual solution for every alpha from the centred kernel K (n, n) of the training samples.

    Returns (C, b): C (n, A) dual coefficients and b (A,) biases; a sample whose centred kernel row against
    the training samples is k (n,) gets the prediction ``k @ C[:, a] + b[a]``.
    ridge: C = (K + alpha I)^-1 (y - mean y), b = mean y (one batched solve for all alphas).
    svr: libsvm on K with labels standardised, C_svm = 1 / (2 alpha), mapped back to label units.
    """
    n = y.size
    mean_y = float(y.mean())
    if regressor == "ridge":
        yc = y - mean_y
        system = K[None, :, :] + alphas[:, None, None] * np.eye(n)[None, :, :]
        rhs = np.broadcast_to(yc[None, :, None], (alphas.size, n, 1))
        C = np.linalg.solve(system, rhs)[:, :, 0].T
        return C, np.full(alphas.size, mean_y)
    from sklearn.svm import SVR

    sd_y = float(y.std()) or 1.0
    ys = (y - mean_y) / sd_y
    C = np.zeros((n, alphas.size))
    b = np.empty(alphas.size)
    for i, a in enumerate(alphas):
        model = SVR(kernel="precomputed", C=1.0 / (2.0 * a), epsilon=svr_epsilon, tol=SVR_TOL,
                    cache_size=SVR_CACHE_MB)
        model.fit(K, ys)
        C[model.support_, i] = sd_y * model.dual_coef_.ravel()
        b[i] = mean_y + sd_y * float(model.intercept_[0])
    return C, b


def _fit_dual_path(X, y, alphas, regressor, standardize, svr_epsilon) -> LinearPath:
    mean_x = X.mean(axis=0)
    scale = _column_scale(X.std(axis=0)) if standardize else np.ones(X.shape[1])
    Xs = (X - mean_x) / scale
    C, b = _dual_solve(Xs @ Xs.T, y, alphas, regressor, svr_epsilon)
    coef = ((Xs.T @ C) / scale[:, None]).T
    return LinearPath(alphas=alphas, coef=coef, intercept=b - coef @ mean_x)


def fit_ridge_path(X, y, alphas=OFFICIAL_ALPHAS, *, standardize: bool = False) -> LinearPath:
    """Ridge regression for every alpha at once.

    Solves ``min ||y - Xw - b||^2 + alpha ||w||^2`` (intercept b unpenalised, as sklearn's
    ``Ridge(fit_intercept=True)``). With n <= P the dual form on the centred Gram matrix
    ``K = Xc Xc^T`` (n x n): ``w_a = Xc^T (K + a I)^-1 yc``, one batched solve for all alphas; with n > P the
    primal form on ``Xc^T Xc`` (P x P), one Cholesky factorisation per alpha.

    Args:
        X: (n, P) training features. y: (n,) labels. alphas: (A,) strengths > 0.
        standardize: scale columns to unit variance using these n samples (folded back into ``coef``).

    Returns:
        :class:`LinearPath` with coef (A, P) and intercept (A,).
    """
    X = _check_features(X)
    y = _check_scores(y, X.shape[0], "labels")
    alphas = _check_alphas(alphas)
    n, p = X.shape
    if n < 2:
        raise ValueError(f"ridge: expected at least 2 training samples, got {n}")
    if n <= p:
        return _fit_dual_path(X, y, alphas, "ridge", standardize, SVR_EPSILON)
    mean_x = X.mean(axis=0)
    mean_y = float(y.mean())
    Xc = X - mean_x
    return _path_from_scatter(n, mean_x, mean_y, Xc.T @ Xc, Xc.T @ (y - mean_y), alphas, standardize)


def fit_svr_path(
    X, y, alphas=OFFICIAL_ALPHAS, *, standardize: bool = False, epsilon: float = SVR_EPSILON
) -> LinearPath:
    """Linear epsilon-insensitive SVR for every alpha (libsvm on the precomputed linear kernel).

    ``C = 1 / (2 alpha)`` (see the module doc); labels standardised on these n samples, epsilon in their
    standard deviations; features centred (and scaled if ``standardize``) on these n samples.

    Args:
        X: (n, P) training features, n <= ``SVR_MAX_TRAIN``. y: (n,) labels. alphas: (A,) strengths > 0.

    Returns:
        :class:`LinearPath` with coef (A, P) and intercept (A,) in the original units.
    """
    X = _check_features(X)
    y = _check_scores(y, X.shape[0], "labels")
    alphas = _check_alphas(alphas)
    n = X.shape[0]
    if n > SVR_MAX_TRAIN:
        raise ValueError(
            f"regressor 'svr': expected at most {SVR_MAX_TRAIN} training samples (the exact solver holds "
            f"the n x n kernel), got {n}; use regressor='ridge' (the official README's regressor)"
        )
    if n < 2:
        raise ValueError(f"svr: expected at least 2 training samples, got {n}")
    return _fit_dual_path(X, y, alphas, "svr", standardize, epsilon)


def _fit_path(regressor, X, y, alphas, standardize, svr_epsilon) -> LinearPath:
    if regressor == "ridge":
        return fit_ridge_path(X, y, alphas, standardize=standardize)
    return fit_svr_path(X, y, alphas, standardize=standardize, epsilon=svr_epsilon)


def _centred_blocks(G: np.ndarray, tr: np.ndarray, ev: Optional[np.ndarray] = None):
    """Centre a raw Gram matrix G (m, m) on the samples ``tr``: kernel (|tr|, |tr|) of the training samples
    and, if ``ev`` is given, the cross-kernel (|ev|, |tr|) of the ``ev`` samples, both after subtracting
    the mean feature vector of ``tr`` (without touching the features)."""
    Gtt = G[np.ix_(tr, tr)]
    r = Gtt.mean(axis=1)
    s = r.mean()
    Ktt = Gtt - r[:, None] - r[None, :] + s
    if ev is None:
        return Ktt
    Get = G[np.ix_(ev, tr)]
    return Ktt, Get - Get.mean(axis=1)[:, None] - r[None, :] + s


def _blas_threads(n_threads: Optional[int]):
    """Context limiting BLAS threads to ``n_threads`` (None: leave the process setting alone)."""
    if n_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_threads), user_api="blas")


# ---------------------------------------------------------------------------------------------------------
# Splits and folds
# ---------------------------------------------------------------------------------------------------------


def _scene_codes(refs, n: int) -> np.ndarray:
    arr = np.asarray(refs)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"refs: expected {n} reference-scene labels (one per image), got shape {arr.shape}")
    _, codes = np.unique(arr.astype(str), return_inverse=True)
    return codes.reshape(-1)


def split_indices(
    n_items: int,
    split: int,
    *,
    seed: int = 0,
    train_fraction: float = PAPER_TRAIN_FRACTION,
    refs=None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test split number ``split``.

    Args:
        n_items: N, the number of images. split: split number s >= 0. seed: base seed.
        train_fraction: fraction of images (or of scenes when ``refs`` is given) in the training part.
        refs: optional (N,) reference-scene label per image; the split is then by scene.

    Returns:
        (train, test): int arrays of image indices, train in random order (its first n are the labelled
        images of label count n), test sorted. Disjoint; their union is range(N).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: expected a value in (0, 1), got {train_fraction}")
    if n_items < 2:
        raise ValueError(f"expected at least 2 images to split, got {n_items}")
    rng = np.random.default_rng([int(seed), int(split)])
    if refs is None:
        perm = rng.permutation(n_items)
        n_tr = int(round(train_fraction * n_items))
        n_tr = min(max(n_tr, 1), n_items - 1)
        return perm[:n_tr], np.sort(perm[n_tr:])
    codes = _scene_codes(refs, n_items)
    n_scenes = int(codes.max()) + 1
    if n_scenes < 2:
        raise ValueError(f"refs: a split by scene needs at least 2 scenes, got {n_scenes}")
    scene_perm = rng.permutation(n_scenes)
    n_tr_scenes = min(max(int(round(train_fraction * n_scenes)), 1), n_scenes - 1)
    train_scene = np.zeros(n_scenes, dtype=bool)
    train_scene[scene_perm[:n_tr_scenes]] = True
    in_train = train_scene[codes]
    train = rng.permutation(np.flatnonzero(in_train))
    test = np.flatnonzero(~in_train)
    return train, test


def _folds(n: int, k: int, rng: np.random.Generator, groups: Optional[np.ndarray]) -> List[np.ndarray]:
    """K folds of range(n) (validation index arrays), by group when ``groups`` (n,) is given."""
    if groups is None:
        k = min(k, n)
        if k < 2:
            raise ValueError(f"cross-validation: expected at least 2 training samples, got {n}")
        return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]
    uniq = np.unique(groups)
    k = min(k, uniq.size)
    if k < 2:
        raise ValueError(
            f"cross-validation by scene: expected labelled images from at least 2 scenes, got {uniq.size}"
        )
    chunks = np.array_split(rng.permutation(uniq), k)
    return [np.flatnonzero(np.isin(groups, c)) for c in chunks]


def _pick_best(scores: np.ndarray) -> int:
    """Index of the best (largest) finite score; ties (and all-NaN) go to the largest alpha (last)."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    best = np.flatnonzero(s == s.max())
    return int(best[-1])


def _scores_from_oof(oof: np.ndarray, y: np.ndarray, criterion: str) -> np.ndarray:
    """(A,) CV scores (larger = better) from pooled out-of-fold predictions oof (A, n)."""
    if criterion == "mse":
        return -np.mean((oof - y[None, :]) ** 2, axis=1)
    return np.array([M.srcc(o, y) for o in oof])


def _cv_scores(regressor, X, y, alphas, folds, criterion, standardize, svr_epsilon) -> np.ndarray:
    """CV scores of every alpha, refitting in feature space on each fold (used with standardisation)."""
    oof = np.empty((alphas.size, y.size))
    all_idx = np.arange(y.size)
    for va in folds:
        tr = np.setdiff1d(all_idx, va, assume_unique=True)
        oof[:, va] = _fit_path(regressor, X[tr], y[tr], alphas, standardize, svr_epsilon).predict(X[va])
    return _scores_from_oof(oof, y, criterion)


def _cv_scores_gram(regressor, G, y, alphas, folds, criterion, svr_epsilon) -> np.ndarray:
    """CV scores of every alpha from the Gram matrix G of the n labelled samples (no pass over features)."""
    oof = np.empty((alphas.size, y.size))
    all_idx = np.arange(y.size)
    for va in folds:
        tr = np.setdiff1d(all_idx, va, assume_unique=True)
        Ktt, Kvt = _centred_blocks(G, tr, va)
        C, b = _dual_solve(Ktt, y[tr], alphas, regressor, svr_epsilon)
        oof[:, va] = (Kvt @ C + b).T
    return _scores_from_oof(oof, y, criterion)


def _resolve_selection(alpha_selection: str, alphas: np.ndarray) -> str:
    if alpha_selection not in ALPHA_SELECTIONS:
        raise ValueError(f"alpha_selection: expected one of {ALPHA_SELECTIONS}, got {alpha_selection!r}")
    if alpha_selection == "fixed" and alphas.size != 1:
        raise ValueError(f"alpha_selection 'fixed': expected exactly one alpha, got {alphas.tolist()}")
    if alphas.size == 1:
        return "fixed"
    return alpha_selection


def _resolve_feature_sets(feature_sets, n_cols: int) -> "OrderedDict[str, Union[slice, np.ndarray]]":
    if feature_sets is None:
        return OrderedDict([("all", slice(None))])
    if not isinstance(feature_sets, Mapping) or not feature_sets:
        raise ValueError(f"feature_sets: expected a non-empty mapping name -> column slice, got {feature_sets!r}")
    out: "OrderedDict[str, Union[slice, np.ndarray]]" = OrderedDict()
    for name, spec in feature_sets.items():
        if isinstance(spec, slice):
            for bound in (spec.start, spec.stop):
                if bound is not None and bound > n_cols:
                    raise ValueError(
                        f"feature set {name!r}: {spec} reaches column {bound}, but the features have "
                        f"{n_cols} columns"
                    )
            if np.arange(n_cols)[spec].size == 0:
                raise ValueError(f"feature set {name!r}: {spec} selects no column of {n_cols}")
            out[str(name)] = spec
        else:
            idx = np.asarray(spec)
            if idx.dtype == bool:
                if idx.shape != (n_cols,):
                    raise ValueError(f"feature set {name!r}: expected a boolean mask of {n_cols}, got {idx.shape}")
                idx = np.flatnonzero(idx)
            idx = idx.astype(np.int64).reshape(-1)
            if idx.size == 0 or idx.min() < -n_cols or idx.max() >= n_cols:
                raise ValueError(
                    f"feature set {name!r}: expected column indices in [0, {n_cols}), got {idx.size} indices"
                    + (f" from {idx.min()} to {idx.max()}" if idx.size else "")
                )
            out[str(name)] = idx
    return out


def _test_metrics(pred: np.ndarray, y: np.ndarray, plcc_fit: str) -> Dict[str, float]:
    return {"srcc": M.srcc(pred, y), "plcc": M.plcc(pred, y, plcc_fit), "krcc": M.krcc(pred, y)}


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------

_SPLIT_LEVEL_KEYS = ("split", "alpha", "srcc", "plcc", "krcc", "n_test", "train_scenes", "test_scenes",
                     "cv_score", "seconds")


def median_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Median over splits: one row per combination of the non-split keys (dataset, feature_set, n_train,
    regressor, alpha_selection, ...), with median ``srcc``, ``plcc``, ``krcc``, ``n_splits`` and the
    most frequent ``alpha`` (``alpha_mode``). NaN correlations are ignored (NaN when every split is NaN).
    """
    groups: "OrderedDict[tuple, List[Mapping[str, Any]]]" = OrderedDict()
    for row in rows:
        key = tuple(sorted((k, _hashable(v)) for k, v in row.items() if k not in _SPLIT_LEVEL_KEYS))
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        summary = dict(key)
        for metric in ("srcc", "plcc", "krcc"):
            summary[metric] = M.median_or_nan([r.get(metric) for r in members])
        summary["n_splits"] = len(members)
        alphas = [r.get("alpha") for r in members if r.get("alpha") is not None]
        if alphas:
            vals, counts = np.unique(np.asarray(alphas, dtype=float), return_counts=True)
            summary["alpha_mode"] = float(vals[np.argmax(counts)])
        out.append(summary)
    return out


def _hashable(v):
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, dict):
        return tuple(sorted(v.items()))
    return v


def _json_clean(obj):
    """NaN/inf -> None, numpy scalars/arrays -> Python, slices -> "start:stop" strings."""
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_clean(obj.tolist())
    if isinstance(obj, slice):
        return f"{'' if obj.start is None else obj.start}:{'' if obj.stop is None else obj.stop}"
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


_FLOAT_FIELDS = ("srcc", "plcc", "krcc", "plcc_raw", "plcc_cubic", "plcc_logistic")


def _restore_nan(row: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(row)
    for k in _FLOAT_FIELDS:
        if k in out and out[k] is None:
            out[k] = float("nan")
    return out


@dataclass
class ProtocolResult:
    """Result of one protocol run on one (target) dataset.

    Attributes:
        protocol: "data_efficient" | "cross_dataset" | "zero_shot".
        dataset: target dataset name (or None).
        rows: one dict per split, label count and feature set (data_efficient), per feature set
            (cross_dataset) or per predictor (zero_shot). Every row repeats ``protocol`` and ``dataset``.
        settings: the parameters of the run.
        source: training dataset (cross_dataset).
        variant: free label (e.g. the LL similarity measure, Table 4).
        split_indices: only with ``keep_indices=True``: {split: {"train", "test", "labelled": {n: idx}}};
            not serialised.
    """

    protocol: str
    dataset: Optional[str]
    rows: List[Dict[str, Any]]
    settings: Dict[str, Any] = field(default_factory=dict)
    source: Optional[str] = None
    variant: Optional[str] = None
    split_indices: Optional[Dict[int, Dict[str, Any]]] = None

    @property
    def medians(self) -> List[Dict[str, Any]]:
        """Median over splits per n_train (and feature set, regressor, ...); see :func:`median_rows`."""
        return median_rows(self.rows) if self.protocol == "data_efficient" else [dict(r) for r in self.rows]

    def to_rows(self) -> List[Dict[str, Any]]:
        """Copies of the per-split / per-run rows."""
        return [dict(r) for r in self.rows]

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document of the module doc (NaN kept as float here; ``save_json`` writes null)."""
        d = {
            "schema": RESULT_SCHEMA,
            "schema_version": RESULT_SCHEMA_VERSION,
            "protocol": self.protocol,
            "dataset": self.dataset,
            "source": self.source,
            "variant": self.variant,
            "settings": self.settings,
            "rows": self.to_rows(),
        }
        if self.protocol == "data_efficient":
            d["medians"] = self.medians
        return d

    def save_json(self, path) -> str:
        """Write the result as JSON (schema in the module doc); returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(_json_clean(self.to_dict()), fh, indent=1, allow_nan=False)
            fh.write("\n")
        return path

    def save_csv(self, path) -> str:
        """Write the rows as CSV (one line per row, union of the keys as header; NaN as empty)."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        keys: List[str] = []
        for r in self.rows:
            keys.extend(k for k in r if k not in keys)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: ("" if v is None else v) for k, v in _json_clean(r).items()})
        return path

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "<dict>") -> "ProtocolResult":
        """Build a result from a JSON document (as written by :meth:`save_json`)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{origin}: expected a JSON object, got {type(d).__name__}")
        protocol = d.get("protocol")
        if protocol not in PROTOCOLS:
            raise ValueError(f"{origin}: expected 'protocol' in {PROTOCOLS}, got {protocol!r}")
        rows = d.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise ValueError(f"{origin}: expected 'rows' to be a list of objects, got {type(rows).__name__}")
        dataset = d.get("dataset")
        out_rows = []
        for r in rows:
            r = _restore_nan(dict(r))
            r.setdefault("protocol", protocol)
            if dataset is not None:
                r.setdefault("dataset", dataset)
            if d.get("source") is not None:
                r.setdefault("source", d.get("source"))
            if d.get("variant") is not None:
                r.setdefault("variant", d.get("variant"))
            out_rows.append(r)
        return cls(protocol=protocol, dataset=dataset, rows=out_rows, settings=dict(d.get("settings") or {}),
                   source=d.get("source"), variant=d.get("variant"))


def load_result(path) -> ProtocolResult:
    """Read a result JSON written by :meth:`ProtocolResult.save_json`."""
    path = os.fspath(path)
    with open(path, "r", encoding="utf-8") as fh:
        try:
            d = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: expected a JSON result file, got invalid JSON ({exc})") from exc
    return ProtocolResult.from_dict(d, origin=path)


# ---------------------------------------------------------------------------------------------------------
# Data-efficient protocol (Table 1)
# ---------------------------------------------------------------------------------------------------------


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
    variant: Optional[str] = None,
    keep_indices: bool = False,
    progress: bool = False,
    blas_threads: Optional[int] = DATA_EFFICIENT_BLAS_THREADS,
) -> ProtocolResult:
    """Few-label evaluation: regress scores from features with n labels, test on a held-out 20 %.

    For each split s < n_splits (:func:`split_indices`), each n in ``n_train_list`` and each feature set:
    fit the regressor on the first n images of the training part (alpha chosen by ``alpha_selection``),
    predict the test part, and record SRCC, PLCC (``plcc_fit``) and KRCC. See the module doc for every
    choice.

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
        dataset, variant: labels stored in the result. keep_indices: keep the split indices in the result.
        progress: show a tqdm bar over splits.
        blas_threads: BLAS threads during the run (default 1, see ``DATA_EFFICIENT_BLAS_THREADS``; None
            leaves the process setting alone).

    Returns:
        :class:`ProtocolResult` (protocol "data_efficient"); rows have keys dataset, split, n_train, n_test,
        alpha, srcc, plcc, krcc, plcc_fit, feature_set, regressor, alpha_selection (+ cv_criterion,
        standardize, seed, variant, train_scenes/test_scenes with refs); ``.medians`` gives the median per
        n_train.
    """
    X = _check_features(features)
    N, P = X.shape
    y = _check_scores(scores, N)
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor: expected one of {REGRESSORS}, got {regressor!r}")
    if cv_criterion not in CV_CRITERIA:
        raise ValueError(f"cv_criterion: expected one of {CV_CRITERIA}, got {cv_criterion!r}")
    if plcc_fit not in M.PLCC_FITS:
        raise ValueError(f"plcc_fit: expected one of {M.PLCC_FITS}, got {plcc_fit!r}")
    if int(n_splits) < 1:
        raise ValueError(f"n_splits: expected >= 1, got {n_splits}")
    n_list = [int(n) for n in n_train_list]
    if not n_list or min(n_list) < 2:
        raise ValueError(f"n_train_list: expected label counts >= 2, got {list(n_train_list)}")
    alpha_arr = _check_alphas(alphas)
    selection = _resolve_selection(alpha_selection, alpha_arr)
    fsets = _resolve_feature_sets(feature_sets, P)
    codes = _scene_codes(refs, N) if refs is not None else None

    settings = {
        "n_train_list": n_list, "n_splits": int(n_splits), "train_fraction": float(train_fraction),
        "seed": int(seed), "regressor": regressor, "alphas": alpha_arr.tolist(),
        "alpha_selection": selection, "cv_folds": int(cv_folds), "cv_criterion": cv_criterion,
        "split_by_scene": codes is not None, "standardize": bool(standardize), "plcc_fit": plcc_fit,
        "svr_epsilon": float(svr_epsilon) if regressor == "svr" else None,
        "svr_C": "1/(2*alpha)" if regressor == "svr" else None,
        "feature_sets": {k: v for k, v in fsets.items()}, "n_images": N, "n_features": P,
    }
    with _blas_threads(blas_threads):
        rows, kept = _data_efficient_loop(
            X, y, n_list, int(n_splits), train_fraction, int(seed), regressor, alpha_arr, selection,
            int(cv_folds), cv_criterion, refs, codes, fsets, bool(standardize), plcc_fit, svr_epsilon,
            dataset, variant, keep_indices, progress)
    settings["blas_threads"] = blas_threads
    return ProtocolResult(protocol="data_efficient", dataset=dataset, rows=rows, settings=settings,
                          variant=variant, split_indices=kept if keep_indices else None)


def _data_efficient_loop(X, y, n_list, n_splits, train_fraction, seed, regressor, alpha_arr, selection,
                         cv_folds, cv_criterion, refs, codes, fsets, standardize, plcc_fit, svr_epsilon,
                         dataset, variant, keep_indices, progress):
    N = X.shape[0]
    if regressor == "svr" and max(n_list) > SVR_MAX_TRAIN:
        raise ValueError(f"regressor 'svr': expected label counts <= {SVR_MAX_TRAIN}, got {max(n_list)}")
    max_n = max(n_list)
    rows: List[Dict[str, Any]] = []
    kept: Dict[int, Dict[str, Any]] = {}
    for s in tqdm(range(int(n_splits)), desc=f"data-efficient {dataset or ''}".strip(), disable=not progress):
        train, test = split_indices(N, s, seed=seed, train_fraction=train_fraction, refs=refs)
        if test.size < 3:
            raise ValueError(f"split {s}: expected at least 3 test images, got {test.size}")
        if max_n > train.size:
            raise ValueError(
                f"n_train={max_n} exceeds the {train.size} training images of split {s} "
                f"({N} images, train_fraction={train_fraction})"
            )
        lab_max = train[:max_n]  # nested: the first n of these are the n labelled images
        X_lab_all = X[lab_max]
        y_lab_all = y[lab_max]
        X_test_all = X[test]
        y_test = y[test]
        split_info = {"protocol": "data_efficient", "dataset": dataset, "split": s, "n_test": int(test.size)}
        if codes is not None:
            split_info["train_scenes"] = int(np.unique(codes[train]).size)
            split_info["test_scenes"] = int(np.unique(codes[test]).size)
        if keep_indices:
            kept[s] = {"train": train, "test": test, "labelled": {n: lab_max[:n] for n in n_list}}
        folds = {}
        if selection == "cv":
            for n in n_list:
                fold_rng = np.random.default_rng([int(seed), s, n])
                folds[n] = _folds(n, int(cv_folds), fold_rng, None if codes is None else codes[lab_max[:n]])
        for fs_name, cols in fsets.items():
            X_l = X_lab_all[:, cols]
            X_t = X_test_all[:, cols]
            if not standardize:
                # one Gram matrix of the (up to) max_n labelled images serves every n, alpha and CV fold
                shift = X_l.mean(axis=0)
                X_l0 = X_l - shift
                G = X_l0 @ X_l0.T
            for n in n_list:
                y_n = y_lab_all[:n]
                if standardize:
                    preds = _fit_path(regressor, X_l[:n], y_n, alpha_arr, True, svr_epsilon).predict(X_t)
                    cv_scores = (_cv_scores(regressor, X_l[:n], y_n, alpha_arr, folds[n], cv_criterion, True,
                                            svr_epsilon) if selection == "cv" else None)
                else:
                    C, b = _dual_solve(_centred_blocks(G, np.arange(n)), y_n, alpha_arr, regressor, svr_epsilon)
                    mu = X_l0[:n].mean(axis=0)
                    coef = (X_l0[:n] - mu).T @ C  # (P_fs, A)
                    preds = (X_t @ coef - (shift + mu) @ coef + b).T  # (A, n_test)
                    cv_scores = (_cv_scores_gram(regressor, G, y_n, alpha_arr, folds[n], cv_criterion,
                                                 svr_epsilon) if selection == "cv" else None)
                if selection == "cv":
                    best = _pick_best(cv_scores)
                elif selection == "oracle":
                    best = _pick_best(np.array([M.srcc(p, y_test) for p in preds]))
                else:
                    best = 0
                row = dict(split_info)
                row.update({"n_train": n, "alpha": float(alpha_arr[best])})
                row.update(_test_metrics(preds[best], y_test, plcc_fit))
                row.update({"plcc_fit": plcc_fit, "feature_set": fs_name, "regressor": regressor,
                            "alpha_selection": selection, "standardize": bool(standardize),
                            "seed": int(seed)})
                if selection == "cv":
                    row["cv_criterion"] = cv_criterion
                    row["cv_score"] = float(cv_scores[best])
                if variant is not None:
                    row["variant"] = variant
                rows.append(row)
    return rows, kept


# ---------------------------------------------------------------------------------------------------------
# Cross-dataset protocol (Table 3)
# ---------------------------------------------------------------------------------------------------------


def _scatter_stats(X: np.ndarray, y: np.ndarray, idx: np.ndarray, shift: np.ndarray):
    """Sums over rows ``idx`` of (X - shift): count, sum x (P,), sum x x^T (P,P), sum x y (P,), sum y."""
    p = X.shape[1]
    sx = np.zeros(p)
    sxx = np.zeros((p, p))
    sxy = np.zeros(p)
    for start in range(0, idx.size, _CHUNK):
        part = idx[start:start + _CHUNK]
        Xc = X[part] - shift
        sx += Xc.sum(axis=0)
        sxx += Xc.T @ Xc
        sxy += Xc.T @ y[part]
    return idx.size, sx, sxx, sxy, float(y[idx].sum())


def _path_from_sums(n, sx, sxx, sxy, sy, shift, alphas, standardize) -> LinearPath:
    mean_s = sx / n
    mean_y = sy / n
    Sxx = sxx - n * np.outer(mean_s, mean_s)
    Sxy = sxy - mean_s * sy
    path = _path_from_scatter(n, mean_s, mean_y, Sxx, Sxy, alphas, standardize)
    # the model was fitted on X - shift: fold the shift into the intercept
    path.intercept = path.intercept - path.coef @ shift
    return path


def _ridge_path_and_cv_large(X, y, alphas, folds, criterion, standardize):
    """Primal ridge path on all of X (n > P) and, if ``folds`` is given, the (A,) CV scores of every alpha,
    all from per-fold scatter sums collected in one pass over X. Returns (path, scores or None)."""
    shift = X.mean(axis=0)
    parts = folds if folds is not None else [np.arange(X.shape[0])]
    stats = [_scatter_stats(X, y, idx, shift) for idx in parts]
    total = [sum(st[i] for st in stats) for i in range(5)]
    path = _path_from_sums(*total, shift, alphas, standardize)
    if folds is None:
        return path, None
    oof = np.empty((alphas.size, y.size))
    for va, st in zip(folds, stats):
        fold_path = _path_from_sums(*[total[i] - st[i] for i in range(5)], shift, alphas, standardize)
        oof[:, va] = fold_path.predict(X[va])
    return path, _scores_from_oof(oof, y, criterion)


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
) -> ProtocolResult:
    """Fit one regressor on the whole source dataset and test it on the whole target dataset.

    Both label sets are oriented "higher = better" first (DMOS negated, :func:`grepq.eval.metrics.orient`):
    a regressor trained on LIVE's DMOS then predicts quality, and is correlated with CSIQ's negated DMOS or
    a MOS dataset's MOS, so a good model gets positive correlations whatever the two polarities. Scale
    differences between the two label sets do not matter: SRCC, KRCC and Pearson are invariant to an
    increasing affine map.

    Args:
        train_features: (N_s, P) source features. train_scores: (N_s,) source labels.
        test_features: (N_t, P) target features. test_scores: (N_t,) target labels.
        regressor: "ridge" | "svr" (svr: N_s <= ``SVR_MAX_TRAIN``). alphas: grid or one value.
        alpha_selection: "cv" (K-fold on the source only; by scene when ``train_refs`` is given) |
            "oracle" (best SRCC on the target; labelled) | "fixed".
        train_polarity, test_polarity: "mos" | "dmos".
        feature_sets: {name: columns}; one row per feature set. plcc_fit: PLCC mapping.
        seed: seed of the CV folds. source, dataset: names stored in the result.
        blas_threads: limit BLAS threads during the run (None: leave the process setting alone; the
            P x P scatter matrices here profit from threads on an idle machine).

    Returns:
        :class:`ProtocolResult` (protocol "cross_dataset"); rows: source, dataset, feature_set, regressor,
        alpha, alpha_selection, srcc, plcc, krcc, plcc_fit, n_train, n_test, train_polarity, test_polarity.
    """
    Xs = _check_features(train_features, "train_features")
    Xt = _check_features(test_features, "test_features")
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"test_features: expected {Xs.shape[1]} columns like train_features, got {Xt.shape[1]}"
        )
    ys = M.orient(_check_scores(train_scores, Xs.shape[0], "train_scores"), train_polarity)
    yt = M.orient(_check_scores(test_scores, Xt.shape[0], "test_scores"), test_polarity)
    if regressor not in REGRESSORS:
        raise ValueError(f"regressor: expected one of {REGRESSORS}, got {regressor!r}")
    if cv_criterion not in CV_CRITERIA:
        raise ValueError(f"cv_criterion: expected one of {CV_CRITERIA}, got {cv_criterion!r}")
    if plcc_fit not in M.PLCC_FITS:
        raise ValueError(f"plcc_fit: expected one of {M.PLCC_FITS}, got {plcc_fit!r}")
    if regressor == "svr" and Xs.shape[0] > SVR_MAX_TRAIN:
        raise ValueError(
            f"regressor 'svr': expected at most {SVR_MAX_TRAIN} source images (exact kernel solver), got "
            f"{Xs.shape[0]}; use regressor='ridge'"
        )
    alpha_arr = _check_alphas(alphas)
    selection = _resolve_selection(alpha_selection, alpha_arr)
    fsets = _resolve_feature_sets(feature_sets, Xs.shape[1])
    codes = _scene_codes(train_refs, Xs.shape[0]) if train_refs is not None else None
    folds = None
    if selection == "cv":
        folds = _folds(Xs.shape[0], int(cv_folds), np.random.default_rng([int(seed), 0]), codes)

    rows = []
    with _blas_threads(blas_threads):
        for fs_name, cols in fsets.items():
            t0 = time.perf_counter()
            Xs_f = Xs[:, cols]
            Xt_f = Xt[:, cols]
            cv = None
            if regressor == "ridge" and Xs_f.shape[0] > Xs_f.shape[1]:
                path, cv = _ridge_path_and_cv_large(Xs_f, ys, alpha_arr, folds, cv_criterion, standardize)
            else:
                path = _fit_path(regressor, Xs_f, ys, alpha_arr, standardize, svr_epsilon)
                if selection == "cv":
                    cv = _cv_scores(regressor, Xs_f, ys, alpha_arr, folds, cv_criterion, standardize, svr_epsilon)
            preds = path.predict(Xt_f)
            if selection == "cv":
                best = _pick_best(cv)
            elif selection == "oracle":
                best = _pick_best(np.array([M.srcc(p, yt) for p in preds]))
            else:
                best = 0
            row = {"protocol": "cross_dataset", "source": source, "dataset": dataset, "feature_set": fs_name,
                   "regressor": regressor, "alpha": float(alpha_arr[best]), "alpha_selection": selection}
            row.update(_test_metrics(preds[best], yt, plcc_fit))
            row.update({"plcc_fit": plcc_fit, "n_train": int(Xs.shape[0]), "n_test": int(Xt.shape[0]),
                        "train_polarity": "mos" if M.polarity_sign(train_polarity) > 0 else "dmos",
                        "test_polarity": "mos" if M.polarity_sign(test_polarity) > 0 else "dmos",
                        "standardize": bool(standardize), "seconds": time.perf_counter() - t0})
            if selection == "cv":
                row["cv_criterion"] = cv_criterion
            rows.append(row)
    settings = {"regressor": regressor, "alphas": alpha_arr.tolist(), "alpha_selection": selection,
                "cv_folds": int(cv_folds), "cv_criterion": cv_criterion, "standardize": bool(standardize),
                "plcc_fit": plcc_fit, "seed": int(seed), "train_polarity": rows[0]["train_polarity"],
                "test_polarity": rows[0]["test_polarity"], "cv_by_scene": codes is not None,
                "feature_sets": dict(fsets), "blas_threads": blas_threads}
    return ProtocolResult(protocol="cross_dataset", dataset=dataset, source=source, rows=rows,
                          settings=settings)


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
