"""Use cases of the monitor and of alerts: one monitor pass (snapshots, rules, the
retraining suggestion, deliveries), channels and rules (admins), episodes (operators
acknowledge or silence them)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

import numpy as np

from core.app.backends import Backends
from core.app.monitor import report_for_version
from core.app.retention import apply_retention
from core.app.snapshots import compute_snapshots
from core.app.traffic import policy_status
from core.app.train import RETRAIN_JOB
from core.audit import Actor, stamp
from core.errors import CoreError, InvalidInput
from core.governance.access import check_reason
from core.governance.decisions import DECISIONS, past_tense, verify_audit
from core.ml.params import RetrainRequest
from core.monitoring import channels as senders
from core.monitoring.alerts import (
    CONDITION,
    RULES,
    Attempt,
    Changes,
    Channel,
    Delivery,
    Episode,
    Finding,
    check_rule,
    new_channel,
    parse_setting,
    rule_settings,
)
from core.monitoring.report import DriftReport
from core.monitoring.snapshots import Snapshot

LOGGER = logging.getLogger("core.monitor")
T = TypeVar("T")
# Who the monitor acts as in the audit log (it is a system process, like a worker).
MONITOR = Actor("monitor", "system")
MAX_SILENCE = timedelta(days=30)
JOB_EVENT_HORIZON = timedelta(days=1)  # failed jobs older than this never alert

Send = Callable[[Channel, dict], tuple[bool, str, "str | None"]]


def default_sender(backends: Backends) -> Send:
    config = backends.config
    return functools.partial(senders.send, smtp_password=config.smtp_password,
                             allow_private=config.alert_allow_private_targets)


@dataclass(frozen=True)
class PassResult:
    """What one monitor pass did, and what failed in it (item -> error)."""

    snapshots: int
    changes: Changes
    sent: int
    failed: int
    deleted: int = 0  # prediction-log rows past PREDICTION_LOG_RETENTION_DAYS
    problems: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return (f"snapshots +{self.snapshots}; alerts fired {len(self.changes.fired)}, "
                f"resolved {len(self.changes.resolved)}, reminded {len(self.changes.reminded)}; "
                f"messages sent {self.sent}, failed {self.failed}"
                + (f"; old log rows deleted {self.deleted}" if self.deleted else "")
                + (f"; FAILED: {', '.join(self.problems)}" if self.problems else ""))


def monitor_pass(backends: Backends, now: datetime, send: Send | None = None,
                 on_period: Callable[[str, str, int], None] | None = None) -> PassResult:
    """One pass of ``python -m core monitor run``: closed periods' snapshots, the alert
    rules on the current window, the retraining suggestion, due messages, then the
    log's retention (rows already summarized).

    Nothing one item does stops the others: a period kind, a rule, a message or the
    retention that fails is recorded (``PassResult.problems``, and the store's monitor
    problems the Alerts page shows) and the pass goes on. Only a database that cannot be
    written at all ends the pass with its error.
    """
    problems = Problems()
    snapshots: list[Snapshot] = problems.run("snapshots", lambda: compute_snapshots(
        backends, now, on_period, on_error=problems.record), [])
    changes = problems.run("alert rules", lambda: evaluate_alerts(backends, now, problems),
                           Changes([], [], [], 0))
    sent: list[Delivery] = problems.run("deliveries", lambda: deliver_due(
        backends, now, send or default_sender(backends)), [])
    deleted = problems.run("retention", lambda: apply_retention(backends, now), 0)
    backends.alerts.set_problems(problems.items, now)
    return PassResult(len(snapshots), changes, sum(d.status == "delivered" for d in sent),
                      sum(d.status != "delivered" for d in sent), deleted, problems.items)


def database_reachable(backends: Backends) -> bool:
    """Whether the registry's database answers (a pass that failed as a whole for another
    reason is retried; the monitor stops only when this is False)."""
    try:
        backends.database.read("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure to answer means unreachable here
        return False


# --- rules -------------------------------------------------------------------------------

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


# --- deliveries ----------------------------------------------------------------------------

def deliver_due(backends: Backends, now: datetime, send: Send,
                only: int | None = None) -> list[Delivery]:
    """Sends every message due now (or just delivery ``only``); records each attempt."""
    store = backends.alerts
    channels = {c.name: c for c in store.channels()}
    done = []
    for delivery in store.claim_due(now, only):
        channel = channels.get(delivery.channel)
        outcome: tuple[bool, str, str | None]
        if channel is None:
            outcome = (False, "no channel", f"the channel {delivery.channel!r} was removed")
        elif channel.problem is not None:
            outcome = (False, "unreadable", channel.problem)
        else:
            try:
                outcome = send(channel, delivery.payload)
            except Exception as error:  # noqa: BLE001 - one message never stops the others
                LOGGER.exception("sending delivery %s failed", delivery.id)
                outcome = (False, "error", f"{type(error).__name__}: {error}"[:1000])
        done.append(store.record_attempt(delivery, now, *outcome))
    return done


# --- channels and rules (admins) -----------------------------------------------------------

def add_alert_channel(backends: Backends, *, actor: str, name: str, now: datetime,
                      webhook: str | None = None, secret: str | None = None,
                      slack: str | None = None, email: str | None = None,
                      smtp: str | None = None, smtp_user: str | None = None) -> Channel:
    """Adds a channel: exactly one of a signed webhook, a Slack URL or an e-mail address."""
    acting = backends.access.authorize(actor, "manage_alerts", now,
                                       target=f"alert channel {name}")
    from core.governance.users import validate_user_name

    validate_user_name(name)
    given = [kind for kind, value in (("webhook", webhook), ("slack", slack),
                                      ("email", email)) if value]
    if len(given) != 1:
        raise InvalidInput("a channel is one of --webhook URL, --slack URL or --email "
                           "ADDRESS. To fix this, pass exactly one of them.")
    kind = given[0]
    allow_private = backends.config.alert_allow_private_targets
    if kind == "webhook":
        target = senders.check_url(webhook or "", allow_private)
        if not secret:
            raise InvalidInput("a webhook channel signs its messages with a secret. To fix "
                               "this, pass --secret SECRET (the receiver checks X-Signature "
                               "with it).")
    elif kind == "slack":
        target = senders.check_url(slack or "", allow_private)
    else:
        target = senders.check_address(email or "")
        if not smtp:
            raise InvalidInput("an e-mail channel needs its SMTP server. To fix this, pass "
                               "--smtp HOST:PORT.")
        senders.check_smtp(smtp, allow_private)
    if kind != "webhook" and secret:
        raise InvalidInput("--secret signs webhook messages only. To fix this, drop it.")
    channel = new_channel(name, kind, target, secret if kind == "webhook" else None,
                          smtp if kind == "email" else None,
                          smtp_user if kind == "email" else None, stamp(now), acting.name)
    return backends.alerts.add_channel(channel, actor=acting)


def remove_alert_channel(backends: Backends, *, actor: str, name: str, now: datetime) -> None:
    acting = backends.access.authorize(actor, "manage_alerts", now,
                                       target=f"alert channel {name}")
    backends.alerts.remove_channel(name, actor=acting, now=now)


def list_alert_channels(backends: Backends, *, actor: str, now: datetime) -> list[Channel]:
    backends.access.authorize(actor, "view", now, target="alert channels")
    return backends.alerts.channels()


def send_test_alert(backends: Backends, *, actor: str, name: str, now: datetime,
                       send: Send | None = None) -> tuple[Delivery, list[Attempt]]:
    """Sends a test message to one channel now (one attempt; retried like any message)."""
    backends.access.authorize(actor, "manage_alerts", now, target=f"alert channel {name}")
    delivery = backends.alerts.queue_test(name, now)
    deliver_due(backends, now, send or default_sender(backends), only=delivery.id)
    delivery = backends.alerts.delivery(delivery.id)
    return delivery, backends.alerts.attempts([delivery.id])


def alert_rules(backends: Backends, *, actor: str, now: datetime) -> dict[str, dict]:
    """Every rule with its effective settings, kind and meaning."""
    backends.access.authorize(actor, "view", now, target="alert rules")
    return {name: {"kind": rule.kind, "meaning": rule.meaning,
                   "settings": backends.alerts.settings(name)}
            for name, rule in RULES.items()}


def set_alert_rule(backends: Backends, *, actor: str, rule: str, assignments: list[str],
                   reason: str, now: datetime) -> dict:
    """Overrides settings of a rule for this model, e.g. ``["max_rate=0.1"]`` (admins)."""
    acting = backends.access.authorize(actor, "manage_alerts", now,
                                       target=f"alert rule {rule}")
    check_rule(rule)
    if not assignments:
        raise InvalidInput("nothing to set. To fix this, pass KEY=VALUE, e.g. enabled=false.")
    changes = dict(parse_setting(rule, a) for a in assignments)
    return backends.alerts.set_rule(rule, changes, actor=acting, reason=check_reason(reason),
                                    now=now)


# --- episodes ------------------------------------------------------------------------------

def list_alert_episodes(backends: Backends, *, actor: str, now: datetime,
                        open_only: bool = False) -> list[Episode]:
    backends.access.authorize(actor, "view", now, target="alerts")
    return backends.alerts.episodes(open_only=open_only)


def acknowledge_alert(backends: Backends, episode: int, *, actor: str, reason: str,
                      now: datetime, silence_for: timedelta | None = None) -> Episode:
    """Acknowledges an open episode (no more reminders; its resolution is still sent), or
    silences it for a time (nothing sent until then). Operators and up; audited."""
    acting = backends.access.authorize(actor, "alerts", now, target=f"alert episode {episode}")
    if silence_for is not None and not timedelta(0) < silence_for <= MAX_SILENCE:
        raise InvalidInput(f"a silence lasts between a minute and {MAX_SILENCE.days} days. "
                           "To fix this, pass e.g. --for 2h.")
    return backends.alerts.acknowledge(episode, actor=acting, reason=check_reason(reason),
                                       now=now, silence_for=silence_for)


def alert_deliveries(backends: Backends, *, actor: str, now: datetime, limit: int = 100
                     ) -> list[tuple[Delivery, list[Attempt]]]:
    """Recent messages, newest first, each with its attempts (time, status, error).

    An attempt's error names hosts, addresses and servers' answers on the monitor's
    network: only those who manage channels see it; others see what kind of failure it
    was (``public_error``).
    """
    backends.access.authorize(actor, "view", now, target="alerts")
    deliveries = backends.alerts.deliveries(limit)
    attempts = backends.alerts.attempts([d.id for d in deliveries])
    if not backends.access.may(actor, "manage_alerts"):
        attempts = [replace(attempt, error=public_error(attempt)) for attempt in attempts]
    return [(d, [a for a in attempts if a.delivery == d.id]) for d in deliveries]


_PUBLIC_ERRORS = {
    "unreachable": "could not reach the receiver",
    "timeout": "the receiver did not answer in time",
    "refused": "not sent: the channel's address or server is not allowed",
    "unreadable": "not sent: the channel's stored address cannot be read",
    "no channel": "the channel was removed",
    "error": "the sender failed",
}


def public_error(attempt: Attempt) -> str | None:
    """What anyone may read of a failed attempt: its kind, no host, address or answer."""
    if attempt.ok:
        return None
    if attempt.status.isdigit():
        return f"the receiver answered {attempt.status}"
    return _PUBLIC_ERRORS.get(attempt.status, "not delivered") + " (details: admins)"


def monitor_problems(backends: Backends, *, actor: str, now: datetime
                     ) -> list[tuple[str, str, str]]:
    """(item, at, error) of what failed in the monitor's last pass (operators and up:
    errors name hosts and servers)."""
    backends.access.authorize(actor, "alerts", now, target="monitor problems")
    return backends.alerts.problems()


def parse_duration(value: str) -> timedelta:
    """``30m``, ``2h``, ``1d`` -> a timedelta."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise InvalidInput(f"{value!r} is not a duration. To fix this, pass e.g. 30m, 2h or "
                           "1d.")
    return timedelta(**{units[unit]: int(number)})
