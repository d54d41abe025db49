"""The monitor's alert rules: each one object with its name, kind, meaning, typed
settings and check, registered once in ``RULES`` (``core.app.alerts.evaluate_alerts``
runs them in a pass)."""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from core.app.backends import Backends
from core.app.monitor import report_for_version
from core.app.traffic import policy_status
from core.app.train import RETRAIN_JOB
from core.audit import Actor, stamp
from core.errors import CoreError, InvalidInput
from core.governance.decisions import DECISIONS, past_tense, verify_audit
from core.ml.params import RetrainRequest
from core.monitoring.alerts.records import Episode, Finding
from core.monitoring.report import DriftReport

LOGGER = logging.getLogger("core.monitor")
T = TypeVar("T")
# Who the monitor acts as in the audit log (it is a system process, like a worker).
MONITOR = Actor("monitor", "system")
JOB_EVENT_HORIZON = timedelta(days=1)  # failed jobs older than this never alert
CONDITION, EVENT = "condition", "event"
REMIND_MINUTES = 240  # 0: never remind


# --- settings -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    enabled: bool = True


@dataclass(frozen=True)
class ReminderSettings(Settings):
    reminder_minutes: int = REMIND_MINUTES


@dataclass(frozen=True)
class WindowSettings(Settings):
    window: int = 500
    reminder_minutes: int = REMIND_MINUTES


@dataclass(frozen=True)
class AccuracyDropSettings(Settings):
    window: int = 500
    max_drop: float = 0.05
    reminder_minutes: int = REMIND_MINUTES


@dataclass(frozen=True)
class ErrorRateSettings(Settings):
    minutes: int = 60
    max_rate: float = 0.05
    min_requests: int = 20
    reminder_minutes: int = REMIND_MINUTES


@dataclass(frozen=True)
class LatencySettings(Settings):
    minutes: int = 60
    max_ms: float = 250.0
    min_requests: int = 20
    reminder_minutes: int = REMIND_MINUTES


@dataclass(frozen=True)
class SuggestionSettings(Settings):
    after_minutes: int = 360


S = TypeVar("S", bound=Settings)


# --- what a pass gives every check ------------------------------------------------------------

@dataclass
class Context:
    """What every rule's check reads in one pass (each read once, when first needed)."""

    backends: Backends
    now: datetime
    settings: dict[str, Settings]
    open_episodes: list[Episode]

    @functools.cached_property
    def served(self) -> list[int]:
        """The champion and the candidate in shadow or canary, if any."""
        status = policy_status(self.backends, self.backends.traffic.get())
        if status.champion is None:
            return []
        return [status.champion] + ([status.policy.candidate] if status.active
                                    and status.policy.candidate is not None else [])

    @functools.cached_property
    def reports(self) -> dict[int, DriftReport]:
        """Each served version's report over its last N predictions (shared by the drift
        and accuracy_drop rules); a version without enough traffic or a reference profile
        is left out (its episodes stay as they are)."""
        drift, accuracy = self.settings["drift"], self.settings["accuracy_drop"]
        assert isinstance(drift, WindowSettings) and isinstance(accuracy, AccuracyDropSettings)
        window = max(drift.window, accuracy.window)
        reports = {}
        for version in self.served:
            try:
                reports[version] = report_for_version(self.backends, version=version,
                                                      window=window)
            except CoreError:
                continue
        return reports

    def has_episode(self, rule: str, subject: str) -> bool:
        return self.backends.alerts.episodes.exists(rule, subject)


@dataclass
class Found:
    """A check's result: its findings, and the subjects whose condition it evaluated (an
    open episode of a checked subject without a finding resolves)."""

    findings: list[Finding] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)


# --- the rules ----------------------------------------------------------------------------------

class Rule(Generic[S]):
    name: ClassVar[str]
    kind: ClassVar[str]  # CONDITION or EVENT
    meaning: ClassVar[str]
    settings_type: type[S]
    on_by_default: ClassVar[bool] = True

    def settings(self, overrides: dict) -> S:
        """Defaults, ``enabled``, then the model's overrides (unknown keys ignored)."""
        known = {f.name for f in fields(self.settings_type)}
        given = {k: v for k, v in overrides.items() if k in known}
        return self.settings_type(**({"enabled": self.on_by_default} | given))

    def parse(self, assignment: str) -> tuple[str, object]:
        """``KEY=VALUE``, VALUE typed like the default (``enabled``: true/false)."""
        key, sep, raw = assignment.partition("=")
        defaults = asdict(self.settings({}))
        if not sep or key not in defaults:
            raise InvalidInput(f"{assignment!r} is not a setting of rule {self.name!r}. To "
                               f"fix this, use KEY=VALUE with KEY one of: "
                               f"{', '.join(defaults)}.")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0", "on", "off"):
                    raise ValueError(raw)
                return key, raw.lower() in ("true", "1", "on")
            value: int | float = int(raw) if isinstance(default, int) else float(raw)
        except ValueError:
            raise InvalidInput(f"{key} of rule {self.name!r} must be a number like "
                               f"{default!r}, got {raw!r}. To fix this, pass e.g. "
                               f"{key}={default}.") from None
        if value < 0:
            raise InvalidInput(f"{key} of rule {self.name!r} cannot be negative. To fix "
                               f"this, pass e.g. {key}={default}.")
        return key, value

    def runs(self, settings: S) -> bool:
        """Whether a pass runs the check (a rule may run while off, to keep a cursor)."""
        return settings.enabled

    def check(self, context: Context, settings: S) -> Found:
        raise NotImplementedError


def _resolve_unserved(context: Context, rule: str, found: Found) -> None:
    """A version no longer served has nothing left to drift: its episodes resolve."""
    for episode in context.open_episodes:
        if episode.rule == rule and episode.version not in context.served:
            found.checked.add(episode.subject)


class Drift(Rule[WindowSettings]):
    name, kind, settings_type = "drift", CONDITION, WindowSettings
    meaning = ("a served version's recent traffic drifted from its training data (any "
               "drift statistic at its alert level)")

    def check(self, context: Context, settings: WindowSettings) -> Found:
        found = Found()
        for version, report in context.reports.items():
            subject = f"version {version}"
            found.checked.add(subject)
            if report.alert:
                found.findings.append(Finding(
                    self.name, subject, f"version {version}'s last {report.n} predictions "
                    "drifted: " + "; ".join(report.reasons[:3]), version,
                    {"reasons": report.reasons, "n": report.n,
                     "window": [report.window_start, report.window_end]}))
        _resolve_unserved(context, self.name, found)
        return found


class AccuracyDrop(Rule[AccuracyDropSettings]):
    name, kind, settings_type = "accuracy_drop", CONDITION, AccuracyDropSettings
    meaning = "estimated accuracy fell below the validation accuracy by more than max_drop"

    def check(self, context: Context, settings: AccuracyDropSettings) -> Found:
        found = Found()
        for version, report in context.reports.items():
            subject = f"version {version}"
            found.checked.add(subject)
            drop = report.reference_accuracy - report.estimated_accuracy
            if drop > settings.max_drop:
                found.findings.append(Finding(
                    self.name, subject, f"version {version}'s estimated accuracy is "
                    f"{report.estimated_accuracy:.1%}, {drop * 100:.1f} points below its "
                    f"validation accuracy ({report.reference_accuracy:.1%})", version,
                    {"estimated": report.estimated_accuracy, "n": report.n,
                     "reference": report.reference_accuracy}))
        _resolve_unserved(context, self.name, found)
        return found


class ErrorRate(Rule[ErrorRateSettings]):
    name, kind, settings_type = "error_rate", CONDITION, ErrorRateSettings
    meaning = ("the share of API requests answered with an error over the last `minutes` "
               "exceeds max_rate")

    def check(self, context: Context, settings: ErrorRateSettings) -> Found:
        rows = _api_requests(context, settings.minutes)
        if len(rows) < settings.min_requests:
            return Found()  # too few requests to judge: episodes stay as they are
        errors = sum(row.status != 200 for row in rows)
        rate = errors / len(rows)
        if rate <= settings.max_rate:
            return Found(checked={"api"})
        return Found([Finding(self.name, "api", f"{rate:.1%} of {len(rows)} API requests in "
                              f"the last {settings.minutes} min failed (limit "
                              f"{settings.max_rate:.1%})", None,
                              {"requests": len(rows), "minutes": settings.minutes,
                               "errors": errors, "rate": rate})], {"api"})


class LatencyP95(Rule[LatencySettings]):
    name, kind, settings_type = "latency_p95", CONDITION, LatencySettings
    meaning = ("the 95th percentile of API latency over the last `minutes` exceeds max_ms")

    def check(self, context: Context, settings: LatencySettings) -> Found:
        rows = _api_requests(context, settings.minutes)
        if len(rows) < settings.min_requests:
            return Found()  # too few requests to judge: episodes stay as they are
        answered = [row.latency_ms for row in rows if row.status == 200]
        p95 = float(np.percentile(answered, 95)) if answered else 0.0
        if p95 <= settings.max_ms:
            return Found(checked={"api"})
        return Found([Finding(self.name, "api", f"API latency p95 is {p95:.0f} ms over the "
                              f"last {settings.minutes} min (limit {settings.max_ms:g} ms)",
                              None, {"requests": len(rows), "minutes": settings.minutes,
                                     "p95_ms": p95})], {"api"})


def _api_requests(context: Context, minutes: int) -> list:
    backends = context.backends
    return backends.prediction_log.api_requests(
        backends.model, stamp(context.now - timedelta(minutes=minutes)))


class JobFailed(Rule[Settings]):
    name, kind, settings_type = "job_failed", EVENT, Settings
    meaning = "a training or retraining job failed"

    def check(self, context: Context, settings: Settings) -> Found:
        found = Found()
        for job in context.backends.jobs.list(context.now):
            subject = f"job {job.id}"
            if (job.status == "failed" and job.finished_at
                    and datetime.fromisoformat(job.finished_at)
                    >= context.now - JOB_EVENT_HORIZON
                    and not context.has_episode(self.name, subject)):
                found.findings.append(Finding(
                    self.name, subject, f"{job.kind} job {job.id} (by {job.submitted_by}) "
                    f"failed: {job.error}", job.result_version, {"error": job.error}))
        return found


class CandidateRegistered(Rule[ReminderSettings]):
    name, kind, settings_type = "candidate_registered", CONDITION, ReminderSettings
    meaning = ("a candidate version waits for a human decision (resolves when promoted or "
               "rejected)")

    def check(self, context: Context, settings: ReminderSettings) -> Found:
        found = Found()
        for registered in context.backends.registry.list_versions():
            subject = f"version {registered.version}"
            found.checked.add(subject)
            if registered.status == "candidate":
                found.findings.append(Finding(
                    self.name, subject, f"candidate version {registered.version} (by "
                    f"{registered.created_by}) waits for review", registered.version,
                    {"created_at": registered.created_at,
                     "created_by": registered.created_by}))
        found.checked |= {e.subject for e in context.open_episodes if e.rule == self.name}
        return found


class DecisionMade(Rule[Settings]):
    name, kind, settings_type = "decision_made", EVENT, Settings
    meaning = "a version was promoted, rejected or rolled back"

    def runs(self, settings: Settings) -> bool:
        return True  # even when off: it moves the cursor of audit entries seen

    def check(self, context: Context, settings: Settings) -> Found:
        """Decisions since the last pass (the first pass starts from the log's end)."""
        backends = context.backends
        store = backends.snapshots
        seen = store.cursor("audit.seen")
        entries = backends.audit_log.read_entries(backends.model)
        last = max((e.seq or 0 for e in entries), default=0)
        found = Found()
        if seen is not None and settings.enabled:
            for entry in entries:
                if (entry.seq or 0) > int(seen) and entry.action in DECISIONS \
                        and entry.outcome == "done":
                    found.findings.append(Finding(
                        self.name, f"audit entry {entry.seq}",
                        f"{entry.actor} {past_tense(entry.action)} version {entry.version}: "
                        f"{entry.reason}", entry.version,
                        {"action": entry.action, "actor": entry.actor, "reason": entry.reason,
                         "audit_seq": entry.seq, "audit_hash": entry.hash}))
        if seen is None or int(seen) != last:
            with backends.database.write() as conn:
                store.set_cursor(conn, "audit.seen", str(last), context.now)
        return found


class AuditChain(Rule[ReminderSettings]):
    name, kind, settings_type = "audit_chain", CONDITION, ReminderSettings
    meaning = ("the audit log fails verification (an entry edited, deleted or reordered, or "
               "a status changed outside a decision)")

    def check(self, context: Context, settings: ReminderSettings) -> Found:
        verification = verify_audit(context.backends.audit_log, context.backends.registry)
        if verification.ok:
            return Found(checked={"audit log"})
        return Found([Finding(self.name, "audit log", "the audit log fails verification: "
                              f"{verification.problem}", None, verification.as_dict())],
                     {"audit log"})


class AuditWitness(Rule[Settings]):
    """Off by default: its message goes to every channel, so an admin chooses to send it."""

    name, kind, settings_type = "audit_witness", EVENT, Settings
    meaning = ("once a day, the audit log's head (its newest entry and hash) goes to every "
               "channel: a copy outside the database to check the log against "
               "('python -m core audit verify --anchor SEQ:HASH')")
    on_by_default = False

    def check(self, context: Context, settings: Settings) -> Found:
        subject = f"audit head on {context.now:%Y-%m-%d}"
        head = context.backends.audit_log.head()
        if head is None or context.has_episode(self.name, subject):
            return Found()
        seq, digest = head
        return Found([Finding(self.name, subject, f"the audit log's head is entry {seq}, "
                              f"hash {digest}: keep this message; 'python -m core audit "
                              f"verify --anchor {seq}:{digest}' checks the log against it",
                              None, {"seq": seq, "hash": digest})])


class RetrainingSuggested(Rule[SuggestionSettings]):
    name, kind, settings_type = "retraining_suggested", EVENT, SuggestionSettings
    meaning = ("drift has been alerting for `after_minutes`: a retraining job was queued for "
               "a human to start or discard (off by default)")
    on_by_default = False

    def check(self, context: Context, settings: SuggestionSettings) -> Found:
        """When the champion's drift episode has lasted ``after_minutes``, records a
        retraining job for a human to start or discard (never started here), once per
        episode."""
        backends, now = context.backends, context.now
        found = backends.registry.find_champion()
        if found is None or not found.metadata.has_layers:
            return Found()  # nothing to fine-tune (a SavedModel has no layers)
        champion = found.version
        for episode in context.open_episodes:
            if episode.rule != "drift" or episode.version != champion:
                continue
            lasted = now - datetime.fromisoformat(episode.started_at)
            subject = f"drift episode {episode.id}"
            if lasted < timedelta(minutes=settings.after_minutes) or context.has_episode(
                    self.name, subject):
                continue
            busy = [job for job in backends.jobs.list(now) if job.kind == RETRAIN_JOB
                    and job.status in ("suggested", "queued", "running")]
            if busy:
                continue  # a retraining is already waiting or under way
            because = (f"drift has been alerting on version {champion} for "
                       f"{lasted.total_seconds() / 3600:.1f} h (since {episode.started_at})")
            job = backends.jobs.suggest(RETRAIN_JOB, RetrainRequest().as_dict(),
                                        actor=MONITOR, now=now, because=because)
            return Found([Finding(self.name, subject, f"{because}: retraining job {job.id} "
                                  "waits for a human to start or discard it", champion,
                                  {"job": job.id, "drift_episode": episode.id})])
        return Found()


# Every rule, in the order a pass runs them and listings show them.
RULES: dict[str, Rule[Any]] = {rule.name: rule for rule in (
    Drift(), AccuracyDrop(), ErrorRate(), LatencyP95(), JobFailed(), CandidateRegistered(),
    DecisionMade(), AuditChain(), AuditWitness(), RetrainingSuggested())}


def rule_named(name: str) -> Rule[Any]:
    if name not in RULES:
        raise InvalidInput(f"unknown alert rule {name!r}. To fix this, use one of: "
                           f"{', '.join(RULES)}.")
    return RULES[name]


def effective_settings(backends: Backends) -> dict[str, Settings]:
    """Every rule's settings for this model: its defaults and the model's overrides."""
    overrides = backends.alerts.rules.overrides()
    return {name: rule.settings(overrides.get(name, {})) for name, rule in RULES.items()}
