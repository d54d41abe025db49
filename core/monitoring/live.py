"""Live evidence: how a candidate in shadow or canary behaved on real traffic.

Shadow traffic gives pairs: the same request answered by the champion and run on
the candidate. On pairs we measure agreement (with a Wilson 95 % interval), the
confusion table champion-versus-candidate, and on the pairs whose true class is
known (feedback), both accuracies with McNemar's exact test. Canary traffic gives
no pairs (each request goes to one of them): only per-arm counts and labelled
accuracies, which the gate does not use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from core.ml.comparison import mcnemar_exact_p
from core.text import N_

Z_95 = 1.959963984540054
# The gate's rule (stated in docs/governance.md): live evidence counts once there are
# at least MIN_PAIRED shadow pairs; its McNemar test once MIN_LABELLED of them are labelled.
MIN_PAIRED = 200
MIN_LABELLED = 30
# Below this agreement (upper end of the 95 % interval) the candidate answers most live
# requests differently from the champion: a human must look, whatever the holdouts say.
MIN_AGREEMENT = 0.5


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Arm:
    """One side of a canary: requests it answered and its labelled accuracy."""

    version: int
    requests: int
    labelled: int
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None


@dataclass(frozen=True)
class LiveEvidence:
    """Attributes:
        paired: shadowed requests, seen by both versions.
        confusion: [K, K] counts, rows the champion's class, columns the candidate's.
        champion_only, candidate_only: labelled pairs only that version got right
            (McNemar's discordant pairs).
        disagreements: ids of the candidate's shadow rows that disagree, newest first.
    """

    champion: int
    candidate: int
    mode: str  # shadow / canary / off (what the policy is now)
    paired: int
    agreement: float | None
    agreement_ci: tuple[float, float] | None
    confusion: list[list[int]]
    labelled: int
    champion_accuracy: float | None
    candidate_accuracy: float | None
    champion_only: int
    candidate_only: int
    mcnemar_p: float | None
    arms: list[Arm] = field(default_factory=list)
    disagreements: list[int] = field(default_factory=list)

    @property
    def enough(self) -> bool:
        return self.paired >= MIN_PAIRED

    def as_dict(self) -> dict:
        return asdict(self) | {"enough": self.enough,
                               "rule": {"min_paired": MIN_PAIRED, "min_labelled": MIN_LABELLED,
                                        "min_agreement": MIN_AGREEMENT}}

    @classmethod
    def from_dict(cls, values: dict) -> "LiveEvidence":
        """Reads ``as_dict``'s shape back (as kept in a decision's audit entry)."""
        def interval(pair: list | None) -> tuple[float, float] | None:
            return (pair[0], pair[1]) if pair else None

        kept = {f.name: values.get(f.name) for f in fields(cls) if f.name in values}
        return cls(**kept | {
            "agreement_ci": interval(values.get("agreement_ci")),
            "arms": [Arm(**arm | {"accuracy_ci": interval(arm.get("accuracy_ci"))})
                     for arm in values.get("arms") or []],
            "disagreements": list(values.get("disagreements") or [])})


def paired_evidence(champion: int, candidate: int, mode: str, champion_pred: np.ndarray,
                    candidate_pred: np.ndarray, true_labels: np.ndarray, num_classes: int,
                    candidate_ids: np.ndarray | None = None, max_gallery: int = 12
                    ) -> LiveEvidence:
    """Statistics of paired predictions (int arrays [n]; ``true_labels`` -1 if unknown)."""
    champion_pred = np.asarray(champion_pred, np.int64)
    candidate_pred = np.asarray(candidate_pred, np.int64)
    true_labels = np.asarray(true_labels, np.int64)
    n = len(champion_pred)
    agree = champion_pred == candidate_pred
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (champion_pred, candidate_pred), 1)
    known = true_labels >= 0
    champion_right = champion_pred[known] == true_labels[known]
    candidate_right = candidate_pred[known] == true_labels[known]
    labelled = int(known.sum())
    ids = np.asarray(candidate_ids if candidate_ids is not None else np.arange(n), np.int64)
    return LiveEvidence(
        champion=champion, candidate=candidate, mode=mode, paired=n,
        agreement=float(agree.mean()) if n else None,
        agreement_ci=wilson_interval(int(agree.sum()), n) if n else None,
        confusion=confusion.tolist(), labelled=labelled,
        champion_accuracy=float(champion_right.mean()) if labelled else None,
        candidate_accuracy=float(candidate_right.mean()) if labelled else None,
        champion_only=int(np.sum(champion_right & ~candidate_right)),
        candidate_only=int(np.sum(~champion_right & candidate_right)),
        mcnemar_p=mcnemar_exact_p(champion_right, candidate_right) if labelled else None,
        disagreements=[int(i) for i in ids[~agree][::-1][:max_gallery]])


def arm(version: int, predicted: np.ndarray, true_labels: np.ndarray) -> Arm:
    known = np.asarray(true_labels) >= 0
    right = int(np.sum(np.asarray(predicted)[known] == np.asarray(true_labels)[known]))
    labelled = int(known.sum())
    return Arm(version, len(predicted), labelled, right / labelled if labelled else None,
               wilson_interval(right, labelled) if labelled else None)


# The live checks' sentences (stored with the gate's advice; see core.governance.gate).
LIVE_AGREEMENT = N_("live agreement")
AGREEMENT_DETAIL = N_("{agreement} of {paired} shadowed requests agree (95% CI up to {high}; "
                      "needs >= {needed})")
LIVE_ACCURACY = N_("live labelled accuracy")
ACCURACY_DETAIL = N_("{candidate} vs {champion} on {labelled} labelled live requests, McNemar "
                     "p = {p}")


def gate_checks(evidence: LiveEvidence, alpha: float) -> tuple[list[tuple[str, bool, str]],
                                                                str | None]:
    """The gate's use of live evidence: (checks as name, passed, detail) and a
    recommendation it forces ("reject" or "review"), or None.

    - fewer than MIN_PAIRED pairs: no check (not enough evidence either way);
    - the upper end of the agreement interval below MIN_AGREEMENT: review;
    - with MIN_LABELLED labelled pairs, the candidate significantly less accurate
      (McNemar p < alpha): reject; significantly more accurate: a passed check.
    """
    if not evidence.enough or evidence.agreement_ci is None:
        return [], None
    checks = []
    forced = None
    high = evidence.agreement_ci[1]
    agreeing = high >= MIN_AGREEMENT
    checks.append((LIVE_AGREEMENT, agreeing, AGREEMENT_DETAIL.format(
        agreement=f"{evidence.agreement:.1%}", paired=evidence.paired, high=f"{high:.1%}",
        needed=f"{MIN_AGREEMENT:.0%}")))
    if not agreeing:
        forced = "review"
    if evidence.labelled >= MIN_LABELLED and evidence.mcnemar_p is not None:
        better = evidence.candidate_only > evidence.champion_only
        significant = evidence.mcnemar_p < alpha
        checks.append((LIVE_ACCURACY, not (significant and not better),
                       ACCURACY_DETAIL.format(
                           candidate=f"{evidence.candidate_accuracy:.1%}",
                           champion=f"{evidence.champion_accuracy:.1%}",
                           labelled=evidence.labelled, p=f"{evidence.mcnemar_p:.2g}")))
        if significant and not better:
            forced = "reject"
    return checks, forced
