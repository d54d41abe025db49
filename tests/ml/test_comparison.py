import json

import numpy as np
import pytest
from scipy import stats as scipy_stats

from core.governance.gate import GatePolicy, recommend
from core.ml.comparison import (
    Holdout,
    bootstrap_difference_ci,
    build_holdouts,
    compare,
    mcnemar_exact_p,
)
from core.ml.data import Split
from core.registry.records import Comparison, HoldoutComparison


def paired(only_a, only_b, both=50, neither=10):
    """Correctness vectors with given discordant counts."""
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    return a, b


def test_mcnemar_exact_known_values():
    a, b = paired(1, 9)
    # Two-sided binomial test of 9 successes in 10 at p = 0.5: 22/1024.
    assert mcnemar_exact_p(a, b) == pytest.approx(22 / 1024)
    assert mcnemar_exact_p(*paired(5, 5)) == pytest.approx(1.0)
    assert mcnemar_exact_p(*paired(0, 0)) == 1.0
    a, b = paired(12, 30)
    assert mcnemar_exact_p(a, b) == pytest.approx(scipy_stats.binomtest(30, 42).pvalue)


def test_bootstrap_interval_brackets_the_observed_difference():
    a, b = paired(10, 40, both=400, neither=50)
    observed = b.mean() - a.mean()
    low, high = bootstrap_difference_ci(a, b, seed=1)
    assert low < observed < high
    assert low > 0  # 30 more right out of 500: clearly positive
    assert (low, high) == bootstrap_difference_ci(a, b, seed=1)  # seeded
    same_low, same_high = bootstrap_difference_ci(a, a)
    assert same_low == same_high == 0


def one_hot(predicted, k=3):
    out = np.full((len(predicted), k), 0.1)
    out[np.arange(len(predicted)), predicted] = 0.8
    return out


def test_compare_reports_both_versions_on_every_holdout():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    holdouts = [Holdout("clean", np.zeros((8, 2, 2, 1), np.uint8), labels),
                Holdout("drifted:blur", np.zeros((8, 2, 2, 1), np.uint8), labels)]
    wrong = (labels + 1) % 3
    probabilities = {1: {"clean": one_hot(labels), "drifted:blur": one_hot(wrong)},
                     2: {"clean": one_hot(labels), "drifted:blur": one_hot(labels)}}
    result = compare(1, 2, holdouts, probabilities, ["a", "b", "c"])
    blur = result.holdouts["drifted:blur"]
    assert blur.accuracy == {"1": 0.0, "2": 1.0} and blur.accuracy_diff == 1.0
    assert blur.mcnemar_p == pytest.approx(2 / 256)
    assert blur.per_class_f1_delta["a"] == pytest.approx(1.0)
    assert result.holdouts["clean"].mcnemar_p == 1.0
    assert set(blur.as_dict()) >= {"accuracy", "macro_f1", "mcnemar_p", "accuracy_diff_ci",
                                   "ece", "confusion_matrix"}
    assert result.advice is None  # the gate's advice comes separately
    # The stored JSON shape reads back as the same record.
    assert Comparison.from_dict(json.loads(json.dumps(result.as_dict()))) == result


def holdout(diff, p):
    return HoldoutComparison(n=100, accuracy={}, macro_f1={}, ece={}, confusion_matrix={},
                             accuracy_diff=diff, accuracy_diff_ci=(diff, diff), mcnemar_p=p,
                             per_class_f1_delta={})


def comparison_of(holdouts):
    return Comparison(1, 2, holdouts)


@pytest.mark.parametrize("holdouts, expected", [
    ({"clean": holdout(-0.002, 0.5), "drifted:brightness": holdout(0.1, 1e-9)}, "promote"),
    ({"clean": holdout(-0.6, 1e-9), "drifted:brightness": holdout(-0.5, 1e-9)}, "reject"),
    ({"clean": holdout(0.0, 1.0), "drifted:blur": holdout(-0.05, 0.001)}, "reject"),
    ({"clean": holdout(-0.01, 0.04), "drifted:blur": holdout(0.05, 0.001)}, "review"),
    ({"clean": holdout(0.0, 1.0), "drifted:blur": holdout(0.01, 0.3)}, "review"),
    ({"clean": holdout(0.001, 0.8)}, "review"),
    ({"clean": holdout(0.02, 0.001)}, "promote"),
])
def test_gate_recommendations(holdouts, expected):
    advice = recommend(comparison_of(holdouts))
    assert advice.recommendation == expected
    assert advice.reasons
    assert all(set(check) == {"name", "passed", "detail"}
               for check in advice.as_dict()["checks"])


def test_gate_policy_is_configurable():
    comparison = comparison_of({"clean": holdout(-0.008, 0.2),
                                "drifted:noise": holdout(0.1, 1e-6)})
    assert recommend(comparison).recommendation == "review"
    relaxed = recommend(comparison, GatePolicy(max_clean_loss=0.01))
    assert relaxed.recommendation == "promote"
    assert relaxed.policy["max_clean_loss"] == 0.01


def test_holdouts_skip_scenarios_that_do_not_change_pixels():
    clean = Split(np.full((4, 6, 6, 1), 100, np.uint8), np.arange(4))
    holdouts = build_holdouts(clean, ["brightness", "class_shift", "none"], seed=0,
                              feedback=Split(clean.images[:2], clean.labels[:2]))
    assert [h.name for h in holdouts] == ["clean", "drifted:brightness", "feedback"]
    assert holdouts[1].images.mean() == pytest.approx(100 + 0.3 * 255, abs=1)
