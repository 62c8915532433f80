"""Linear regressors on frozen features and the choice of their regularisation (docs/method.md §5): the one
implementation used by the data-efficient and cross-dataset protocols and by ``grepq fit``.

Design decisions (each one is a field of :class:`RegressionSettings`; the defaults are stated here and recorded
in every result and regressor file):

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
  solver needs the n x n kernel: at most ``SVR_MAX_TRAIN`` training samples; beyond, every entry point
  (``fit_svr_path``, ``fit_select``, both protocols, ``grepq fit``) raises the error of
  :func:`check_svr_size`, which says how to proceed (ridge, or the SVR on a subset). Not silently capped,
  not replaced: liblinear's ``LinearSVR`` penalises the intercept and differed from libsvm's exact solution
  by 1e-4 to 0.6 in predictions on standardised labels (400 x 30 features, intercept_scaling 1 to 1e4), so
  it would be another regressor, not the paper's.
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
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import linalg

from . import metrics as M

__all__ = [
    "OFFICIAL_ALPHAS", "DEFAULT_CV_FOLDS", "REGRESSORS", "ALPHA_SELECTIONS", "CV_CRITERIA", "SVR_EPSILON",
    "SVR_MAX_TRAIN", "RegressionSettings", "LinearPath", "fit_ridge_path", "fit_svr_path",
]

#: Regularisation grid (official README: "alpha was chosen from the set {0.1, 1, 10, 100}").
OFFICIAL_ALPHAS = (0.1, 1.0, 10.0, 100.0)
#: Default number of cross-validation folds for alpha selection (grepq choice).
DEFAULT_CV_FOLDS = 5

REGRESSORS = ("ridge", "svr")
ALPHA_SELECTIONS = ("cv", "oracle", "fixed")
CV_CRITERIA = ("mse", "srcc")

#: SVR tube half-width in standard deviations of the training labels (sklearn's default 0.1; grepq fits
#: the SVR to standardised labels, see the module doc).
SVR_EPSILON = 0.1
#: Largest training set of the exact (kernel) SVR solver: the n x n linear kernel is held in memory.
SVR_MAX_TRAIN = 2000
#: libsvm stopping tolerance and kernel cache (MB).
SVR_TOL = 1e-4
SVR_CACHE_MB = 500

# rows are processed in chunks of this many samples when accumulating scatter matrices
_CHUNK = 4096

FeatureSpec = Union[slice, Sequence[int], np.ndarray]


@dataclass(frozen=True)
class RegressionSettings:
    """Every choice of the regressor and of its alpha, validated once (see the module doc).

    Attributes:
        regressor: "ridge" (official README) | "svr" (paper). alphas: the grid (official: 0.1, 1, 10, 100).
        alpha_selection: "cv" | "oracle" | "fixed" ("cv"/"oracle" with one alpha are stored as "fixed").
        cv_folds: K of the K-fold CV. cv_criterion: "mse" | "srcc".
        standardize: unit-variance feature columns from the training samples only.
        svr_epsilon: SVR tube half-width in label standard deviations. plcc_fit: PLCC mapping of the rows.
        seed: seed of the CV folds (and of the splits in the data-efficient protocol).
    """

    regressor: str = "ridge"
    alphas: Tuple[float, ...] = OFFICIAL_ALPHAS
    alpha_selection: str = "cv"
    cv_folds: int = DEFAULT_CV_FOLDS
    cv_criterion: str = "mse"
    standardize: bool = False
    svr_epsilon: float = SVR_EPSILON
    plcc_fit: str = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.regressor not in REGRESSORS:
            raise ValueError(f"regressor: expected one of {REGRESSORS}, got {self.regressor!r}")
        if self.cv_criterion not in CV_CRITERIA:
            raise ValueError(f"cv_criterion: expected one of {CV_CRITERIA}, got {self.cv_criterion!r}")
        if self.plcc_fit not in M.PLCC_FITS:
            raise ValueError(f"plcc_fit: expected one of {M.PLCC_FITS}, got {self.plcc_fit!r}")
        arr = _check_alphas(self.alphas)
        eps = float(self.svr_epsilon)
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"svr_epsilon: expected a finite value >= 0, got {self.svr_epsilon!r}")
        set_ = object.__setattr__
        set_(self, "alphas", tuple(float(a) for a in arr))
        set_(self, "alpha_selection", _resolve_selection(self.alpha_selection, arr))
        set_(self, "cv_folds", int(self.cv_folds))
        set_(self, "standardize", bool(self.standardize))
        set_(self, "svr_epsilon", eps)
        set_(self, "seed", int(self.seed))

    @property
    def alpha_array(self) -> np.ndarray:
        """(A,) float64 alpha grid."""
        return np.asarray(self.alphas, dtype=np.float64)

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a JSON-ready dict (alphas as a list)."""
        d = asdict(self)
        d["alphas"] = list(self.alphas)
        return d


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


def check_features(X, name: str = "features") -> np.ndarray:
    """``X`` as a finite float64 (N, P) array, or a ValueError naming ``name``, the shape or the count of
    non-finite values."""
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
    X = check_features(X)
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
    X = check_features(X)
    y = _check_scores(y, X.shape[0], "labels")
    alphas = _check_alphas(alphas)
    n = X.shape[0]
    check_svr_size(n)
    if n < 2:
        raise ValueError(f"svr: expected at least 2 training samples, got {n}")
    return _fit_dual_path(X, y, alphas, "svr", standardize, epsilon)


def check_svr_size(n: int, what: str = "training samples") -> None:
    """The documented limit of the exact SVR: a ValueError saying how to proceed when n > ``SVR_MAX_TRAIN``."""
    if n > SVR_MAX_TRAIN:
        raise ValueError(
            f"regressor 'svr': expected at most {SVR_MAX_TRAIN} {what}, got {n}. The paper's linear SVR is solved "
            f"exactly by libsvm on the n x n linear kernel (memory n^2 x 8 bytes: 800 MB at 10,000; solve time "
            f"growing faster than n^2). To proceed: use regressor 'ridge' (--regressor ridge; the official "
            f"README's regressor, solved in the primal for any n), or fit the SVR on a random subset of at most "
            f"{SVR_MAX_TRAIN} images (e.g. a CSV of them: grepq fit --csv ... --regressor svr)")


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




# ---------------------------------------------------------------------------------------------------------
# The one fit-and-select implementation (protocols and grepq fit)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class GramPath:
    """Linear models ``f_a(x) = (x - offset) . W[:, a] + b[a]`` from a dual (Gram-matrix) solution.

    Attributes: alphas (A,), W (P, A), offset (P,), b (A,).
    """

    alphas: np.ndarray
    W: np.ndarray
    offset: np.ndarray
    b: np.ndarray

    def predict(self, X) -> np.ndarray:
        """Predict (A, M) scores for features X (M, P)."""
        X = np.asarray(X, dtype=np.float64)
        return (X @ self.W - self.offset @ self.W + self.b).T

    def linear(self) -> LinearPath:
        """The same models as a :class:`LinearPath` (coef (A, P), intercept (A,))."""
        return LinearPath(alphas=self.alphas, coef=np.ascontiguousarray(self.W.T),
                          intercept=self.b - self.offset @ self.W)


class LabelledGram:
    """Centred-once Gram matrix of the (up to) max_n labelled images, shared by every label count n (the first
    n rows), alpha and CV fold. ``X`` (max_n, P)."""

    def __init__(self, X: np.ndarray):
        self.shift = X.mean(axis=0)
        self.X0 = X - self.shift
        self.G = self.X0 @ self.X0.T


def gram_fit(gram: LabelledGram, n: int, y, settings: RegressionSettings,
             folds: Optional[List[np.ndarray]] = None) -> Tuple[GramPath, Optional[np.ndarray]]:
    """Dual fit on the first ``n`` labelled images of ``gram`` for every alpha, and (A,) CV scores on ``folds``
    (validation index arrays into range(n)) when given. ``y`` (n,)."""
    alphas = settings.alpha_array
    C, b = _dual_solve(_centred_blocks(gram.G, np.arange(n)), y, alphas, settings.regressor, settings.svr_epsilon)
    mu = gram.X0[:n].mean(axis=0)
    coef = (gram.X0[:n] - mu).T @ C  # (P, A)
    path = GramPath(alphas=alphas, W=coef, offset=gram.shift + mu, b=b)
    cv = None
    if folds is not None:
        cv = _cv_scores_gram(settings.regressor, gram.G, y, alphas, folds, settings.cv_criterion,
                             settings.svr_epsilon)
    return path, cv


def fit_select(X, y, settings: RegressionSettings, folds: Optional[List[np.ndarray]] = None):
    """Fit the regressor of ``settings`` on (n, P) features ``X`` and (n,) labels ``y`` for every alpha of the
    grid, and score every alpha by cross-validation on ``folds`` (validation index arrays into range(n)).

    The solver follows the module doc: ridge with n > P in the primal (per-fold scatter sums); otherwise
    without standardisation the dual on the centred Gram matrix (as the data-efficient protocol), with
    standardisation a refit per fold in feature space.

    Returns:
        (path, cv): a model per alpha with ``predict(X (M, P)) -> (A, M)`` (:class:`LinearPath` or
        :class:`GramPath`; ``as_linear_path(path)`` gives coef/intercept), and (A,) CV scores (larger = better)
        or None without folds.
    """
    X = check_features(X)
    y = _check_scores(y, X.shape[0], "labels")
    n, p = X.shape
    if n < 2:
        raise ValueError(f"{settings.regressor}: expected at least 2 training samples, got {n}")
    alphas = settings.alpha_array
    if settings.regressor == "svr":
        check_svr_size(n)
    if settings.regressor == "ridge" and n > p:
        return _ridge_path_and_cv_large(X, y, alphas, folds, settings.cv_criterion, settings.standardize)
    if not settings.standardize:
        return gram_fit(LabelledGram(X), n, y, settings, folds)
    path = _fit_path(settings.regressor, X, y, alphas, True, settings.svr_epsilon)
    cv = None
    if folds is not None:
        cv = _cv_scores(settings.regressor, X, y, alphas, folds, settings.cv_criterion, True, settings.svr_epsilon)
    return path, cv


def as_linear_path(path) -> LinearPath:
    """A :class:`LinearPath` for the path returned by :func:`fit_select`."""
    return path.linear() if isinstance(path, GramPath) else path


def choose_alpha(settings: RegressionSettings, cv_scores: Optional[np.ndarray] = None,
                 test_preds: Optional[np.ndarray] = None, y_test: Optional[np.ndarray] = None) -> int:
    """Index of the chosen alpha: best CV score ("cv"), best test SRCC of ``test_preds`` (A, M) against
    ``y_test`` ("oracle", labelled as such) or the only one ("fixed"). Ties go to the larger alpha."""
    if settings.alpha_selection == "cv":
        return _pick_best(cv_scores)
    if settings.alpha_selection == "oracle":
        return _pick_best(np.array([M.srcc(p, y_test) for p in test_preds]))
    return 0
