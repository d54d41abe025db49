"""Champion versus challenger on the same fixed holdouts, with paired significance tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.ml.data import Split
from core.ml.evaluation import classification_metrics
from core.ml.image_sets import Images
from core.ml.scenarios import SCENARIOS
from core.registry.records import Comparison, HoldoutComparison

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE_LEVEL = 0.95
# Scenarios that change pixels get a drifted holdout; class_shift only re-weights classes.
PIXEL_SCENARIOS = tuple(name for name in SCENARIOS if name not in ("none", "class_shift"))


@dataclass(frozen=True)
class Holdout:
    name: str  # "clean", "drifted:<scenario>" or "feedback"
    images: Images  # uint8 [N, h, w, c] (a folder's: read when used)
    labels: np.ndarray  # int64 [N]


def build_holdouts(clean: Split, scenarios: list[str], seed: int,
                   feedback: Split | None = None) -> list[Holdout]:
    """The clean holdout, a drifted copy per pixel scenario (default severity, seeded),
    and user-labelled feedback when there is any."""
    holdouts = [Holdout("clean", clean.images, clean.labels)]
    for name in scenarios:
        if name not in PIXEL_SCENARIOS:
            continue
        scenario = SCENARIOS[name]
        rng = np.random.default_rng(seed)
        drifted = np.stack([scenario.transform(image, scenario.default_severity, rng)
                            for image in clean.images])
        holdouts.append(Holdout(f"drifted:{name}", drifted, clean.labels))
    if feedback is not None and len(feedback):
        holdouts.append(Holdout("feedback", feedback.images, feedback.labels))
    return holdouts


def mcnemar_exact_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """McNemar's exact test: a two-sided binomial test on the discordant pairs."""
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    if only_a + only_b == 0:
        return 1.0
    from scipy import stats as scipy_stats  # ~0.7 s to import: only when compared

    return float(scipy_stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def bootstrap_difference_ci(correct_a: np.ndarray, correct_b: np.ndarray, *, seed: int = 0,
                            resamples: int = BOOTSTRAP_RESAMPLES,
                            level: float = CONFIDENCE_LEVEL) -> tuple[float, float]:
    """Percentile CI of accuracy(b) - accuracy(a), resampling the paired images."""
    rng = np.random.default_rng(seed)
    difference = correct_b.astype(np.float64) - correct_a.astype(np.float64)
    index = rng.integers(0, len(difference), (resamples, len(difference)))
    means = difference[index].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def compare(baseline: int, candidate: int, holdouts: list[Holdout],
            probabilities: dict[int, dict[str, np.ndarray]], class_names: list[str],
            seed: int = 0) -> Comparison:
    """Compares two versions' predictions on the same holdouts.

    Args:
        baseline, candidate: version numbers (the candidate is "B").
        probabilities: version -> holdout name -> float [N, K] predicted probabilities.

    Returns:
        Per holdout both versions' accuracy, macro-F1, ECE and confusion matrix, the
        accuracy difference (candidate - baseline) with its bootstrap CI, McNemar's p and
        per-class F1 deltas; no gate advice yet.
    """
    results: dict[str, HoldoutComparison] = {}
    for holdout in holdouts:
        metrics = {v: classification_metrics(holdout.labels, probabilities[v][holdout.name],
                                              class_names) for v in (baseline, candidate)}
        correct = {v: probabilities[v][holdout.name].argmax(axis=1) == holdout.labels
                   for v in (baseline, candidate)}
        keys = {baseline: str(baseline), candidate: str(candidate)}
        per_version = {name: {keys[v]: metrics[v][name] for v in keys}
                       for name in ("accuracy", "macro_f1", "ece", "confusion_matrix")}
        results[holdout.name] = HoldoutComparison(
            n=int(len(holdout.labels)), **per_version,
            accuracy_diff=metrics[candidate]["accuracy"] - metrics[baseline]["accuracy"],
            accuracy_diff_ci=bootstrap_difference_ci(correct[baseline], correct[candidate],
                                                     seed=seed),
            mcnemar_p=mcnemar_exact_p(correct[baseline], correct[candidate]),
            per_class_f1_delta={
                name: metrics[candidate]["per_class"][name]["f1"]
                - metrics[baseline]["per_class"][name]["f1"] for name in class_names})
    return Comparison(baseline, candidate, results)


def comparison_holdout(test: Split) -> Split:
    """The second half of the test split, never streamed as traffic (see ``traffic_pool``)."""
    return Split(test.images[len(test) // 2:], test.labels[len(test) // 2:])
