"""Each statistic against known values on tiny hand-built samples."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from core.errors import InvalidInput
from core.monitoring import drift


def test_kl_divergence_known_value():
    # KL([0.5, 0.5] || [0.25, 0.75]) = 0.5 ln 2 + 0.5 ln(2/3)
    expected = 0.5 * np.log(2) + 0.5 * np.log(2 / 3)
    assert drift.kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert drift.kl_divergence([0.2, 0.8], [0.2, 0.8]) == pytest.approx(0)


def test_psi_known_value():
    # (0.5-0.25) ln(2) + (0.5-0.75) ln(2/3)
    expected = 0.25 * np.log(2) - 0.25 * np.log(2 / 3)
    assert drift.population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    # An empty class is floored, not infinite.
    assert np.isfinite(drift.population_stability_index([1.0, 0.0], [0.5, 0.5]))


def test_chi_square_matches_scipy():
    counts = np.array([30, 50, 20])
    proportions = np.array([0.2, 0.5, 0.3])
    expected = scipy_stats.chisquare(counts, proportions * 100).pvalue
    assert drift.chi_square_p(counts, proportions) == pytest.approx(expected)


def test_js_distance_known_values():
    assert drift.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: maximal
    assert drift.js_distance([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0, abs=1e-7)


def test_ks_matches_scipy():
    a = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    b = np.array([0.2, 0.25, 0.3, 0.5, 0.55, 0.6])
    assert drift.ks_p(a, b) == pytest.approx(scipy_stats.ks_2samp(a, b).pvalue)


def naive_mmd2(x, y):
    pooled = np.concatenate([x, y])
    squared = ((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(-1)
    median = np.median(squared[np.triu_indices(len(pooled), 1)])
    kernel = np.exp(-squared / median)
    n = len(x)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


def test_mmd_matches_a_naive_computation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1, size=(9, 3))
    value, _ = drift.mmd_permutation_test(x, y, permutations=10)
    assert value == pytest.approx(naive_mmd2(x, y), rel=1e-4)


def test_mmd_permutation_p_value_separates_shifted_samples():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(200, 8))
    _, same = drift.mmd_permutation_test(rng.normal(size=(100, 8)), reference, 99, rng)
    _, shifted = drift.mmd_permutation_test(rng.normal(0.5, size=(100, 8)), reference, 99, rng)
    assert same > 0.05
    assert shifted == pytest.approx(1 / 100)  # no permutation beats the real split


@pytest.mark.parametrize("name, value, expected", [
    ("prediction_psi", 0.05, "ok"), ("prediction_psi", 0.1, "warn"),
    ("prediction_psi", 0.3, "alert"), ("confidence_ks", 0.5, "ok"),
    ("confidence_ks", 0.005, "warn"), ("confidence_ks", 0.0001, "alert"),
])
def test_status_levels(name, value, expected):
    assert drift.status(name, value, drift.Thresholds()) == expected


def test_threshold_overrides():
    thresholds = drift.Thresholds.parse(["prediction_psi=0.5", "confidence_ks=0.05:0.01"])
    assert thresholds.levels("prediction_psi") == (0.5, 0.5)
    assert thresholds.levels("confidence_ks") == (0.05, 0.01)
    assert thresholds.levels("prediction_js") == (0.1, 0.15)  # untouched default
    assert drift.status("prediction_psi", 0.3, thresholds) == "ok"


@pytest.mark.parametrize("item, message", [
    ("psi=0.2", "unknown statistic 'psi'"), ("prediction_psi=high", "NAME=WARN:ALERT"),
    ("prediction_psi=1:2:3", "NAME=WARN:ALERT"),
])
def test_bad_threshold_overrides(item, message):
    with pytest.raises(InvalidInput, match=message):
        drift.Thresholds.parse([item])
