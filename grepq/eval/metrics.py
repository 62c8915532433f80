"""Correlation metrics between predicted quality and subjective scores.

All functions take two 1-D arrays of the same length N: ``pred`` (the model's score for N images) and
``mos`` (the subjective score of the same N images). They return Python floats.

* ``srcc`` - Spearman rank-order correlation (SRCC), the paper's headline metric.
* ``krcc`` - Kendall rank correlation, tau-b (ties handled as in ``scipy.stats.kendalltau``).
* ``plcc`` - Pearson linear correlation, after an optional monotone-ish mapping of ``pred`` onto ``mos``:
    - ``fit="none"``: plain Pearson of ``pred`` and ``mos``.
    - ``fit="cubic"``: the official GRepQ zero-shot code: least-squares cubic polynomial score -> MOS
      (``numpy.polyfit(pred, mos, 3)``), then Pearson between the fitted values and ``mos``.
    - ``fit="logistic4"``: the VQEG 4-parameter logistic
      ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2`` fitted with ``scipy.optimize.curve_fit``
      (standardised input, initial guess from the data, bounded parameters, ``maxfev`` = 20000), then
      Pearson between ``f(pred)`` and ``mos``.

Fitted PLCC is never negative for a least-squares fit that contains a constant term, whatever the sign of
the relation: it measures how well the fit explains ``mos``, not whether the predictor points the right
way. Look at SRCC or ``plcc_raw`` for the sign.

Logistic-fit failure policy (decided here, tested in tests/test_metrics.py): ``plcc(..., fit="logistic4")``
raises :class:`FitError` when ``curve_fit`` does not converge or returns non-finite parameters. It never
silently falls back to another mapping, because a table would then mix two PLCC definitions under one
heading. :func:`correlations`, which reports every metric at once, catches that one error, stores NaN in
``plcc_logistic`` and the reason in ``plcc_logistic_error`` so that the other metrics survive.

Degenerate input: when ``pred`` or ``mos`` is constant a correlation is undefined; the functions return
NaN (as scipy does), without a warning. Non-finite input (NaN/inf) raises ``ValueError`` naming the count.

Polarity: a score file holds either a MOS (higher = better quality) or a DMOS (lower = better quality).
grepq predictors are all "higher = better". :func:`orient` turns labels into "higher = better" by negating
DMOS, so that a good predictor gets *positive* correlations on every dataset; :func:`signed_correlations`
does this before computing every metric. Rank and Pearson correlations simply change sign under negation.
"""
from __future__ import annotations

import warnings
from typing import Dict, Sequence

import numpy as np
from scipy import optimize, stats

__all__ = [
    "FitError",
    "PLCC_FITS",
    "POLARITIES",
    "DATASET_POLARITY",
    "check_pair",
    "srcc",
    "krcc",
    "plcc",
    "fit_cubic",
    "fit_logistic4",
    "fit_logistic4_params",
    "correlations",
    "orient",
    "polarity_sign",
    "signed_correlations",
    "median_or_nan",
]

#: PLCC mappings: "none" (raw Pearson), "cubic" (official GRepQ zero-shot code, test_zeroshot.py:
#: np.polyfit(score, mos, deg=3)), "logistic4" (VQEG 4-parameter logistic). docs/method.md §5.
PLCC_FITS = ("none", "cubic", "logistic4")

#: Degree of the official code's polynomial (official test_zeroshot.py, ``deg=3``).
CUBIC_DEGREE = 3

#: curve_fit evaluation budget of the logistic fit (large, so that slow convergence is not a failure).
LOGISTIC_MAXFEV = 20000

#: Bounds of the logistic fit (grepq choice, see fit_logistic4): asymptotes within this many MOS ranges
#: beyond the observed MOS, centre within this many standard deviations of pred, scale range in std units.
LOGISTIC_ASYMPTOTE_MARGIN = 3.0
LOGISTIC_CENTRE_BOUND = 20.0
LOGISTIC_SCALE_BOUNDS = (1e-3, 1e3)

#: Smallest number of finite samples each metric accepts: 3 for a correlation, and one more than the
#: number of fitted parameters for a fitted PLCC (4 + 1 for the cubic and for the 4-parameter logistic).
MIN_SAMPLES = {"none": 3, "cubic": CUBIC_DEGREE + 2, "logistic4": 5}

#: Score polarity. "mos": higher = better quality; "dmos": lower = better quality.
POLARITIES = ("mos", "dmos")
_POLARITY_ALIASES = {
    "mos": "mos",
    "higher_better": "mos",
    "higher": "mos",
    "dmos": "dmos",
    "lower_better": "dmos",
    "lower": "dmos",
}

#: Polarity of the score column each dataset's owners distribute (docs/method.md §8). The dataset loaders
#: are the authority; this table is the fallback used by reports. KADID-10k's column is *named* dmos
#: but is higher-is-better (1-5, pristine high), so it counts as "mos" here. PIPAL's Elo: higher = better.
DATASET_POLARITY = {
    "CLIVE": "mos",
    "KonIQ": "mos",
    "FLIVE": "mos",
    "SPAQ": "mos",
    "PIPAL": "mos",
    "TID2013": "mos",
    "KADID-10k": "mos",
    "AGIQA-3K": "mos",
    "LIVE": "dmos",
    "CSIQ": "dmos",
}


# numpy >= 1.25 has np.exceptions.RankWarning; older versions only np.RankWarning.
_RANK_WARNING = getattr(getattr(np, "exceptions", np), "RankWarning", UserWarning)


class FitError(RuntimeError):
    """The nonlinear (logistic) mapping used before PLCC could not be fitted."""


def _as_vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, got shape {arr.shape}")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(
            f"{name}: expected finite values, got {bad} non-finite (NaN/inf) of {arr.size}"
        )
    return arr


def check_pair(pred, mos, min_count: int = 3):
    """Validate and convert a (prediction, subjective score) pair.

    Args:
        pred: (N,) predicted scores (any array-like; (N,1) and (1,N) are accepted).
        mos: (N,) subjective scores.
        min_count: smallest N accepted.

    Returns:
        (pred, mos) as float64 arrays of shape (N,).

    Raises:
        ValueError: different lengths, fewer than ``min_count`` values, or any NaN/inf (the message names
        the count).
    """
    p = _as_vector(pred, "pred")
    m = _as_vector(mos, "mos")
    if p.shape != m.shape:
        raise ValueError(
            f"pred and mos: expected the same length, got {p.size} predictions and {m.size} scores"
        )
    if p.size < min_count:
        raise ValueError(f"expected at least {min_count} scored samples, got {p.size}")
    return p, m


def _is_constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) == 0.0)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if den == 0.0 or not np.isfinite(den):
        return float("nan")
    return float(np.clip(np.dot(a, b) / den, -1.0, 1.0))


def srcc(pred, mos) -> float:
    """Spearman rank-order correlation of ``pred`` (N,) and ``mos`` (N,); NaN if either is constant."""
    p, m = check_pair(pred, mos, MIN_SAMPLES["none"])
    if _is_constant(p) or _is_constant(m):
        return float("nan")
    return _pearson(stats.rankdata(p), stats.rankdata(m))


def krcc(pred, mos) -> float:
    """Kendall rank correlation (tau-b) of ``pred`` (N,) and ``mos`` (N,); NaN if either is constant."""
    p, m = check_pair(pred, mos, MIN_SAMPLES["none"])
    if _is_constant(p) or _is_constant(m):
        return float("nan")
    return float(stats.kendalltau(p, m).statistic)


def fit_cubic(pred, mos) -> np.ndarray:
    """Least-squares cubic polynomial mapping score -> MOS, as in the official zero-shot code.

    Args:
        pred: (N,) scores. mos: (N,) subjective scores.

    Returns:
        (N,) fitted values ``poly(pred)``.
    """
    p, m = check_pair(pred, mos, MIN_SAMPLES["cubic"])
    with warnings.catch_warnings():
        # RankWarning when pred has fewer than 4 distinct values: the fit is still the least-squares one.
        warnings.simplefilter("ignore", _RANK_WARNING)
        coef = np.polyfit(p, m, CUBIC_DEGREE)
    return np.polyval(coef, p)


def _logistic4(x, b1, b2, b3, b4):
    # VQEG 4-parameter logistic: b1, b2 = the asymptotes (b1 reached as x -> +inf), b3 = centre,
    # b4 > 0 = scale (kept positive by the fit's bounds).
    z = np.clip(-(x - b3) / b4, -500.0, 500.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def _fit_logistic4_standardised(pred, mos, maxfev: int):
    """The VQEG 4-parameter logistic fitted on standardised ``pred``: (params (4,), z (N,), mean, std of pred).

    ``pred`` is standardised internally (zero mean, unit std) for conditioning; this does not change the
    family of curves (the centre and scale are mapped back). Initial guess: asymptotes at max/min of ``mos``
    (swapped when pred and mos are negatively correlated, so that decreasing relations start on the right
    branch), centre 0, scale 1. The fit is bounded (trust-region-reflective): asymptotes within
    ``LOGISTIC_ASYMPTOTE_MARGIN`` MOS ranges of the data, centre within +-``LOGISTIC_CENTRE_BOUND`` std of pred,
    scale in ``LOGISTIC_SCALE_BOUNDS`` std. Without bounds a convex, unsaturated relation (e.g. exponential)
    sends an asymptote to infinity and the fit never converges; with them it converges to a curve
    indistinguishable on the data.
    """
    p, m = check_pair(pred, mos, MIN_SAMPLES["logistic4"])
    if _is_constant(p) or _is_constant(m):
        raise FitError(f"logistic4 fit: expected non-constant pred and mos (N={p.size})")
    mu, sd = p.mean(), p.std()
    z = (p - mu) / sd
    hi, lo = float(m.max()), float(m.min())
    margin = LOGISTIC_ASYMPTOTE_MARGIN * (hi - lo)
    lower = [lo - margin, lo - margin, -LOGISTIC_CENTRE_BOUND, LOGISTIC_SCALE_BOUNDS[0]]
    upper = [hi + margin, hi + margin, LOGISTIC_CENTRE_BOUND, LOGISTIC_SCALE_BOUNDS[1]]
    if _pearson(z, m) < 0:
        hi, lo = lo, hi
    p0 = [hi, lo, 0.0, 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(
                _logistic4, z, m, p0=p0, bounds=(lower, upper), maxfev=int(maxfev)
            )
    except (RuntimeError, ValueError) as exc:
        raise FitError(f"logistic4 fit did not converge on N={p.size} samples: {exc}") from exc
    if not np.all(np.isfinite(params)):
        raise FitError(f"logistic4 fit gave non-finite parameters {params.tolist()}")
    return params, z, mu, sd


def fit_logistic4_params(pred, mos, *, maxfev: int = LOGISTIC_MAXFEV) -> np.ndarray:
    """The parameters (4,) of :func:`fit_logistic4` in the units of ``pred``: ``[b1, b2, b3, b4]`` of
    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2 (b1, b2 asymptotes, b3 centre, b4 > 0 scale)."""
    (b1, b2, c, s), _, mu, sd = _fit_logistic4_standardised(pred, mos, maxfev)
    return np.array([b1, b2, mu + sd * c, sd * s])


def fit_logistic4(pred, mos, *, maxfev: int = LOGISTIC_MAXFEV) -> np.ndarray:
    """Fit the VQEG 4-parameter logistic score -> MOS (details: :func:`_fit_logistic4_standardised`).

    Args:
        pred: (N,) scores. mos: (N,) subjective scores. maxfev: curve_fit evaluation budget.

    Returns:
        (N,) fitted values.

    Raises:
        FitError: curve_fit did not converge within ``maxfev`` or gave non-finite parameters or values.
    """
    params, z, _, _ = _fit_logistic4_standardised(pred, mos, maxfev)
    fitted = _logistic4(z, *params)
    if not np.all(np.isfinite(fitted)):
        raise FitError("logistic4 fit gave non-finite fitted values")
    return fitted


def plcc(pred, mos, fit: str = "none", *, maxfev: int = LOGISTIC_MAXFEV) -> float:
    """Pearson linear correlation between (mapped) ``pred`` (N,) and ``mos`` (N,).

    Args:
        pred: (N,) predicted scores.
        mos: (N,) subjective scores.
        fit: "none" | "cubic" (official GRepQ zero-shot code) | "logistic4" (VQEG); see the module doc.
        maxfev: evaluation budget of the logistic fit.

    Returns:
        PLCC as a float; NaN if ``pred`` or ``mos`` is constant.

    Raises:
        ValueError: bad input or unknown ``fit``. FitError: the logistic fit failed.
    """
    if fit not in PLCC_FITS:
        raise ValueError(f"fit: expected one of {PLCC_FITS}, got {fit!r}")
    p, m = check_pair(pred, mos, MIN_SAMPLES[fit])
    if _is_constant(p) or _is_constant(m):
        return float("nan")
    if fit == "cubic":
        p = fit_cubic(p, m)
    elif fit == "logistic4":
        p = fit_logistic4(p, m, maxfev=maxfev)
    return _pearson(p, m)


def correlations(pred, mos) -> Dict[str, object]:
    """Every metric at once.

    Args:
        pred: (N,) predicted scores, N >= 5 (the fitted PLCCs need 5). mos: (N,) subjective scores.

    Returns:
        dict with float values ``srcc``, ``krcc``, ``plcc_raw`` (fit "none"), ``plcc_cubic``,
        ``plcc_logistic``, int ``n``, and ``plcc_logistic_error`` (str) only if the logistic fit failed
        (then ``plcc_logistic`` is NaN).
    """
    p, m = check_pair(pred, mos, max(MIN_SAMPLES.values()))
    out: Dict[str, object] = {
        "srcc": srcc(p, m),
        "krcc": krcc(p, m),
        "plcc_raw": plcc(p, m, "none"),
        "plcc_cubic": plcc(p, m, "cubic"),
    }
    try:
        out["plcc_logistic"] = plcc(p, m, "logistic4")
    except FitError as exc:
        out["plcc_logistic"] = float("nan")
        out["plcc_logistic_error"] = str(exc)
    out["n"] = int(p.size)
    return out


def polarity_sign(polarity: str) -> float:
    """+1.0 for a MOS-like score (higher = better), -1.0 for a DMOS-like one (lower = better).

    Accepted names: "mos"/"higher_better"/"higher" and "dmos"/"lower_better"/"lower" (case-insensitive).
    """
    key = str(polarity).strip().lower()
    if key not in _POLARITY_ALIASES:
        raise ValueError(f"polarity: expected one of {sorted(_POLARITY_ALIASES)}, got {polarity!r}")
    return 1.0 if _POLARITY_ALIASES[key] == "mos" else -1.0


def orient(scores, polarity: str) -> np.ndarray:
    """Return subjective scores (N,) as "higher = better": unchanged for MOS, negated for DMOS."""
    return polarity_sign(polarity) * np.asarray(scores, dtype=np.float64)


def signed_correlations(pred, scores, polarity: str) -> Dict[str, object]:
    """:func:`correlations` after :func:`orient`, so a good "higher = better" predictor scores positive.

    Args:
        pred: (N,) predictions, higher = better quality. scores: (N,) subjective scores.
        polarity: "mos" or "dmos" (see :func:`polarity_sign`).

    Returns:
        the :func:`correlations` dict plus ``polarity`` (the canonical name).
    """
    sign = polarity_sign(polarity)
    out = correlations(pred, sign * np.asarray(scores, dtype=np.float64))
    out["polarity"] = "mos" if sign > 0 else "dmos"
    return out


def median_or_nan(values: Sequence[float]) -> float:
    """Median of the finite values, NaN when there is none (used for per-split summaries)."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else float("nan")

