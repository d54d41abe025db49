"""Drift statistics: small pure functions, each registered with its thresholds.

Settings (which statistic, which thresholds) are separate from computation.
Every statistic is either a distance (alert when value >= threshold) or a
p-value (alert when value < threshold); ``warn`` is an earlier, softer level.
The defaults keep the false-alarm rate of the whole report under 5 % on clean
traffic at n = 500 (measured; see README) while catching the documented scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput
from core.text import N_

EPSILON = 1e-6  # floor for empty classes in PSI / KL


# --- the statistics (pure functions) ---------------------------------------------------

def kl_divergence(current: np.ndarray, reference: np.ndarray) -> float:
    """KL(current || reference) of two discrete distributions (natural log)."""
    p = np.clip(np.asarray(current, np.float64), EPSILON, None)
    q = np.clip(np.asarray(reference, np.float64), EPSILON, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def population_stability_index(current: np.ndarray, reference: np.ndarray) -> float:
    """PSI = sum (c - r) ln(c / r) over classes, on proportions."""
    c = np.clip(np.asarray(current, np.float64), EPSILON, None)
    r = np.clip(np.asarray(reference, np.float64), EPSILON, None)
    c, r = c / c.sum(), r / r.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def chi_square_p(current_counts: np.ndarray, reference_proportions: np.ndarray) -> float:
    """p-value of a chi-square goodness-of-fit test of counts against proportions."""
    counts = np.asarray(current_counts, np.float64)
    expected = np.clip(np.asarray(reference_proportions, np.float64), EPSILON, None)
    expected = expected / expected.sum() * counts.sum()
    from scipy import stats as scipy_stats  # ~0.7 s to import: only when computed

    return float(scipy_stats.chisquare(counts, expected).pvalue)


def js_distance(current: np.ndarray, reference: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two discrete distributions."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(np.asarray(current, np.float64),
                               np.asarray(reference, np.float64), base=2))


def ks_p(current: np.ndarray, reference: np.ndarray) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test."""
    from scipy import stats as scipy_stats

    return float(scipy_stats.ks_2samp(current, reference).pvalue)


def mmd_permutation_test(x: np.ndarray, y: np.ndarray, permutations: int = 199,
                         rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Maximum mean discrepancy with an RBF kernel and its permutation p-value.

    The kernel width is the median heuristic on the pooled sample. All
    permutations are scored at once: with a signed weight vector a (1/n for
    x, -1/m for y), MMD^2 = a^T K a, so a matrix of permuted weight vectors A
    gives every statistic from one product K @ A.

    Returns:
        (MMD^2 of x vs y (biased estimate), p-value = (1 + #perm >= observed) / (1 + P)).
    """
    rng = rng or np.random.default_rng(0)
    pooled = np.concatenate([x, y]).astype(np.float32)
    n, total = len(x), len(pooled)
    squared = np.sum(pooled ** 2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0)
    median = np.median(distances[np.triu_indices(total, k=1)])
    kernel = np.exp(-distances / max(median, 1e-12)).astype(np.float32)
    weights = np.empty((total, permutations + 1), np.float32)
    labels = np.arange(total) < n
    weights[:, 0] = np.where(labels, 1.0 / n, -1.0 / (total - n))
    for column in range(1, permutations + 1):
        weights[:, column] = weights[rng.permutation(total), 0]
    statistics = np.einsum("ip,ip->p", weights, kernel @ weights)
    observed = float(statistics[0])
    p_value = (1 + np.sum(statistics[1:] >= observed)) / (1 + permutations)
    return observed, float(p_value)


# --- registration: name, kind, default thresholds --------------------------------------

@dataclass(frozen=True)
class StatisticSpec:
    name: str
    kind: str  # "distance" or "p_value"
    warn: float
    alert: float
    meaning: str  # shown in reasons and documented in the README


STATISTICS: dict[str, StatisticSpec] = {s.name: s for s in [
    StatisticSpec("prediction_kl", "distance", 0.02, 0.05,
                  N_("KL divergence of the mean prediction distribution (the seed notebook's)")),
    StatisticSpec("prediction_psi", "distance", 0.1, 0.25,
                  N_("PSI of the predicted-class mix")),
    StatisticSpec("prediction_chi2", "p_value", 0.01, 0.001,
                  N_("chi-square test of predicted-class counts")),
    StatisticSpec("prediction_js", "distance", 0.1, 0.15,
                  N_("Jensen-Shannon distance of the mean prediction distribution")),
    StatisticSpec("confidence_ks", "p_value", 0.01, 0.001,
                  N_("KS test of top-class confidence")),
    StatisticSpec("confidence_drop", "distance", 0.02, 0.05,
                  N_("drop of the mean top-class confidence")),
    StatisticSpec("input_ks_brightness", "p_value", 0.01, 0.001,
                  N_("KS test of image brightness (Bonferroni-corrected)")),
    StatisticSpec("input_ks_contrast", "p_value", 0.01, 0.001,
                  N_("KS test of image contrast (Bonferroni-corrected)")),
    StatisticSpec("input_ks_sharpness", "p_value", 0.01, 0.001,
                  N_("KS test of image sharpness (Bonferroni-corrected)")),
    StatisticSpec("embedding_mmd", "p_value", 0.05, 0.01,
                  N_("MMD permutation test on penultimate-layer embeddings")),
    StatisticSpec("estimated_accuracy_drop", "distance", 0.02, 0.05,
                  N_("drop of label-free estimated accuracy (CBPE) below the reference")),
    # About 1 % of images like the validation split are unfamiliar (the threshold is
    # its 99th percentile): warn at 5x that, alert at 10x. Left out of a report when
    # the version has no OOD detector or too few predictions were scored.
    StatisticSpec("unfamiliar_rate", "distance", 0.05, 0.10,
                  N_("share of images unlike the training images (validation: about 1 %)")),
]}


@dataclass(frozen=True)
class Thresholds:
    """Per-statistic (warn, alert) overrides of the registered defaults."""

    overrides: tuple[tuple[str, float, float], ...] = ()

    def levels(self, name: str) -> tuple[float, float]:
        for override_name, warn, alert in self.overrides:
            if override_name == name:
                return warn, alert
        spec = STATISTICS[name]
        return spec.warn, spec.alert

    @classmethod
    def parse(cls, items: list[str] | None) -> "Thresholds":
        """Parses ``NAME=ALERT`` or ``NAME=WARN:ALERT`` strings (CLI ``--threshold``)."""
        overrides = []
        for item in items or []:
            name, _, levels = item.partition("=")
            if name not in STATISTICS:
                raise InvalidInput(f"unknown statistic {name!r}. To fix this, choose one of: "
                                   f"{', '.join(STATISTICS)}.")
            try:
                parts = [float(v) for v in levels.split(":")]
            except ValueError:
                parts = []
            if len(parts) not in (1, 2):
                raise InvalidInput(f"bad threshold {item!r}. To fix this, write NAME=ALERT or "
                                   "NAME=WARN:ALERT, e.g. prediction_psi=0.1:0.25.")
            warn, alert = (parts[0], parts[0]) if len(parts) == 1 else parts
            overrides.append((name, warn, alert))
        return cls(tuple(overrides))


def status(name: str, value: float, thresholds: Thresholds) -> str:
    """``ok``, ``warn`` or ``alert`` for a statistic's value."""
    warn, alert = thresholds.levels(name)
    if STATISTICS[name].kind == "distance":
        return "alert" if value >= alert else "warn" if value >= warn else "ok"
    return "alert" if value < alert else "warn" if value < warn else "ok"
