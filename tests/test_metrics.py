"""Tests of grepq.eval.metrics: hand-computed correlations, fitted PLCCs, input checks, polarity."""
import math

import numpy as np
import pytest
from scipy import optimize

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


def test_ties_hand_computed():
    # pred [1, 2, 2, 3] has one tie; mos [1, 3, 2, 4] none.
    # Spearman = Pearson of the ranks, ties given their average rank: ranks(pred) = [1, 2.5, 2.5, 4], ranks(mos) =
    # [1, 3, 2, 4]; deviations from 2.5: [-1.5, 0, 0, 1.5] and [-1.5, 0.5, -0.5, 1.5]; cross sum 2.25 + 2.25 = 4.5,
    # sums of squares 4.5 and 5: rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
    assert M.srcc([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9), abs=1e-15)
    # Kendall tau-b: of the 6 pairs, 5 concordant, 0 discordant, 1 tied in pred only (items 2 and 3):
    # (C - D) / sqrt((n0 - ties_pred) * (n0 - ties_mos)) = 5 / sqrt((6 - 1) * (6 - 0)).
    assert M.krcc([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(5 / math.sqrt(30), abs=1e-15)
    # pred [1, 2, 3, 3, 4], mos [2, 1, 3, 3, 5]: pairs (1,2) discordant, (3,4) tied in both, the other 8 concordant:
    # tau-b = (8 - 1) / sqrt((10 - 1) * (10 - 1)) = 7 / 9.
    assert M.krcc([1, 2, 3, 3, 4], [2, 1, 3, 3, 5]) == pytest.approx(7 / 9, abs=1e-15)


def _average_ranks(v):
    """Ranks 1..n, tied values sharing the mean of their positions (written here, not scipy's)."""
    v = list(v)
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x, y):
    """sum(dx * dy) / sqrt(sum(dx^2) * sum(dy^2)), the formula, in plain Python."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def _tau_b(x, y):
    """Kendall tau-b by counting every pair: (C - D) / sqrt((n0 - n1) * (n0 - n2))."""
    c = d = tx = ty = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            s = (x[i] - x[j]) * (y[i] - y[j])
            c, d = c + (s > 0), d + (s < 0)
            tx, ty = tx + (x[i] == x[j]), ty + (y[i] == y[j])
    n0 = n * (n - 1) / 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


def test_srcc_and_krcc_with_many_ties_equal_the_definitions():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 5, size=40).astype(float)
    mos = pred + rng.integers(0, 3, size=40)
    assert _average_ranks([3, 1, 3, 2]) == [3.5, 1, 3.5, 2]
    assert M.srcc(pred, mos) == pytest.approx(_pearson(_average_ranks(pred), _average_ranks(mos)), abs=1e-12)
    assert M.krcc(pred, mos) == pytest.approx(_tau_b(pred.tolist(), mos.tolist()), abs=1e-12)


def test_raw_plcc_hand_computed():
    # x - mean = (-1, 0, 1), y - mean = (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 42/9)
    assert M.plcc([1, 2, 3], [1, 2, 4], "none") == pytest.approx(3.0 / math.sqrt(2 * 42 / 9))


# ---------------------------------------------------------------- fitted PLCC

def test_cubic_fit_hand_computed():
    # pred = [-2, -1, 0, 1, 2]; mos = pred^3 + e with e = [1, -4, 6, -4, 1], which is orthogonal to 1, x, x^2 and x^3
    # on these points (sums 0, 0, 0, 0). So the least-squares cubic is exactly x^3 (fitted values c = [-8, -1, 0, 1,
    # 8], mean 0, sum c^2 = 130) and the residual is e (sum e^2 = 70, orthogonal to c): Pearson(c, c + e) =
    # 130 / sqrt(130 * (130 + 70)) = sqrt(0.65).
    pred = [-2, -1, 0, 1, 2]
    mos = [-8 + 1, -1 - 4, 0 + 6, 1 - 4, 8 + 1]
    assert M.plcc(pred, mos, "cubic") == pytest.approx(math.sqrt(0.65), abs=1e-12)
    # raw Pearson of the same vectors: sum(x * mos) = 14 + 5 + 0 - 3 + 18 = 34, mean(mos) = 0, sum x^2 = 10,
    # sum mos^2 = 49 + 25 + 36 + 9 + 81 = 200: r = 34 / sqrt(10 * 200)
    assert M.plcc(pred, mos, "none") == pytest.approx(34 / math.sqrt(2000), abs=1e-15)


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
    assert out["plcc_raw"] == pytest.approx(_pearson(pred.tolist(), mos.tolist()), abs=1e-12)
    assert out["srcc"] == pytest.approx(_pearson(_average_ranks(pred), _average_ranks(mos)), abs=1e-12)
    assert out["krcc"] == pytest.approx(_tau_b(pred.tolist(), mos.tolist()), abs=1e-12)
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
    # the raw PLCC against the formula, the cubic against the least-squares normal equations (V^T V) b = V^T mos,
    # solved here, not with numpy.polyfit (which grepq uses, as the official code does)
    assert M.plcc(pred, mos, "none") == pytest.approx(_pearson(pred.tolist(), mos.tolist()), abs=1e-12)
    v = np.stack([pred ** k for k in range(4)], axis=1)
    fitted = v @ np.linalg.solve(v.T @ v, v.T @ mos)
    assert M.plcc(pred, mos, "cubic") == pytest.approx(_pearson(fitted.tolist(), mos.tolist()), abs=1e-9)
