"""Linear regressors on frozen features and the choice of their alpha (docs/method.md §5): the one implementation
used by the data-efficient and cross-dataset protocols and by ``grepq fit``.

Every choice is a field of :class:`RegressionSettings`, recorded in every result and regressor file.

* ``"ridge"``: ``||y - Xw - b||^2 + alpha ||w||^2``, intercept unpenalised (as ``sklearn.linear_model.Ridge``).
  n <= P: dual, from the centred Gram matrix (n x n), all alphas in one batched solve; the data-efficient
  protocol builds it once per split and feature set and reuses its blocks for every n, alpha and CV fold.
  n > P (cross-dataset): primal, one Cholesky of ``X^T X + alpha I`` per alpha; the CV folds reuse per-fold
  scatter sums from one pass over the features.
* ``"svr"``: the paper's linear epsilon-SVR, solved exactly by libsvm on the precomputed linear kernel, with
  ``C = 1 / (2 alpha)`` (the SVR minimises ``sum(loss) + 1/(2C) ||w||^2``) and labels standardised (so epsilon =
  0.1 label standard deviations means the same on any MOS scale). At most ``SVR_MAX_TRAIN`` training samples
  (the n x n kernel); beyond, :func:`check_svr_size` says how to proceed. liblinear's ``LinearSVR`` is not a
  substitute: it penalises the intercept (predictions differed by 1e-4 to 0.6).
* ``standardize`` (default off, as the official README): unit-variance columns from the training samples only.
* ``alpha_selection``: "cv" (K-fold CV on the labelled images only, by scene with ``refs``; criterion MSE of the
  pooled out-of-fold predictions or their SRCC; ties to the larger alpha), "oracle" (best SRCC on the test
  part, labelled as such) or "fixed" (one alpha; "cv" with one alpha is recorded as "fixed").
* ``plcc_fit``: the PLCC mapping of each row (default "none": raw Pearson, the output is on the MOS scale).
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from scipy import linalg

from . import metrics as M
from .selection import SELECTION_RULES
from .splits import PAPER_LABEL_COUNTS, PAPER_N_SPLITS, PAPER_TRAIN_FRACTION

__all__ = ["OFFICIAL_ALPHAS", "DEFAULT_CV_FOLDS", "REGRESSORS", "ALPHA_SELECTIONS", "CV_CRITERIA", "SVR_EPSILON",
           "SVR_MAX_TRAIN", "RegressionSettings", "LinearPath", "GramPath", "LabelledGram", "Fit", "fit_select",
           "fit_path", "gram_fit", "choose_alpha", "check_features", "check_scores", "check_svr_size",
           "row_metrics", "limit_blas_threads"]

#: Alpha grid (official README: "alpha was chosen from the set {0.1, 1, 10, 100}").
OFFICIAL_ALPHAS = (0.1, 1.0, 10.0, 100.0)
#: Folds of the cross-validation choosing alpha (grepq choice).
DEFAULT_CV_FOLDS = 5
REGRESSORS = ("ridge", "svr")
ALPHA_SELECTIONS = ("cv", "oracle", "fixed")
CV_CRITERIA = ("mse", "srcc")
#: SVR tube half-width in standard deviations of the training labels (sklearn's default).
SVR_EPSILON = 0.1
#: Largest training set of the exact (kernel) SVR.
SVR_MAX_TRAIN = 2000
#: libsvm stopping tolerance and kernel cache (MB).
SVR_TOL = 1e-4
SVR_CACHE_MB = 500
#: Rows per chunk when accumulating scatter matrices.
_CHUNK = 4096
#: Fields of the protocols only (a regressor file records the others).
_PROTOCOL_FIELDS = ("n_train", "splits", "train_fraction", "selection")


@dataclass(frozen=True)
class RegressionSettings:
    """Every choice of the regressor, its alpha and the protocols' splits, validated once (module doc).

    regressor "ridge" | "svr"; alphas: the grid; alpha_selection "cv" | "oracle" | "fixed"; cv_folds: K;
    cv_criterion "mse" | "srcc"; standardize: unit-variance columns; svr_epsilon: in label standard deviations;
    plcc_fit: PLCC mapping of the rows; seed: of the splits and CV folds. Data-efficient protocol only:
    n_train: label counts (paper: 50, 100, 200), splits (paper: 10), train_fraction (paper: 0.8), selection:
    how the labelled images are chosen from a split's training part, "random" (paper) or "k-center"
    (:mod:`grepq.eval.selection`).
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
    n_train: Tuple[int, ...] = PAPER_LABEL_COUNTS
    splits: int = PAPER_N_SPLITS
    train_fraction: float = PAPER_TRAIN_FRACTION
    selection: str = "random"

    def __post_init__(self) -> None:
        for name, value, allowed in (("regressor", self.regressor, REGRESSORS),
                                     ("cv_criterion", self.cv_criterion, CV_CRITERIA),
                                     ("plcc_fit", self.plcc_fit, M.PLCC_FITS),
                                     ("alpha_selection", self.alpha_selection, ALPHA_SELECTIONS),
                                     ("selection", self.selection, SELECTION_RULES)):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
        arr = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"alphas: expected a non-empty list of finite values > 0, got {self.alphas!r}")
        if self.alpha_selection == "fixed" and arr.size != 1:
            raise ValueError(f"alpha_selection 'fixed': expected exactly one alpha, got {arr.tolist()}")
        eps = float(self.svr_epsilon)
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"svr_epsilon: expected a finite value >= 0, got {self.svr_epsilon!r}")
        n_train = tuple(int(n) for n in np.atleast_1d(self.n_train))
        if not n_train or min(n_train) < 2:
            raise ValueError(f"n_train: expected label counts >= 2, got {list(n_train)}")
        if int(self.splits) < 1:
            raise ValueError(f"splits: expected >= 1, got {self.splits}")
        set_ = object.__setattr__
        set_(self, "alphas", tuple(float(a) for a in arr))
        set_(self, "alpha_selection", "fixed" if arr.size == 1 else self.alpha_selection)
        for name, kind in (("cv_folds", int), ("standardize", bool), ("seed", int), ("splits", int),
                           ("train_fraction", float)):
            set_(self, name, kind(getattr(self, name)))
        set_(self, "svr_epsilon", eps)
        set_(self, "n_train", n_train)

    @property
    def alpha_array(self) -> np.ndarray:
        """(A,) float64 alpha grid."""
        return np.asarray(self.alphas, dtype=np.float64)

    def to_dict(self) -> Dict[str, Any]:
        """The regressor's settings as a JSON-ready dict (what a regressor file records)."""
        d = asdict(self)
        d["alphas"] = list(self.alphas)
        return {k: v for k, v in d.items() if k not in _PROTOCOL_FIELDS}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RegressionSettings":
        """Settings from a dict with (some of) the field names, e.g. the configuration's ``protocol`` section."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


@dataclass
class LinearPath:
    """Linear models ``f_a(x) = x . coef[a] + intercept[a]``: alphas (A,), coef (A, P), intercept (A,)."""

    alphas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, X) -> np.ndarray:
        """(A, M) predictions for features X (M, P)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[1]:
            raise ValueError(f"features: expected shape (M, {self.coef.shape[1]}), got {tuple(X.shape)}")
        return (X @ self.coef.T).T + self.intercept[:, None]


@dataclass
class GramPath:
    """Linear models ``f_a(x) = (x - offset) . W[:, a] + b[a]`` of a dual solution: W (P, A), offset (P,), b (A,)."""

    alphas: np.ndarray
    W: np.ndarray
    offset: np.ndarray
    b: np.ndarray

    def predict(self, X) -> np.ndarray:
        """(A, M) predictions for features X (M, P)."""
        X = np.asarray(X, dtype=np.float64)
        return (X @ self.W - self.offset @ self.W + self.b).T

    def linear(self) -> LinearPath:
        """The same models as a :class:`LinearPath`."""
        return LinearPath(alphas=self.alphas, coef=np.ascontiguousarray(self.W.T),
                          intercept=self.b - self.offset @ self.W)


@dataclass
class Fit:
    """A fitted regressor of every alpha and the chosen one: ``path.predict`` (A, M), ``best`` its index, ``cv`` the
    (A,) CV scores (None without CV) on ``folds``."""

    path: LinearPath
    best: int
    cv: Optional[np.ndarray] = None
    folds: Optional[List[np.ndarray]] = None


def check_features(X, name: str = "features") -> np.ndarray:
    """``X`` as a finite float64 (N, P) array, or a ValueError naming ``name`` and the problem."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (N, P), got shape {tuple(arr.shape)}")
    return M.check_finite(arr, name)


def check_scores(y, n: int, name: str = "scores") -> np.ndarray:
    """``y`` as n finite float64 values, or a ValueError naming ``name`` and the problem."""
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} values (one per feature row), got {arr.shape[0]}")
    return M.check_finite(arr, name)


def check_svr_size(n: int, what: str = "training samples") -> None:
    """The exact SVR's limit: a ValueError saying how to proceed when n > ``SVR_MAX_TRAIN``."""
    if n > SVR_MAX_TRAIN:
        raise ValueError(
            f"regressor 'svr': expected at most {SVR_MAX_TRAIN} {what}, got {n}. The paper's linear SVR is solved "
            f"exactly by libsvm on the n x n linear kernel (memory n^2 x 8 bytes: 800 MB at 10,000; solve time "
            f"growing faster than n^2). To proceed: use regressor 'ridge' (--regressor ridge; the official "
            f"README's regressor, solved in the primal for any n), or fit the SVR on a random subset of at most "
            f"{SVR_MAX_TRAIN} images (e.g. a CSV of them: grepq fit --csv ... --regressor svr)")


def row_metrics(pred: np.ndarray, y: np.ndarray, plcc_fit: str) -> Dict[str, float]:
    """SRCC, PLCC (mapped by ``plcc_fit``) and KRCC of predictions (M,) against labels (M,)."""
    return {"srcc": M.srcc(pred, y), "plcc": M.plcc(pred, y, plcc_fit), "krcc": M.krcc(pred, y)}


def limit_blas_threads(n_threads: Optional[int]):
    """Context limiting BLAS threads to ``n_threads`` (None: leave the process setting alone)."""
    if n_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_threads), user_api="blas")


def _column_scale(std: np.ndarray) -> np.ndarray:
    # a constant column is zero after centring: leave it unscaled instead of dividing by zero
    return np.where(std > 0, std, 1.0)


def _dual_solve(K: np.ndarray, y: np.ndarray, alphas: np.ndarray, regressor: str, svr_epsilon: float):
    """Dual solution for every alpha from the centred kernel K (n, n): (C (n, A), b (A,)); a sample whose centred
    kernel row against the training samples is k (n,) is predicted ``k @ C[:, a] + b[a]``."""
    n = y.size
    mean_y = float(y.mean())
    if regressor == "ridge":
        system = K[None, :, :] + alphas[:, None, None] * np.eye(n)[None, :, :]
        rhs = np.broadcast_to((y - mean_y)[None, :, None], (alphas.size, n, 1))
        return np.linalg.solve(system, rhs)[:, :, 0].T, np.full(alphas.size, mean_y)
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


def _centred_blocks(G: np.ndarray, tr: np.ndarray, ev: Optional[np.ndarray] = None):
    """Centre a raw Gram matrix G (m, m) on the samples ``tr``: the kernel (|tr|, |tr|) and, with ``ev``, the
    cross-kernel (|ev|, |tr|), both after subtracting the mean feature vector of ``tr``."""
    Gtt = G[np.ix_(tr, tr)]
    r = Gtt.mean(axis=1)
    s = r.mean()
    Ktt = Gtt - r[:, None] - r[None, :] + s
    if ev is None:
        return Ktt
    Get = G[np.ix_(ev, tr)]
    return Ktt, Get - Get.mean(axis=1)[:, None] - r[None, :] + s


def _pick_best(scores: np.ndarray) -> int:
    """Index of the largest finite score; ties (and all-NaN) go to the largest alpha (last)."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    return int(np.flatnonzero(s == s.max())[-1])


def _scores_from_oof(oof: np.ndarray, y: np.ndarray, criterion: str) -> np.ndarray:
    """(A,) CV scores (larger = better) from pooled out-of-fold predictions oof (A, n)."""
    if criterion == "mse":
        return -np.mean((oof - y[None, :]) ** 2, axis=1)
    return np.array([M.srcc(o, y) for o in oof])


def _standardized_dual_path(X, y, settings: RegressionSettings) -> LinearPath:
    """Dual fit (n <= P, or the SVR) on columns scaled to unit variance on these n samples (folded back)."""
    mean_x = X.mean(axis=0)
    scale = _column_scale(X.std(axis=0))
    Xs = (X - mean_x) / scale
    C, b = _dual_solve(Xs @ Xs.T, y, settings.alpha_array, settings.regressor, settings.svr_epsilon)
    coef = ((Xs.T @ C) / scale[:, None]).T
    return LinearPath(alphas=settings.alpha_array, coef=coef, intercept=b - coef @ mean_x)


def _scatter_stats(X: np.ndarray, y: np.ndarray, idx: np.ndarray, shift: np.ndarray):
    """Sums over rows ``idx`` of (X - shift): count, sum x (P,), sum x x^T (P, P), sum x y (P,), sum y."""
    p = X.shape[1]
    sx, sxx, sxy = np.zeros(p), np.zeros((p, p)), np.zeros(p)
    for start in range(0, idx.size, _CHUNK):
        part = idx[start:start + _CHUNK]
        Xc = X[part] - shift
        sx += Xc.sum(axis=0)
        sxx += Xc.T @ Xc
        sxy += Xc.T @ y[part]
    return idx.size, sx, sxx, sxy, float(y[idx].sum())


def _path_from_sums(n, sx, sxx, sxy, sy, shift, alphas, standardize) -> LinearPath:
    """Primal ridge path (n > P) from scatter sums of X - shift: one Cholesky of (Sxx + alpha I) per alpha."""
    mean_x = sx / n
    Sxx = sxx - n * np.outer(mean_x, mean_x)
    Sxy = sxy - mean_x * sy
    scale = np.ones_like(mean_x)
    if standardize:
        scale = _column_scale(np.sqrt(np.maximum(np.diag(Sxx), 0.0) / n))
        Sxx = Sxx / np.outer(scale, scale)
        Sxy = Sxy / scale
    p = Sxx.shape[0]
    coef_s = np.empty((p, alphas.size))
    for i, a in enumerate(alphas):
        system = Sxx.copy()
        system.flat[:: p + 1] += a
        factor = linalg.cho_factor(system, overwrite_a=True, check_finite=False)
        coef_s[:, i] = linalg.cho_solve(factor, Sxy, check_finite=False)
    coef = (coef_s / scale[:, None]).T
    # the model was fitted on X - shift: fold the shift into the intercept
    intercept = sy / n - coef @ mean_x - coef @ shift
    return LinearPath(alphas=alphas, coef=coef, intercept=intercept)


def _primal_path_and_cv(X, y, settings: RegressionSettings, folds):
    """Primal ridge path on all of X (n > P) and the (A,) CV scores on ``folds`` (or None), all from per-fold
    scatter sums collected in one pass over X."""
    alphas, standardize = settings.alpha_array, settings.standardize
    shift = X.mean(axis=0)
    parts = folds if folds is not None else [np.arange(X.shape[0])]
    stats = [_scatter_stats(X, y, idx, shift) for idx in parts]
    total = [sum(st[i] for st in stats) for i in range(5)]
    path = _path_from_sums(*total, shift, alphas, standardize)
    if folds is None:
        return path, None
    oof = np.empty((alphas.size, y.size))
    for va, st in zip(folds, stats):
        oof[:, va] = _path_from_sums(*[total[i] - st[i] for i in range(5)], shift, alphas, standardize).predict(X[va])
    return path, _scores_from_oof(oof, y, settings.cv_criterion)


class LabelledGram:
    """Gram matrix of the (up to) max_n labelled images ``X`` (max_n, P), centred once and shared by every label
    count n (its first n rows), alpha and CV fold."""

    def __init__(self, X: np.ndarray):
        self.shift = X.mean(axis=0)
        self.X0 = X - self.shift
        self.G = self.X0 @ self.X0.T


def gram_fit(gram: LabelledGram, n: int, y, settings: RegressionSettings,
             folds: Optional[List[np.ndarray]] = None) -> Tuple[GramPath, Optional[np.ndarray]]:
    """Dual fit on the first ``n`` images of ``gram`` (labels y (n,)) for every alpha, and the (A,) CV scores on
    ``folds`` (validation index arrays into range(n)) or None."""
    alphas = settings.alpha_array
    C, b = _dual_solve(_centred_blocks(gram.G, np.arange(n)), y, alphas, settings.regressor, settings.svr_epsilon)
    mu = gram.X0[:n].mean(axis=0)
    path = GramPath(alphas=alphas, W=(gram.X0[:n] - mu).T @ C, offset=gram.shift + mu, b=b)
    if folds is None:
        return path, None
    oof = np.empty((alphas.size, y.size))
    for va in folds:
        tr = np.setdiff1d(np.arange(y.size), va, assume_unique=True)
        Ktt, Kvt = _centred_blocks(gram.G, tr, va)
        C, b = _dual_solve(Ktt, y[tr], alphas, settings.regressor, settings.svr_epsilon)
        oof[:, va] = (Kvt @ C + b).T
    return path, _scores_from_oof(oof, y, settings.cv_criterion)


def fit_select(X, y, settings: RegressionSettings, folds: Optional[List[np.ndarray]] = None):
    """Fit ``settings``' regressor on features X (n, P) and labels y (n,) for every alpha, and score every alpha by
    CV on ``folds`` (validation index arrays into range(n)).

    Solver (module doc): ridge with n > P in the primal; otherwise the dual on the Gram matrix, or, with
    ``standardize``, a refit per fold.

    Returns:
        (path, cv): models with ``predict(X (M, P)) -> (A, M)``, and (A,) CV scores (larger = better) or None.
    """
    X = check_features(X)
    y = check_scores(y, X.shape[0], "labels")
    n, p = X.shape
    if n < 2:
        raise ValueError(f"{settings.regressor}: expected at least 2 training samples, got {n}")
    if settings.regressor == "svr":
        check_svr_size(n)
    if settings.regressor == "ridge" and n > p:
        return _primal_path_and_cv(X, y, settings, folds)
    if not settings.standardize:
        return gram_fit(LabelledGram(X), n, y, settings, folds)
    path = _standardized_dual_path(X, y, settings)
    if folds is None:
        return path, None
    oof = np.empty((settings.alpha_array.size, y.size))
    for va in folds:
        tr = np.setdiff1d(np.arange(y.size), va, assume_unique=True)
        oof[:, va] = _standardized_dual_path(X[tr], y[tr], settings).predict(X[va])
    return path, _scores_from_oof(oof, y, settings.cv_criterion)


def fit_path(X, y, settings: RegressionSettings) -> LinearPath:
    """The regressor of every alpha on features X (n, P) and labels y (n,), as coef (A, P) and intercept (A,)."""
    path, _ = fit_select(X, y, settings)
    return path.linear() if isinstance(path, GramPath) else path


def choose_alpha(settings: RegressionSettings, cv_scores: Optional[np.ndarray] = None,
                 test_preds: Optional[np.ndarray] = None, y_test: Optional[np.ndarray] = None) -> int:
    """Index of the chosen alpha: best CV score ("cv"), best test SRCC of ``test_preds`` (A, M) against ``y_test``
    (M,) ("oracle") or the only one ("fixed"). Ties go to the larger alpha."""
    if settings.alpha_selection == "cv":
        return _pick_best(cv_scores)
    if settings.alpha_selection == "oracle":
        return _pick_best(np.array([M.srcc(p, y_test) for p in test_preds]))
    return 0
