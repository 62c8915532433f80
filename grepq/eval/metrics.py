"""Correlations between predicted quality ``pred`` (N,) and subjective scores ``mos`` (N,), as Python floats.

``srcc`` (Spearman, the paper's headline metric), ``krcc`` (Kendall tau-b, as ``scipy.stats.kendalltau``) and
``plcc`` (Pearson after a mapping ``fit``: "none"; "cubic", the official zero-shot code's ``np.polyfit(pred, mos,
3)``; "logistic4", the VQEG 4-parameter logistic fitted by ``scipy.optimize.curve_fit``). A fitted PLCC is never
negative (it measures how well the fit explains ``mos``): read the sign from SRCC or raw PLCC.

A logistic fit that fails raises :class:`FitError` (never a silent fallback that would mix two PLCC definitions);
:func:`correlations` stores NaN and the reason instead. A constant ``pred`` or ``mos`` gives NaN; NaN/inf input
raises a ValueError naming the count. :func:`orient` turns DMOS (lower = better) into "higher = better" so that
good predictors correlate positively on every dataset.
"""
from __future__ import annotations

import warnings
from typing import Dict, Sequence

import numpy as np
from scipy import optimize, stats

__all__ = ["FitError", "PLCC_FITS", "POLARITIES", "check_finite", "check_pair", "srcc", "krcc", "plcc", "fit_cubic",
           "fit_logistic4", "fit_logistic4_params", "correlations", "orient", "polarity_sign", "signed_correlations",
           "median_or_nan"]

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
_POLARITY_ALIASES = {"mos": "mos", "higher_better": "mos", "higher": "mos", "dmos": "dmos", "lower_better": "dmos",
                     "lower": "dmos"}


# numpy >= 1.25 has np.exceptions.RankWarning; older versions only np.RankWarning.
_RANK_WARNING = getattr(getattr(np, "exceptions", np), "RankWarning", UserWarning)


class FitError(RuntimeError):
    """The nonlinear (logistic) mapping used before PLCC could not be fitted."""


def check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr``, or a ValueError naming ``name`` and the count of its NaN/inf values."""
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite (NaN/inf) of {arr.size}")
    return arr


def _as_vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, got shape {arr.shape}")
    return check_finite(arr, name)


def check_pair(pred, mos, min_count: int = 3):
    """``pred`` and ``mos`` ((N,), (N, 1) or (1, N)) as float64 (N,) arrays, or a ValueError: different lengths,
    fewer than ``min_count`` values, or NaN/inf (counted)."""
    p = _as_vector(pred, "pred")
    m = _as_vector(mos, "mos")
    if p.shape != m.shape:
        raise ValueError(f"pred and mos: expected the same length, got {p.size} predictions and {m.size} scores")
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
    """(N,) fitted values of the least-squares cubic score -> MOS (the official zero-shot code's mapping)."""
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
    """The VQEG logistic fitted on standardised ``pred`` (for conditioning): (params (4,), z (N,), mean, std).

    Start: asymptotes at max/min of ``mos`` (swapped for a decreasing relation), centre 0, scale 1. Bounded
    (asymptotes within ``LOGISTIC_ASYMPTOTE_MARGIN`` MOS ranges, centre within ``LOGISTIC_CENTRE_BOUND`` std, scale
    in ``LOGISTIC_SCALE_BOUNDS``): unbounded, a convex unsaturated relation sends an asymptote to infinity.
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
            params, _ = optimize.curve_fit(_logistic4, z, m, p0=p0, bounds=(lower, upper), maxfev=int(maxfev))
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
    """(N,) fitted values of the VQEG 4-parameter logistic score -> MOS; :class:`FitError` if curve_fit does not
    converge within ``maxfev`` or gives non-finite values."""
    params, z, _, _ = _fit_logistic4_standardised(pred, mos, maxfev)
    fitted = _logistic4(z, *params)
    if not np.all(np.isfinite(fitted)):
        raise FitError("logistic4 fit gave non-finite fitted values")
    return fitted


def plcc(pred, mos, fit: str = "none", *, maxfev: int = LOGISTIC_MAXFEV) -> float:
    """Pearson correlation of ``pred`` (N,) mapped by ``fit`` ("none" | "cubic" | "logistic4", module doc) and
    ``mos`` (N,); NaN if either is constant; :class:`FitError` if the logistic fit fails."""
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
    """Every metric of ``pred`` (N,) and ``mos`` (N,), N >= 5: ``srcc``, ``krcc``, ``plcc_raw``, ``plcc_cubic``,
    ``plcc_logistic`` (NaN, with ``plcc_logistic_error``, if the fit failed) and ``n``."""
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
    """+1.0 for "mos"/"higher_better"/"higher" (higher = better), -1.0 for "dmos"/"lower_better"/"lower"
    (case-insensitive)."""
    key = str(polarity).strip().lower()
    if key not in _POLARITY_ALIASES:
        raise ValueError(f"polarity: expected one of {sorted(_POLARITY_ALIASES)}, got {polarity!r}")
    return 1.0 if _POLARITY_ALIASES[key] == "mos" else -1.0


def orient(scores, polarity: str) -> np.ndarray:
    """Return subjective scores (N,) as "higher = better": unchanged for MOS, negated for DMOS."""
    return polarity_sign(polarity) * np.asarray(scores, dtype=np.float64)


def signed_correlations(pred, scores, polarity: str) -> Dict[str, object]:
    """:func:`correlations` of ``pred`` (N,, higher = better) and ``scores`` (N,) oriented by ``polarity``, plus
    ``polarity`` ("mos" | "dmos")."""
    sign = polarity_sign(polarity)
    out = correlations(pred, sign * np.asarray(scores, dtype=np.float64))
    out["polarity"] = "mos" if sign > 0 else "dmos"
    return out


def median_or_nan(values: Sequence[float]) -> float:
    """Median of the finite values, NaN when there is none (used for per-split summaries)."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else float("nan")

