"""Use cases of the monitor and of alerts: one monitor pass (snapshots, the rules of
``core.app.monitor_rules``, deliveries, retention), channels and rules (admins), episodes
(operators acknowledge or silence them)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from core.app import tracing
from core.app.backends import Backends
from core.app.drift_document import build_drift_document
from core.app.monitor_rules import EVENT, RULES, Context, effective_settings, rule_named
from core.app.retention import apply_retention
from core.app.snapshots import compute_snapshots, mark_pass
from core.audit import stamp
from core.errors import CoreError, InvalidInput
from core.governance.access import check_reason
from core.monitoring import channels as senders
from core.monitoring.alerts.records import (
    Attempt,
    Changes,
    Channel,
    Delivery,
    Episode,
    Finding,
    new_channel,
)
from core.monitoring.html_report import render_html
from core.monitoring.snapshots import Snapshot

LOGGER = logging.getLogger("core.monitor")
T = TypeVar("T")
MAX_SILENCE = timedelta(days=30)

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
    with tracing.span("monitor pass", {"vision.model": backends.model}):
        snapshots: list[Snapshot] = problems.run("snapshots", lambda: compute_snapshots(
            backends, now, on_period, on_error=problems.record), [])
        changes = problems.run("alert rules", lambda: evaluate_alerts(backends, now,
                                                                      problems),
                               Changes([], [], [], 0))
        sent: list[Delivery] = problems.run("deliveries", lambda: deliver_due(
            backends, now, send or default_sender(backends)), [])
        deleted = problems.run("retention", lambda: apply_retention(backends, now), 0)
        backends.alerts.problems.replace(problems.items, now)
        mark_pass(backends, now)
        result = PassResult(len(snapshots), changes,
                            sum(d.status == "delivered" for d in sent),
                            sum(d.status != "delivered" for d in sent), deleted, problems.items)
        tracing.set_attributes({"vision.snapshots": result.snapshots,
                                "vision.alerts_fired": len(changes.fired),
                                "vision.messages_sent": result.sent,
                                "vision.problems": sorted(problems.items)})
    return result


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


def evaluate_alerts(backends: Backends, now: datetime,
                    problems: Problems | None = None) -> Changes:
    """Checks every enabled rule now and records what changed (episodes, messages).

    Each rule is checked on its own: one that fails is recorded in ``problems`` and its
    episodes stay as they are, while the others go on.
    """
    problems = problems or Problems(strict=True)
    settings = effective_settings(backends)
    context = Context(backends, now, settings, backends.alerts.episodes.recent(open_only=True))
    findings: list[Finding] = []
    checked: set[tuple[str, str]] = set()
    for name, rule in RULES.items():
        if not rule.runs(settings[name]):
            continue
        found = problems.run(f"rule {name}",
                             functools.partial(rule.check, context, settings[name]), None)
        if found is not None:
            findings += found.findings
            checked |= {(name, subject) for subject in found.checked}
    reminders = {name: getattr(settings[name], "reminder_minutes", 0) for name in RULES}
    events = frozenset(name for name, rule in RULES.items() if rule.kind == EVENT)
    return backends.alerts.episodes.record(findings, checked, now, reminders=reminders,
                                           events=events)


def database_reachable(backends: Backends) -> bool:
    """Whether the registry's database answers (a pass that failed as a whole for another
    reason is retried; the monitor stops only when this is False)."""
    try:
        backends.database.read("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure to answer means unreachable here
        return False


# --- deliveries ----------------------------------------------------------------------------

def deliver_due(backends: Backends, now: datetime, send: Send,
                only: int | None = None) -> list[Delivery]:
    """Sends every message due now (or just delivery ``only``); records each attempt."""
    outbox = backends.alerts.outbox
    channels = {c.name: c for c in backends.alerts.channels.all()}
    done = []
    for delivery in outbox.claim_due(now, only):
        channel = channels.get(delivery.channel)
        outcome: tuple[bool, str, str | None]
        if channel is None:
            outcome = (False, "no channel", f"the channel {delivery.channel!r} was removed")
        elif channel.problem is not None:
            outcome = (False, "unreadable", channel.problem)
        else:
            try:
                outcome = send(channel, with_attachments(backends, channel, delivery.payload,
                                                         now))
            except Exception as error:  # noqa: BLE001 - one message never stops the others
                LOGGER.exception("sending delivery %s failed", delivery.id)
                outcome = (False, "error", f"{type(error).__name__}: {error}"[:1000])
        done.append(outbox.record_attempt(delivery, now, *outcome))
    return done


def with_attachments(backends: Backends, channel: Channel, payload: dict, now: datetime
                     ) -> dict:
    """An e-mail of a firing drift alert carries the drift report (HTML), drawn when it
    is sent (the outbox keeps the message, not a copy of the images); a report that cannot
    be drawn leaves the e-mail as it was."""
    if channel.kind != "email" or payload.get("rule") != "drift" or payload.get(
            "state") != "firing":
        return payload
    try:
        html = render_html(build_drift_document(backends, now=now, version=payload.get(
            "version")))
    except Exception as error:  # noqa: BLE001 - the alert goes out without its report
        LOGGER.warning("monitor: no drift report for the alert's e-mail: %s", error,
                       exc_info=None if isinstance(error, CoreError) else error)
        return payload
    name = f"drift-{payload['model']}-v{payload.get('version')}-{now:%Y%m%dT%H%M}.html"
    return payload | {"attachments": [(name, html)]}


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
    return backends.alerts.channels.add(channel, actor=acting)


def remove_alert_channel(backends: Backends, *, actor: str, name: str, now: datetime) -> None:
    acting = backends.access.authorize(actor, "manage_alerts", now,
                                       target=f"alert channel {name}")
    backends.alerts.channels.remove(name, actor=acting, now=now)


def list_alert_channels(backends: Backends, *, actor: str, now: datetime) -> list[Channel]:
    backends.access.authorize(actor, "view", now, target="alert channels")
    return backends.alerts.channels.all()


def send_test_alert(backends: Backends, *, actor: str, name: str, now: datetime,
                       send: Send | None = None) -> tuple[Delivery, list[Attempt]]:
    """Sends a test message to one channel now (one attempt; retried like any message)."""
    backends.access.authorize(actor, "manage_alerts", now, target=f"alert channel {name}")
    backends.alerts.channels.get(name)  # it must exist
    outbox = backends.alerts.outbox
    delivery = outbox.queue_test(name, now)
    deliver_due(backends, now, send or default_sender(backends), only=delivery.id)
    delivery = outbox.delivery(delivery.id)
    return delivery, outbox.attempts([delivery.id])


def alert_rules(backends: Backends, *, actor: str, now: datetime) -> dict[str, dict]:
    """Every rule with its effective settings, kind and meaning."""
    backends.access.authorize(actor, "view", now, target="alert rules")
    settings = effective_settings(backends)
    return {name: {"kind": rule.kind, "meaning": rule.meaning,
                   "settings": asdict(settings[name])}
            for name, rule in RULES.items()}


def set_alert_rule(backends: Backends, *, actor: str, rule: str, assignments: list[str],
                   reason: str, now: datetime) -> dict:
    """Overrides settings of a rule for this model, e.g. ``["max_rate=0.1"]`` (admins)."""
    acting = backends.access.authorize(actor, "manage_alerts", now,
                                       target=f"alert rule {rule}")
    named = rule_named(rule)
    if not assignments:
        raise InvalidInput("nothing to set. To fix this, pass KEY=VALUE, e.g. enabled=false.")
    changes = dict(named.parse(a) for a in assignments)

    def effective(overrides: dict) -> dict:
        return asdict(named.settings(overrides))

    overrides = backends.alerts.rules.set(rule, changes, effective=effective, actor=acting,
                                          reason=check_reason(reason), now=now)
    return effective(overrides)


# --- episodes ------------------------------------------------------------------------------

def list_alert_episodes(backends: Backends, *, actor: str, now: datetime,
                        open_only: bool = False) -> list[Episode]:
    backends.access.authorize(actor, "view", now, target="alerts")
    return backends.alerts.episodes.recent(open_only=open_only)


def acknowledge_alert(backends: Backends, episode: int, *, actor: str, reason: str,
                      now: datetime, silence_for: timedelta | None = None) -> Episode:
    """Acknowledges an open episode (no more reminders; its resolution is still sent), or
    silences it for a time (nothing sent until then). Operators and up; audited."""
    acting = backends.access.authorize(actor, "alerts", now, target=f"alert episode {episode}")
    if silence_for is not None and not timedelta(0) < silence_for <= MAX_SILENCE:
        raise InvalidInput(f"a silence lasts between a minute and {MAX_SILENCE.days} days. "
                           "To fix this, pass e.g. --for 2h.")
    return backends.alerts.episodes.acknowledge(episode, actor=acting,
                                                reason=check_reason(reason), now=now,
                                                silence_for=silence_for)


def alert_deliveries(backends: Backends, *, actor: str, now: datetime, limit: int = 100
                     ) -> list[tuple[Delivery, list[Attempt]]]:
    """Recent messages, newest first, each with its attempts (time, status, error).

    An attempt's error names hosts, addresses and servers' answers on the monitor's
    network: only those who manage channels see it; others see what kind of failure it
    was (``public_error``).
    """
    backends.access.authorize(actor, "view", now, target="alerts")
    deliveries = backends.alerts.outbox.deliveries(limit)
    attempts = backends.alerts.outbox.attempts([d.id for d in deliveries])
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
    return backends.alerts.problems.last()


def parse_duration(value: str) -> timedelta:
    """``30m``, ``2h``, ``1d`` -> a timedelta."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise InvalidInput(f"{value!r} is not a duration. To fix this, pass e.g. 30m, 2h or "
                           "1d.")
    return timedelta(**{units[unit]: int(number)})
