"""The alert rules' checks, each run on its own in a monitor pass: one that fails is
recorded as a monitor problem and its episodes stay as they are, while the others go on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import numpy as np

from core.app.backends import Backends
from core.app.monitor import report_for_version
from core.app.traffic import policy_status
from core.app.train import RETRAIN_JOB
from core.audit import Actor, stamp
from core.errors import CoreError
from core.governance.decisions import DECISIONS, past_tense, verify_audit
from core.ml.params import RetrainRequest
from core.monitoring.alerts import CONDITION, RULES, Changes, Episode, Finding, rule_settings
from core.monitoring.report import DriftReport

LOGGER = logging.getLogger("core.monitor")
T = TypeVar("T")
# Who the monitor acts as in the audit log (it is a system process, like a worker).
MONITOR = Actor("monitor", "system")
JOB_EVENT_HORIZON = timedelta(days=1)  # failed jobs older than this never alert


class Problems:
    """What failed in one monitor pass, by item ("rule drift", "hour periods",
    "deliveries", ...): each failure is logged and recorded, and the pass goes on with the
    next item. With ``strict`` (direct calls, tests) failures are raised instead."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.items: dict[str, str] = {}

    def record(self, item: str, error: Exception) -> None:
        if self.strict:
            raise error
        # A user-fixable error is one line; anything else is a bug: its traceback is kept.
        LOGGER.error("monitor: %s failed: %s", item, error,
                     exc_info=None if isinstance(error, CoreError) else error)
        self.items[item] = f"{type(error).__name__}: {error}"[:1000]

    def run(self, item: str, work: Callable[[], T], otherwise: T) -> T:
        """``work()``, or ``otherwise`` once its failure is recorded."""
        try:
            return work()
        except Exception as error:  # noqa: BLE001 - one item's failure ends only that item
            self.record(item, error)
            return otherwise


@dataclass
class _Pass:
    """What every rule's check reads in one pass (each read once, when first needed)."""

    backends: Backends
    now: datetime
    settings: dict[str, dict]
    open_episodes: list[Episode]

    @functools.cached_property
    def served(self) -> list[int]:
        return _served_versions(self.backends)

    @functools.cached_property
    def reports(self) -> dict[int, DriftReport]:
        """Shared by the drift and accuracy_drop rules."""
        return _reports(self.backends, self.served, self.settings)


Checked = set[tuple[str, str]]  # (rule, subject) pairs whose condition was evaluated


def evaluate_alerts(backends: Backends, now: datetime,
                    problems: Problems | None = None) -> Changes:
    """Checks every enabled rule now and records what changed (episodes, messages).

    Each rule is checked on its own: one that fails is recorded in ``problems`` and its
    episodes stay as they are, while the others go on.
    """
    problems = problems or Problems(strict=True)
    store = backends.alerts
    overrides = store.overrides()
    settings = {name: rule_settings(name, overrides.get(name, {})) for name in RULES}
    enabled = {name for name, s in settings.items() if s["enabled"]}
    state = _Pass(backends, now, settings, store.episodes(open_only=True))
    findings: list[Finding] = []
    checked: Checked = set()
    for rule, check in _CHECKS.items():
        # decision_made always runs: it moves the cursor of audit entries seen.
        if rule not in enabled and rule != "decision_made":
            continue
        seen: Checked = set()
        found = problems.run(f"rule {rule}",
                             functools.partial(check, state, seen, rule in enabled), None)
        if found is not None:
            findings += found
            checked |= seen
    reminders = {name: s.get("reminder_minutes", 0) for name, s in settings.items()
                 if RULES[name].kind == CONDITION}
    return store.record(findings, checked, now, reminders)


def _check_drift(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    findings = []
    for version, report in state.reports.items():
        subject = f"version {version}"
        checked.add(("drift", subject))
        if report.alert:
            findings.append(Finding("drift", subject, f"version {version}'s last "
                                    f"{report.n} predictions drifted: "
                                    + "; ".join(report.reasons[:3]), version,
                                    {"reasons": report.reasons, "n": report.n,
                                     "window": [report.window_start, report.window_end]}))
    _resolve_unserved(state, "drift", checked)
    return findings


def _check_accuracy_drop(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    findings = []
    for version, report in state.reports.items():
        subject = f"version {version}"
        checked.add(("accuracy_drop", subject))
        drop = report.reference_accuracy - report.estimated_accuracy
        if drop > state.settings["accuracy_drop"]["max_drop"]:
            findings.append(Finding(
                "accuracy_drop", subject, f"version {version}'s estimated accuracy is "
                f"{report.estimated_accuracy:.1%}, {drop * 100:.1f} points below its "
                f"validation accuracy ({report.reference_accuracy:.1%})", version,
                {"estimated": report.estimated_accuracy, "n": report.n,
                 "reference": report.reference_accuracy}))
    _resolve_unserved(state, "accuracy_drop", checked)
    return findings


def _resolve_unserved(state: _Pass, rule: str, checked: Checked) -> None:
    """A version no longer served has nothing left to drift: its episodes resolve."""
    served = state.served
    for episode in state.open_episodes:
        if episode.rule == rule and episode.version not in served:
            checked.add((episode.rule, episode.subject))


def _check_candidates(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    findings = []
    for registered in state.backends.registry.list_versions():
        subject = f"version {registered.version}"
        checked.add(("candidate_registered", subject))
        if registered.status == "candidate":
            findings.append(Finding(
                "candidate_registered", subject, f"candidate version {registered.version} "
                f"(by {registered.created_by}) waits for review", registered.version,
                {"created_at": registered.created_at, "created_by": registered.created_by}))
    for episode in state.open_episodes:
        if episode.rule == "candidate_registered":
            checked.add((episode.rule, episode.subject))
    return findings


def _check_failed_jobs(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    findings = []
    for job in state.backends.jobs.list(state.now):
        subject = f"job {job.id}"
        if (job.status == "failed" and job.finished_at
                and datetime.fromisoformat(job.finished_at) >= state.now - JOB_EVENT_HORIZON
                and not state.backends.alerts.has_episode("job_failed", subject)):
            findings.append(Finding("job_failed", subject, f"{job.kind} job {job.id} "
                                    f"(by {job.submitted_by}) failed: {job.error}",
                                    job.result_version, {"error": job.error}))
    return findings


def _check_witness(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    """Once a day: the audit log's head, sent outside the database (a witness)."""
    subject = f"audit head on {state.now:%Y-%m-%d}"
    head = state.backends.audit_log.head()
    if head is None or state.backends.alerts.has_episode("audit_witness", subject):
        return []
    seq, digest = head
    return [Finding("audit_witness", subject, f"the audit log's head is entry {seq}, hash "
                    f"{digest}: keep this message; 'python -m core audit verify --anchor "
                    f"{seq}:{digest}' checks the log against it", None,
                    {"seq": seq, "hash": digest})]


def _check_audit_chain(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    checked.add(("audit_chain", "audit log"))
    verification = verify_audit(state.backends.audit_log, state.backends.registry)
    if verification.ok:
        return []
    return [Finding("audit_chain", "audit log", "the audit log fails verification: "
                    f"{verification.problem}", None, verification.as_dict())]


def _check_traffic(rule: str):
    """The check of ``error_rate`` or ``latency_p95`` over the API's recent requests."""

    def check(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
        setting = state.settings[rule]
        rows = state.backends.prediction_log.api_requests(
            state.backends.model, stamp(state.now - timedelta(minutes=setting["minutes"])))
        if len(rows) < setting["min_requests"]:
            return []  # too few requests to judge: episodes stay as they are
        checked.add((rule, "api"))
        details = {"requests": len(rows), "minutes": setting["minutes"]}
        if rule == "error_rate":
            errors = sum(row.status != 200 for row in rows)
            rate = errors / len(rows)
            if rate > setting["max_rate"]:
                return [Finding(rule, "api", f"{rate:.1%} of {len(rows)} API requests in the "
                                f"last {setting['minutes']} min failed (limit "
                                f"{setting['max_rate']:.1%})", None,
                                details | {"errors": errors, "rate": rate})]
            return []
        answered = [row.latency_ms for row in rows if row.status == 200]
        p95 = float(np.percentile(answered, 95)) if answered else 0.0
        if p95 > setting["max_ms"]:
            return [Finding(rule, "api", f"API latency p95 is {p95:.0f} ms over the last "
                            f"{setting['minutes']} min (limit {setting['max_ms']:g} ms)",
                            None, details | {"p95_ms": p95})]
        return []

    return check


def _served_versions(backends: Backends) -> list[int]:
    """The champion and the candidate in shadow or canary, if any."""
    status = policy_status(backends, backends.traffic.get())
    if status.champion is None:
        return []
    return [status.champion] + ([status.policy.candidate] if status.active
                                and status.policy.candidate is not None else [])


def _reports(backends: Backends, versions: list[int], settings: dict
             ) -> dict[int, DriftReport]:
    """Each served version's report over its last N predictions; a version without
    enough traffic or a reference profile is left out (its episodes stay as they are)."""
    window = max(settings["drift"]["window"], settings["accuracy_drop"]["window"])
    reports = {}
    for version in versions:
        try:
            reports[version] = report_for_version(backends, version=version, window=window)
        except CoreError:
            continue
    return reports


def _check_decisions(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    """Decisions since the last pass (the first pass starts from the log's end)."""
    backends, now = state.backends, state.now
    store = backends.snapshots
    seen = store.cursor("audit.seen")
    entries = backends.audit_log.read_entries(backends.model)
    last = max((e.seq or 0 for e in entries), default=0)
    findings = []
    if seen is not None and enabled:
        for entry in entries:
            if (entry.seq or 0) > int(seen) and entry.action in DECISIONS \
                    and entry.outcome == "done":
                findings.append(Finding(
                    "decision_made", f"audit entry {entry.seq}",
                    f"{entry.actor} {past_tense(entry.action)} version {entry.version}: "
                    f"{entry.reason}", entry.version,
                    {"action": entry.action, "actor": entry.actor, "reason": entry.reason,
                     "audit_seq": entry.seq, "audit_hash": entry.hash}))
    if seen is None or int(seen) != last:
        with backends.database.write() as conn:
            store.set_cursor(conn, "audit.seen", str(last), now)
    return findings


def _suggest_retraining(state: _Pass, checked: Checked, enabled: bool) -> list[Finding]:
    """When the champion's drift episode has lasted ``after_minutes``, records a retraining
    job for a human to start or discard (never started here), once per episode."""
    backends, now = state.backends, state.now
    setting, open_episodes = state.settings["retraining_suggested"], state.open_episodes
    store = backends.alerts
    found = backends.registry.find_champion()
    champion = found.version if found is not None else None
    for episode in open_episodes:
        if episode.rule != "drift" or episode.version != champion:
            continue
        lasted = now - datetime.fromisoformat(episode.started_at)
        subject = f"drift episode {episode.id}"
        if lasted < timedelta(minutes=setting["after_minutes"]) or store.has_episode(
                "retraining_suggested", subject):
            continue
        busy = [job for job in backends.jobs.list(now) if job.kind == RETRAIN_JOB
                and job.status in ("suggested", "queued", "running")]
        if busy:
            continue  # a retraining is already waiting or under way
        because = (f"drift has been alerting on version {champion} for "
                   f"{lasted.total_seconds() / 3600:.1f} h (since {episode.started_at})")
        job = backends.jobs.suggest(RETRAIN_JOB, RetrainRequest().as_dict(), actor=MONITOR,
                                    now=now, because=because)
        return [Finding("retraining_suggested", subject,
                        f"{because}: retraining job {job.id} waits for a human to start or "
                        "discard it", champion, {"job": job.id, "drift_episode": episode.id})]
    return []


# Every rule's check, in the order a pass runs them.
_CHECKS: dict[str, Callable[[_Pass, Checked, bool], list[Finding]]] = {
    "drift": _check_drift,
    "accuracy_drop": _check_accuracy_drop,
    "error_rate": _check_traffic("error_rate"),
    "latency_p95": _check_traffic("latency_p95"),
    "candidate_registered": _check_candidates,
    "job_failed": _check_failed_jobs,
    "decision_made": _check_decisions,
    "audit_chain": _check_audit_chain,
    "audit_witness": _check_witness,
    "retraining_suggested": _suggest_retraining,
}
