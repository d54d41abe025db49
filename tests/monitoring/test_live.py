"""Live evidence for a candidate: statistics on hand-built pairs against known values, the
gate's rule, and shadow traffic of the trained model through to a decision's evidence."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from core.app import build_backends, decide_version, live_evidence, set_traffic, simulate
from core.cli import main
from core.governance.gate import with_live
from core.monitoring.live import (
    MIN_PAIRED,
    gate_checks,
    paired_evidence,
    wilson_interval,
)
from core.registry.records import GateAdvice


def test_wilson_interval_matches_known_values():
    assert wilson_interval(80, 100) == pytest.approx((0.7112, 0.8666), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def hand_built() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100 pairs over 3 classes: 80 agree; 12 labelled discordant pairs (champion right
    on 2, candidate right on 10), 20 labelled concordant, the rest unlabelled."""
    champion = np.zeros(100, np.int64)
    candidate = np.zeros(100, np.int64)
    candidate[80:90], candidate[90:100] = 1, 2  # 20 disagreements
    labels = np.full(100, -1)
    labels[:20] = 0  # both right
    labels[80:82] = 0  # champion right, candidate (1) wrong
    labels[82:90] = 1  # candidate right
    labels[90:92] = 2  # candidate right
    return champion, candidate, labels


def test_paired_statistics_on_hand_built_pairs():
    champion, candidate, labels = hand_built()
    evidence = paired_evidence(1, 2, "shadow", champion, candidate, labels, 3,
                               candidate_ids=np.arange(1000, 1100))
    assert evidence.paired == 100 and evidence.agreement == 0.8
    assert evidence.agreement_ci == pytest.approx((0.7112, 0.8666), abs=1e-4)
    assert evidence.confusion == [[80, 10, 10], [0, 0, 0], [0, 0, 0]]
    assert evidence.labelled == 32
    assert (evidence.champion_only, evidence.candidate_only) == (2, 10)
    assert evidence.champion_accuracy == pytest.approx(22 / 32)
    assert evidence.candidate_accuracy == pytest.approx(30 / 32)
    # Exact McNemar: 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * 79 / 4096.
    assert evidence.mcnemar_p == pytest.approx(158 / 4096)
    assert evidence.disagreements[:3] == [1099, 1098, 1097] and len(evidence.disagreements) == 12


def advice(recommendation: str) -> GateAdvice:
    return GateAdvice(recommendation, ["holdouts"], [], {"alpha": 0.05})


def test_the_gate_uses_live_evidence_only_when_there_is_enough():
    champion, candidate, labels = hand_built()
    few = paired_evidence(1, 2, "shadow", champion, candidate, labels, 3)
    assert gate_checks(few, 0.05) == ([], None) and with_live(advice("promote"), few) == \
        advice("promote")
    # Enough pairs, the candidate significantly better on labelled ones: a passed check.
    many = [np.tile(a, 3) for a in (champion, candidate, labels)]
    better = paired_evidence(1, 2, "shadow", *many, 3)
    assert better.paired >= MIN_PAIRED
    amended = with_live(advice("promote"), better)
    assert amended.recommendation == "promote"
    assert [(c.name, c.passed) for c in amended.checks] == [("live agreement", True),
                                                           ("live labelled accuracy", True)]
    # The same pairs with the versions swapped: significantly worse live -> reject.
    worse = paired_evidence(1, 2, "shadow", many[1], many[0], many[2], 3)
    rejected = with_live(advice("promote"), worse)
    assert rejected.recommendation == "reject"
    assert "live labelled accuracy" in rejected.reasons[0]
    # Answers mostly unlike the champion's (like the notebook's re-initialised v2): review.
    rng = np.random.default_rng(0)
    unlike = paired_evidence(1, 2, "shadow", np.zeros(300, np.int64),
                             rng.integers(0, 10, 300), np.full(300, -1), 10)
    assert with_live(advice("promote"), unlike).recommendation == "review"


def test_shadow_traffic_gives_live_evidence_kept_in_the_decision(candidate_copy, now):
    backends = build_backends(candidate_copy)
    assert live_evidence(backends, 1, 2, actor="vic", now=now).paired == 0
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="see v2 on live traffic", now=now)
    simulate(backends, actor="olga", scenario="brightness", n=120, clock=lambda: now)
    evidence = live_evidence(backends, 1, 2, actor="vic", now=now)
    assert evidence.paired == 120 and evidence.labelled == 120 and evidence.mode == "shadow"
    assert sum(map(sum, evidence.confusion)) == 120
    assert 0 < evidence.agreement <= 1
    assert len(evidence.disagreements) == min(12, round(120 * (1 - evidence.agreement)))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--registry", str(candidate_copy.registry_dir), "compare", "1", "2",
                     "--live", "--json"]) == 0
    printed = json.loads(out.getvalue())
    assert printed["live"]["paired"] == 120 and printed["gate"]["recommendation"]
    entry = decide_version(backends, "reject", 2, actor="rex", reason="not convinced",
                           now=now, override_gate=True)
    assert entry.details["live"]["paired"] == 120
    assert entry.details["live"]["agreement"] == evidence.agreement
