"""The promotion gate: advice for the human who decides, never a decision itself."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core.monitoring.live import (
    ACCURACY_DETAIL,
    AGREEMENT_DETAIL,
    LIVE_ACCURACY,
    LIVE_AGREEMENT,
    LiveEvidence,
    gate_checks,
)
from core.registry.records import Comparison, GateAdvice, GateCheck
from core.text import N_

# The gate's sentences, formatted from marked templates: they are stored in English with
# each comparison, and the dashboard translates them back through these (core.text.parse).
CLEAN_HELD = N_("clean accuracy held")
CLEAN_DETAIL = N_("{diff} points on the clean holdout (allowed: -{allowed})")
GAINS_ON = N_("gains on {holdout}")
GAIN_DETAIL = N_("{diff} points, McNemar p = {p} (needs > 0 and p < {alpha})")
LOSES_CLEAN = N_("the candidate loses {loss} points of clean accuracy (more than {limit})")
WORSE_ON = N_("the candidate is significantly worse on {holdouts}")
ALL_PASSED = N_("every check passed")
NOTHING_BETTER = N_("no drifted holdout and no significant clean gain: nothing shows the "
                    "candidate is better")
FAILED_CHECK = "{name}: {detail}"  # a reason naming a failed check (each part translated)
# Every template a stored gate sentence can come from, the live checks' included.
SENTENCES = (CLEAN_HELD, CLEAN_DETAIL, GAINS_ON, GAIN_DETAIL, LOSES_CLEAN, WORSE_ON,
             ALL_PASSED, NOTHING_BETTER, LIVE_AGREEMENT, AGREEMENT_DETAIL, LIVE_ACCURACY,
             ACCURACY_DETAIL)


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
        CLEAN_HELD, clean_loss <= policy.max_clean_loss,
        CLEAN_DETAIL.format(diff=f"{clean.accuracy_diff * 100:+.2f}",
                            allowed=f"{policy.max_clean_loss * 100:.1f}")))
    drifted = {name: h for name, h in holdouts.items() if name.startswith("drifted:")}
    for name, holdout in drifted.items():
        gained = holdout.accuracy_diff > 0 and holdout.mcnemar_p < policy.alpha
        checks.append(GateCheck(
            GAINS_ON.format(holdout=name), gained,
            GAIN_DETAIL.format(diff=f"{holdout.accuracy_diff * 100:+.2f}",
                               p=f"{holdout.mcnemar_p:.2g}", alpha=policy.alpha)))
    significantly_worse = [name for name, h in holdouts.items()
                           if h.accuracy_diff < 0 and h.mcnemar_p < policy.alpha
                           and name != "clean"]
    if clean_loss > policy.reject_clean_loss:
        recommendation = "reject"
        reasons.append(LOSES_CLEAN.format(loss=f"{clean_loss * 100:.1f}",
                                          limit=f"{policy.reject_clean_loss * 100:.1f}"))
    elif significantly_worse:
        recommendation = "reject"
        reasons.append(WORSE_ON.format(holdouts=", ".join(significantly_worse)))
    elif all(check.passed for check in checks) and (
            drifted or (clean.accuracy_diff > 0 and clean.mcnemar_p < policy.alpha)):
        recommendation = "promote"
        reasons.append(ALL_PASSED)
    else:
        recommendation = "review"
        reasons += [FAILED_CHECK.format(name=c.name, detail=c.detail)
                    for c in checks if not c.passed]
        if not drifted and not reasons:
            reasons.append(NOTHING_BETTER)
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
    failed = [FAILED_CHECK.format(name=name, detail=detail)
              for name, passed, detail in checks if not passed]
    if forced == "reject" and recommendation != "reject":
        recommendation = "reject"
        reasons = failed
    elif forced == "review" and recommendation == "promote":
        recommendation = "review"
        reasons = failed
    return GateAdvice(recommendation, reasons,
                      advice.checks + [GateCheck(*check) for check in checks],
                      advice.policy | {"live": True})
