"""The promotion gate: advice for the human who decides, never a decision itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core.monitoring.live import LiveEvidence, gate_checks
from core.registry.records import Comparison, GateAdvice, GateCheck


@dataclass(frozen=True)
class GatePolicy:
    """When to recommend promote, reject or review.

    Attributes:
        max_clean_loss: largest accepted drop of clean accuracy (0.005 = half a point).
        reject_clean_loss: a drop this large recommends rejection outright.
        alpha: significance level of McNemar's test for gains and losses.
    """

    max_clean_loss: float = 0.005
    reject_clean_loss: float = 0.02
    alpha: float = 0.05

    def as_dict(self) -> dict:
        return asdict(self)


def recommend(comparison: Comparison, policy: GatePolicy = GatePolicy()) -> GateAdvice:
    """Checks a comparison against the policy: promote, reject or review, with reasons."""
    holdouts = comparison.holdouts
    clean = holdouts["clean"]
    checks: list[GateCheck] = []
    reasons: list[str] = []
    clean_loss = -clean.accuracy_diff
    checks.append(GateCheck(
        "clean accuracy held", clean_loss <= policy.max_clean_loss,
        f"{clean.accuracy_diff * 100:+.2f} points on the clean holdout "
        f"(allowed: -{policy.max_clean_loss * 100:.1f})"))
    drifted = {name: h for name, h in holdouts.items() if name.startswith("drifted:")}
    for name, holdout in drifted.items():
        gained = holdout.accuracy_diff > 0 and holdout.mcnemar_p < policy.alpha
        checks.append(GateCheck(
            f"gains on {name}", gained,
            f"{holdout.accuracy_diff * 100:+.2f} points, McNemar "
            f"p = {holdout.mcnemar_p:.2g} (needs > 0 and p < {policy.alpha})"))
    significantly_worse = [name for name, h in holdouts.items()
                           if h.accuracy_diff < 0 and h.mcnemar_p < policy.alpha
                           and name != "clean"]
    if clean_loss > policy.reject_clean_loss:
        recommendation = "reject"
        reasons.append(f"the candidate loses {clean_loss * 100:.1f} points of clean accuracy "
                       f"(more than {policy.reject_clean_loss * 100:.1f})")
    elif significantly_worse:
        recommendation = "reject"
        reasons.append("the candidate is significantly worse on "
                       + ", ".join(significantly_worse))
    elif all(check.passed for check in checks) and (
            drifted or (clean.accuracy_diff > 0 and clean.mcnemar_p < policy.alpha)):
        recommendation = "promote"
        reasons.append("every check passed")
    else:
        recommendation = "review"
        reasons += [f"{c.name}: {c.detail}" for c in checks if not c.passed]
        if not drifted and not reasons:
            reasons.append("no drifted holdout and no significant clean gain: "
                           "nothing shows the candidate is better")
    return GateAdvice(recommendation, reasons, checks, policy.as_dict())


def with_live(advice: GateAdvice, live: LiveEvidence | None) -> GateAdvice:
    """The holdouts' advice amended by live evidence, when there is enough of it (rule in
    ``core.monitoring.live.gate_checks``): significantly worse live accuracy recommends
    rejection; answers mostly unlike the champion's turn a promote into a review."""
    if live is None:
        return advice
    checks, forced = gate_checks(live, advice.policy.get("alpha", GatePolicy.alpha))
    if not checks:
        return advice
    recommendation, reasons = advice.recommendation, list(advice.reasons)
    failed = [f"{name}: {detail}" for name, passed, detail in checks if not passed]
    if forced == "reject" and recommendation != "reject":
        recommendation = "reject"
        reasons = failed
    elif forced == "review" and recommendation == "promote":
        recommendation = "review"
        reasons = failed
    return GateAdvice(recommendation, reasons,
                      advice.checks + [GateCheck(*check) for check in checks],
                      advice.policy | {"live": True})
