"""Tests of grepq.eval.metrics: hand-computed correlations, fitted PLCCs, input checks, polarity."""
import math

import numpy as np
import pytest
from scipy import optimize, stats

from grepq.eval import metrics as M

# ---------------------------------------------------------------- rank correlations, hand-computed cases

def test_perfect_monotone_relation_gives_one():
    x = np.arange(10.0)
    y = np.exp(x / 3.0)  # monotone, nonlinear
    assert M.srcc(x, y) == pytest.approx(1.0)
    assert M.krcc(x, y) == pytest.approx(1.0)
    assert M.srcc(x, -y) == pytest.approx(-1.0)
    assert M.krcc(x, -y) == pytest.approx(-1.0)


def test_known_spearman_and_kendall_values():
    pred = [1, 2, 3, 4, 5]
    mos = [1, 3, 2, 5, 4]
    # 10 pairs, 2 discordant ((2,3) and (4,5)): tau = (8 - 2) / 10
    assert M.krcc(pred, mos) == pytest.approx(0.6)
    # rank differences 0,1,1,1,1: rho = 1 - 6 * 4 / (5 * (25 - 1))
    assert M.srcc(pred, mos) == pytest.approx(0.8)


def test_srcc_with_ties_matches_scipy():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 5, size=40).astype(float)
    mos = pred + rng.integers(0, 3, size=40)
    assert M.srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)
    assert M.krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos).statistic, abs=1e-12)


def test_raw_plcc_hand_computed():
    # x - mean = (-1, 0, 1), y - mean = (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 42/9)
    assert M.plcc([1, 2, 3], [1, 2, 4], "none") == pytest.approx(3.0 / math.sqrt(2 * 42 / 9))


# ---------------------------------------------------------------- fitted PLCC

def test_cubic_fit_is_the_official_procedure():
    rng = np.random.default_rng(1)
    pred = rng.uniform(0, 1, 60)
    mos = 1 + 4 * pred ** 2 + 0.1 * rng.normal(size=60)
    official = stats.pearsonr(np.poly1d(np.polyfit(pred, mos, deg=3))(pred), mos)[0]
    assert M.plcc(pred, mos, "cubic") == pytest.approx(official, abs=1e-12)


def test_cubic_fit_beats_raw_on_monotone_nonlinear_relation():
    x = np.linspace(0, 1, 50)
    y = np.exp(4 * x)
    raw = M.plcc(x, y, "none")
    cubic = M.plcc(x, y, "cubic")
    assert cubic >= raw
    assert cubic > 0.99 and raw < 0.95


def test_cubic_fit_recovers_a_cubic_exactly():
    x = np.linspace(-2, 2, 30)
    assert M.plcc(x, x ** 3 - x, "cubic") == pytest.approx(1.0, abs=1e-10)


def test_logistic_fit_recovers_logistic_relation():
    rng = np.random.default_rng(2)
    pred = rng.normal(size=400)
    mos = 1 + 4 / (1 + np.exp(-(pred - 0.3) / 0.4)) + 0.01 * rng.normal(size=400)
    assert M.plcc(pred, mos, "logistic4") > 0.999
    assert M.plcc(pred, mos, "logistic4") > M.plcc(pred, mos, "none") + 0.03
    # a decreasing relation (DMOS-like) is fitted as well: fitted PLCC is positive
    assert M.plcc(pred, -mos, "logistic4") > 0.999


def test_logistic_fit_of_unsaturated_convex_relation_converges():
    # exponential = lower tail of a logistic: bounded fit converges instead of sending an asymptote to inf
    x = np.linspace(0, 1, 50)
    assert M.plcc(x, np.exp(3 * x), "logistic4") > 0.999


def test_logistic_fit_failure_raises_fit_error():
    rng = np.random.default_rng(3)
    pred = rng.normal(size=50)
    with pytest.raises(M.FitError, match="did not converge"):
        M.plcc(pred, pred ** 3, "logistic4", maxfev=1)


def test_correlations_records_failed_logistic_fit_as_nan(monkeypatch):
    def failing(*args, **kwargs):
        raise M.FitError("forced failure")

    monkeypatch.setattr(M, "fit_logistic4", failing)
    x = np.arange(20.0)
    out = M.correlations(x, x ** 2)
    assert math.isnan(out["plcc_logistic"])
    assert "forced failure" in out["plcc_logistic_error"]
    assert out["srcc"] == pytest.approx(1.0)
    assert out["n"] == 20


def test_correlations_keys_and_values():
    rng = np.random.default_rng(4)
    pred = rng.normal(size=100)
    mos = pred + 0.5 * rng.normal(size=100)
    out = M.correlations(pred, mos)
    assert set(out) == {"srcc", "krcc", "plcc_raw", "plcc_cubic", "plcc_logistic", "n"}
    assert out["plcc_raw"] == pytest.approx(stats.pearsonr(pred, mos)[0], abs=1e-12)
    assert out["plcc_cubic"] >= out["plcc_raw"] - 1e-12  # least squares superset of the linear fit


# ---------------------------------------------------------------- input checks

def test_nan_input_raises_with_count():
    pred = np.arange(10.0)
    pred[[2, 5]] = np.nan
    with pytest.raises(ValueError, match="2 non-finite"):
        M.srcc(pred, np.arange(10.0))
    mos = np.arange(10.0)
    mos[0] = np.inf
    with pytest.raises(ValueError, match="mos: expected finite values, got 1 non-finite"):
        M.plcc(np.arange(10.0), mos)


def test_length_mismatch_and_too_few_samples_raise():
    with pytest.raises(ValueError, match="same length"):
        M.srcc([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="at least 3"):
        M.srcc([1, 2], [1, 2])
    with pytest.raises(ValueError, match="at least 5"):
        M.plcc([1, 2, 3, 4], [1, 2, 3, 5], "cubic")
    with pytest.raises(ValueError, match="fit"):
        M.plcc([1, 2, 3], [1, 2, 3], "quadratic")
    with pytest.raises(ValueError, match="1-D"):
        M.srcc(np.zeros((3, 3)), np.zeros((3, 3)))


def test_constant_input_gives_nan():
    assert math.isnan(M.srcc([1, 1, 1, 1], [1, 2, 3, 4]))
    assert math.isnan(M.krcc([1, 2, 3, 4], [2, 2, 2, 2]))
    assert math.isnan(M.plcc([1, 1, 1, 1, 1], [1, 2, 3, 4, 5], "cubic"))


# ---------------------------------------------------------------- polarity

def test_polarity_flips_dmos_to_positive_correlations():
    rng = np.random.default_rng(5)
    quality = rng.normal(size=80)
    dmos = -quality + 0.1 * rng.normal(size=80)  # lower = better
    assert M.srcc(quality, dmos) < -0.9
    out = M.signed_correlations(quality, dmos, "dmos")
    assert out["srcc"] > 0.9 and out["plcc_raw"] > 0.9 and out["krcc"] > 0.7
    assert out["polarity"] == "dmos"
    np.testing.assert_allclose(M.orient(dmos, "lower_better"), -dmos)
    np.testing.assert_allclose(M.orient(dmos, "MOS"), dmos)
    with pytest.raises(ValueError, match="polarity"):
        M.orient(dmos, "sideways")
    assert M.DATASET_POLARITY["LIVE"] == "dmos" and M.DATASET_POLARITY["KonIQ"] == "mos"


def _logistic(x, b1, b2, b3, b4):
    """The VQEG 4-parameter logistic, written here independently of grepq."""
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / b4)) + b2


def test_logistic_fit_recovers_known_parameters():
    """400 scores on a known logistic (asymptotes 4.6 and 1.3, centre 0.55, scale 0.09) plus noise of std 0.02:
    the fitted parameters are the generating ones within a few noise-levels (measured: within 3e-3)."""
    fit_logistic4_params = M.fit_logistic4_params
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, 400)
    true = np.array([4.6, 1.3, 0.55, 0.09])
    y = _logistic(x, *true) + rng.normal(0, 0.02, x.size)
    fitted = fit_logistic4_params(x, y)
    assert np.abs(fitted - true) == pytest.approx(0, abs=0.01)
    assert abs(fitted[2] - true[2]) < 1e-3 and abs(fitted[3] - true[3]) < 1e-3
    # a decreasing relation (DMOS-like): the asymptotes swap, the same curve is found
    back = fit_logistic4_params(-x, y)
    assert back[0] == pytest.approx(1.3, abs=0.01) and back[1] == pytest.approx(4.6, abs=0.01)


def test_logistic_plcc_equals_an_independent_least_squares_fit():
    """A fixed vector of 12 scores: grepq's logistic PLCC equals the Pearson correlation after an unbounded
    Levenberg-Marquardt fit of the same curve written here with scipy.optimize.least_squares on the raw scores,
    and both equal the numbers written below (computed once with that independent fit)."""
    pred = np.array([0.12, 0.35, 0.41, 0.18, 0.77, 0.52, 0.93, 0.66, 0.29, 0.85, 0.47, 0.08])
    mos = np.array([1.4, 2.1, 2.9, 1.6, 4.2, 3.0, 4.5, 3.9, 2.6, 4.4, 2.7, 1.2])
    sol = optimize.least_squares(lambda b: _logistic(pred, *b) - mos, x0=[mos.max(), mos.min(), np.median(pred), 0.1],
                                 method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=100000)
    independent = np.corrcoef(_logistic(pred, *sol.x), mos)[0, 1]
    assert independent == pytest.approx(0.9835790490168312, abs=1e-12)
    assert M.plcc(pred, mos, "logistic4") == pytest.approx(independent, abs=1e-9)
    assert M.fit_logistic4_params(pred, mos) == pytest.approx([5.89439345, -1.3824571, 0.31285237, 0.40479551],
                                                             abs=1e-5)
    # the raw and the cubic (official) PLCC against numpy directly, and the numbers
    assert M.plcc(pred, mos, "none") == pytest.approx(np.corrcoef(pred, mos)[0, 1], abs=1e-14)
    assert M.plcc(pred, mos, "none") == pytest.approx(0.9814706926673055, abs=1e-12)
    cubic = np.corrcoef(np.polyval(np.polyfit(pred, mos, 3), pred), mos)[0, 1]
    assert M.plcc(pred, mos, "cubic") == pytest.approx(cubic, abs=1e-14)
    assert cubic == pytest.approx(0.983808432626586, abs=1e-12)
