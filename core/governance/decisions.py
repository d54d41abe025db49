"""Human decisions on versions (promote, reject, roll back) and the check of the log itself.

Decisions check the version's state inside the catalog's write transaction, so
two reviewers deciding at once cannot both win, and the loser is told why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import NoReturn

from core.audit import AuditEntry, AuditLog, Verification, stamp
from core.errors import ActionRefused, InvalidInput
from core.governance.access import AccessControl, check_reason
from core.governance.gate import with_live
from core.monitoring.live import LiveEvidence
from core.monitoring.report import DriftSummary
from core.registry.records import Comparison, GateAdvice, ModelVersion
from core.registry.registry import Registry

# Decision -> (the status it starts from, the status it sets).
DECISIONS = {
    "promote": ("candidate", "champion"),
    "reject": ("candidate", "rejected"),
    "rollback": ("archived", "champion"),
}


@dataclass(frozen=True)
class DecisionDetails:
    """What a decision's audit entry keeps beside who, when and why (its ``details``): the
    champion it replaced or kept, the comparison and the gate's advice the reviewer saw,
    whether they went against it, the champion's drift and the candidate's live evidence
    at that moment; a done decision also its status change, a refused one the reason given.

    ``as_dict`` is the stored JSON (hashed into the chain: its shape never changes);
    ``from_dict`` reads it back, a missing part as None.
    """

    champion_before: int | None
    comparison: Comparison | None = None
    gate: GateAdvice | None = None  # kept without its policy: the comparison has it
    gate_overridden: bool = False
    drift: DriftSummary | None = None
    live: LiveEvidence | None = None
    from_status: str | None = None  # a done decision's status change
    to_status: str | None = None
    reason_given: str | None = None  # a refused decision's reason

    def as_dict(self) -> dict:
        values: dict[str, object] = {
            "champion_before": self.champion_before,
            "comparison": self.comparison.as_dict() if self.comparison else None,
            "gate": None if self.gate is None else {
                k: v for k, v in self.gate.as_dict().items() if k != "policy"},
            "gate_overridden": self.gate_overridden,
            "drift": self.drift.as_dict() if self.drift else None,
            "live": self.live.as_dict() if self.live else None}
        if self.to_status is not None:
            values |= {"from_status": self.from_status, "to_status": self.to_status}
        if self.reason_given is not None:
            values["reason_given"] = self.reason_given
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "DecisionDetails":
        comparison, gate = values.get("comparison"), values.get("gate")
        drift, live = values.get("drift"), values.get("live")
        return cls(values.get("champion_before"),
                   Comparison.from_dict(comparison) if comparison else None,
                   GateAdvice.from_dict({"policy": {}} | gate) if gate else None,
                   bool(values.get("gate_overridden")),
                   DriftSummary.from_dict(drift) if drift else None,
                   LiveEvidence.from_dict(live) if live else None,
                   values.get("from_status"), values.get("to_status"),
                   values.get("reason_given"))


def decide(access: AccessControl, registry: Registry, action: str, version: int, *,
           actor: str, reason: str, now: datetime, separation_of_duties: bool,
           override_gate: bool = False, expected_champion: int | None = None,
           drift: DriftSummary | None = None, live: LiveEvidence | None = None
           ) -> AuditEntry:
    """Promotes, rejects or rolls back a version on behalf of a person; returns the entry.

    Args:
        action: ``promote`` (candidate -> champion), ``reject`` (candidate -> rejected)
            or ``rollback`` (archived -> champion). The previous champion is archived.
        reason: why, in the decider's words (required).
        separation_of_duties: whether whoever produced a candidate is barred from
            promoting it.
        override_gate: acknowledges deciding against the gate's recommendation.
        expected_champion: the champion the decider looked at; if another version is
            champion by the time the decision commits, it is refused (default: the
            champion when this is called).
        drift: the champion's drift status at this moment, kept as evidence.
        live: the candidate's live evidence (shadow, canary): amends the gate's advice
            once there is enough of it, and is kept as evidence.

    Raises:
        ActionRefused: the role, the version's state, separation of duties or a
            missing gate acknowledgement forbids it (the refusal is logged first).
    """
    if action not in DECISIONS:
        raise InvalidInput(f"unknown decision {action!r}. To fix this, use one of: "
                           f"{', '.join(DECISIONS)}.")
    target = f"version {version}"
    acting = access.authorize(actor, action, now, target=target, version=version)
    reason = check_reason(reason)
    chosen = registry.get_version(version)
    champion = registry.get_champion()
    from_status, to_status = DECISIONS[action]
    comparison = (registry.find_comparison(champion.version, version)
                  if action != "rollback" else None)
    advice = with_live(comparison.advice, live) if comparison and comparison.advice else None
    evidence = DecisionDetails(
        champion.version, comparison, advice, drift=drift,
        live=live if live and (live.paired or live.arms) else None)

    def refuse_decision(message: str) -> NoReturn:
        access.refuse(acting, action, message, now, target=target, version=version,
                      details=replace(evidence, reason_given=reason).as_dict())

    recommended = advice.recommendation if advice else None
    against_gate = ((action == "promote" and recommended != "promote")
                    or (action == "reject" and recommended == "promote"))
    problem = (_state_problem(action, chosen, champion, expected_champion, comparison)
               or (_gate_problem(action, version, advice) if against_gate and not override_gate
                   else None))
    if problem:
        refuse_decision(problem)
    evidence = replace(evidence, gate_overridden=against_gate)
    if action == "promote" and separation_of_duties and chosen.created_by == acting.name:
        refuse_decision(f"{acting.name} submitted the retraining that produced version "
                        f"{version}, so cannot approve it (separation of duties). To fix "
                        "this, ask another reviewer to decide.")
    entry = AuditEntry(at=stamp(now), actor=acting.name, role=acting.role, action=action,
                       outcome="done", model=registry.model, target=target,
                       version=version, reason=reason,
                       details=replace(evidence, from_status=from_status,
                                       to_status=to_status).as_dict())
    expected = {version: from_status, champion.version: "champion"}
    try:
        return registry.catalog.change_status(registry.model, version, to_status,
                                              expected=expected, entry=entry)
    except ActionRefused as error:  # lost a race to another decision: logged, then raised
        refuse_decision(str(error))


def _state_problem(action: str, chosen: ModelVersion, champion: ModelVersion,
                   expected_champion: int | None, comparison: Comparison | None) -> str | None:
    """Why the versions' state forbids the decision (None: it allows it)."""
    from_status, version = DECISIONS[action][0], chosen.version
    if chosen.status != from_status:
        return (f"version {version} is {chosen.status}; only a {from_status} version can be "
                f"{past_tense(action)}. To fix this, pick a {from_status} version (see "
                "'python -m core versions').")
    if expected_champion is not None and expected_champion != champion.version:
        return (f"the champion is now version {champion.version}, not version "
                f"{expected_champion} as when you looked. To fix this, look at the current "
                "state and decide again.")
    if action == "promote" and comparison is None:
        return (f"version {version} has not been compared with the champion (version "
                f"{champion.version}), so there is no evidence to decide on. To fix this, run "
                f"'python -m core compare {champion.version} {version}'.")
    return None


def _gate_problem(action: str, version: int, advice: GateAdvice | None) -> str:
    recommended = advice.recommendation if advice else None
    reasons = "; ".join(advice.reasons) if advice else "no comparison"
    return (f"the gate recommends {recommended} for version {version} ({reasons}), and you "
            f"chose to {action}. To fix this, if you decide against the gate, acknowledge it "
            "explicitly (--override-gate, or the checkbox on the Governance page).")


def past_tense(action: str) -> str:
    return {"promote": "promoted", "reject": "rejected", "rollback": "rolled back to"}[action]


def verify_audit(audit_log: AuditLog, registry: Registry,
                 anchor: tuple[int, str] | None = None) -> Verification:
    """Checks the hash chain, then that the catalog's statuses are the ones the log recorded.

    A status changed in the database without going through a decision has no
    matching entry, so it is reported like an edited entry.
    """
    result = audit_log.verify(anchor)
    if not result.ok:
        return result
    recorded = {}
    for change in registry.status_history():
        recorded[change.version] = change.to_status
    for version in registry.list_versions():
        if recorded.get(version.version) != version.status:
            return replace(result, ok=False, problem=(
                f"version {version.version} is {version.status} in the catalog, but the audit "
                f"log records it as {recorded.get(version.version) or 'never registered'}: "
                "its status was changed outside a decision"))
    return result
