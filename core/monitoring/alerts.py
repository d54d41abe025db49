"""Alerts: rules, episodes and the outbox of messages to people.

A rule's condition is checked on every monitor pass. Episodes, not storms: when a
condition starts, an episode opens and one ``firing`` message goes to every
channel; while it holds, nothing more is sent unless the rule's reminder interval
passes (and nobody acknowledged it); when it stops, one ``resolved`` message. Event
rules (a job failed, a decision made) open an episode that is closed at once: one
message each. An operator may acknowledge an episode (no more reminders) or silence
it until a time (no messages at all); both are audited.

Messages go through an outbox (``alert_deliveries``): written in the same
transaction as the episode change, then sent by the monitor and retried with
exponential backoff while the receiver is down, so none is lost to a crash or an
outage. Every attempt is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from core.audit import Actor, AuditEntry, append, stamp
from core.errors import InvalidInput
from core.storage import schema
from core.storage.database import Database
from core.storage.secrets import PREFIX as SEALED_PREFIX
from core.storage.secrets import SecretBox, fingerprint, redact

CONDITION, EVENT = "condition", "event"


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # condition / event
    meaning: str
    defaults: dict


_REMIND = {"reminder_minutes": 240}  # 0: never remind
RULES = {rule.name: rule for rule in (
    Rule("drift", CONDITION, "a served version's recent traffic drifted from its training "
         "data (any drift statistic at its alert level)", {"window": 500} | _REMIND),
    Rule("accuracy_drop", CONDITION, "estimated accuracy fell below the validation accuracy "
         "by more than max_drop", {"window": 500, "max_drop": 0.05} | _REMIND),
    Rule("error_rate", CONDITION, "the share of API requests answered with an error over the "
         "last `minutes` exceeds max_rate",
         {"minutes": 60, "max_rate": 0.05, "min_requests": 20} | _REMIND),
    Rule("latency_p95", CONDITION, "the 95th percentile of API latency over the last "
         "`minutes` exceeds max_ms", {"minutes": 60, "max_ms": 250.0, "min_requests": 20}
         | _REMIND),
    Rule("job_failed", EVENT, "a training or retraining job failed", {}),
    Rule("candidate_registered", CONDITION, "a candidate version waits for a human decision "
         "(resolves when promoted or rejected)", dict(_REMIND)),
    Rule("decision_made", EVENT, "a version was promoted, rejected or rolled back", {}),
    Rule("audit_chain", CONDITION, "the audit log fails verification (an entry edited, "
         "deleted or reordered, or a status changed outside a decision)", dict(_REMIND)),
    Rule("audit_witness", EVENT, "once a day, the audit log's head (its newest entry and "
         "hash) goes to every channel: a copy outside the database to check the log "
         "against ('python -m core audit verify --anchor SEQ:HASH')", {}),
    Rule("retraining_suggested", EVENT, "drift has been alerting for `after_minutes`: a "
         "retraining job was queued for a human to start or discard (off by default)",
         {"after_minutes": 360}),
)}
# Optional, turned on per model: the retraining suggestion, and the daily witness (its
# message goes to every channel, so an admin chooses to send it).
DEFAULT_OFF = frozenset({"retraining_suggested", "audit_witness"})
CHANNEL_KINDS = ("webhook", "slack", "email")
# Retries: 10 s, 20 s, 40 s ... at most 30 min apart; given up after a day.
FIRST_RETRY = timedelta(seconds=10)
MAX_RETRY = timedelta(minutes=30)
GIVE_UP_AFTER = timedelta(days=1)
# A claimed delivery is not sent by another monitor for this long (one sender at a time).
CLAIM = timedelta(seconds=60)


def check_rule(name: str) -> Rule:
    if name not in RULES:
        raise InvalidInput(f"unknown alert rule {name!r}. To fix this, use one of: "
                           f"{', '.join(RULES)}.")
    return RULES[name]


def rule_settings(name: str, overrides: dict) -> dict:
    """A rule's effective settings: defaults, ``enabled``, then the model's overrides."""
    rule = check_rule(name)
    return {"enabled": name not in DEFAULT_OFF} | rule.defaults | overrides


def parse_setting(rule: str, assignment: str) -> tuple[str, object]:
    """``KEY=VALUE`` for a rule; VALUE typed like the default (``enabled``: true/false)."""
    key, sep, raw = assignment.partition("=")
    known = rule_settings(rule, {})
    if not sep or key not in known:
        raise InvalidInput(f"{assignment!r} is not a setting of rule {rule!r}. To fix this, "
                           f"use KEY=VALUE with KEY one of: {', '.join(known)}.")
    default = known[key]
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "on", "off"):
                raise ValueError(raw)
            return key, raw.lower() in ("true", "1", "on")
        if isinstance(default, int):
            value: object = int(raw)
        else:
            value = float(raw)
    except ValueError:
        raise InvalidInput(f"{key} of rule {rule!r} must be a number like {default!r}, got "
                           f"{raw!r}. To fix this, pass e.g. {key}={default}.") from None
    if value < 0:  # type: ignore[operator]
        raise InvalidInput(f"{key} of rule {rule!r} cannot be negative. To fix this, pass "
                           f"e.g. {key}={default}.")
    return key, value


@dataclass(frozen=True)
class Finding:
    """A rule's condition found true for a subject in this pass."""

    rule: str
    subject: str  # "version 3", "api", "job 7", "audit log"
    summary: str
    version: int | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Episode:
    id: int
    rule: str
    subject: str
    version: int | None
    summary: str
    details: dict
    started_at: str
    resolved_at: str | None
    notified_at: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    silenced_until: str | None

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def silenced(self, now: datetime) -> bool:
        return self.silenced_until is not None and self.silenced_until > stamp(now)

    def as_dict(self) -> dict:
        return {**self.__dict__, "open": self.open}


@dataclass(frozen=True)
class Channel:
    """Where messages go. ``target`` and ``secret`` are what sending needs: never shown,
    listed or logged (``as_dict`` has the redacted target and its fingerprint)."""

    name: str
    kind: str
    target: str = field(repr=False)  # URL or e-mail address; "" if it cannot be opened
    secret: str | None = field(repr=False)  # the webhook's signing key
    smtp: str | None
    smtp_user: str | None
    created_at: str
    created_by: str
    shown: str = ""  # the target, redacted
    fingerprint: str = ""
    encrypted: bool = False  # stored sealed with SECRETS_KEY
    problem: str | None = None  # why the stored target cannot be used here

    def as_dict(self) -> dict:
        """What listings, pages and the audit log show: no secret, the target redacted."""
        return {"name": self.name, "kind": self.kind, "target": self.shown,
                "target_fingerprint": self.fingerprint, "encrypted": self.encrypted,
                "signed": self.secret is not None, "smtp": self.smtp,
                "smtp_user": self.smtp_user, "created_at": self.created_at,
                "created_by": self.created_by}


def new_channel(name: str, kind: str, target: str, secret: str | None, smtp: str | None,
                smtp_user: str | None, created_at: str, created_by: str) -> Channel:
    """A channel as an admin gives it (its target shown redacted, with a fingerprint)."""
    return Channel(name, kind, target, secret, smtp, smtp_user, created_at, created_by,
                   redact(target), fingerprint(target))


def redacted_entry(entry: AuditEntry) -> AuditEntry:
    """An audit entry of a channel as it may be shown. Entries written before targets were
    redacted hold the whole URL: it is shown redacted (the stored entry, which the chain
    hashes, is unchanged)."""
    target = entry.details.get("target")
    if entry.action not in ("add_alert_channel", "remove_alert_channel") \
            or not isinstance(target, str) or "target_fingerprint" in entry.details:
        return entry
    return replace(entry, details=entry.details | {"target": redact(target),
                                                   "target_fingerprint": fingerprint(target),
                                                   "redacted_when_read": True})


@dataclass(frozen=True)
class Delivery:
    id: int
    episode: int | None
    channel: str
    state: str  # firing / resolved / test
    payload: dict
    created_at: str
    status: str  # pending / delivered / gave_up
    attempts: int
    next_attempt_at: str
    delivered_at: str | None


@dataclass(frozen=True)
class Attempt:
    delivery: int
    at: str
    ok: bool
    status: str
    error: str | None


@dataclass(frozen=True)
class Changes:
    """What one evaluation did."""

    fired: list[Episode]
    resolved: list[Episode]
    reminded: list[Episode]
    deliveries: int


_EPISODE = ("id", "rule", "subject", "version", "summary", "details", "started_at",
            "resolved_at", "notified_at", "acknowledged_by", "acknowledged_at",
            "silenced_until")
_CHANNEL = ("name", "kind", "target", "secret", "smtp", "smtp_user", "created_at",
            "created_by", "target_shown", "target_fingerprint")
_DELIVERY = ("id", "episode", "channel", "state", "payload", "created_at", "status",
             "attempts", "next_attempt_at", "delivered_at")


def _episode(row) -> Episode:
    values = dict(zip(_EPISODE, row))
    values["details"] = json.loads(values["details"])
    return Episode(**values)


def _delivery(row) -> Delivery:
    values = dict(zip(_DELIVERY, row))
    values["payload"] = json.loads(values["payload"])
    return Delivery(**values)


def message(episode: Episode, state: str, model: str, at: datetime) -> dict:
    """The JSON body every channel starts from (a webhook gets it as is)."""
    return {"rule": episode.rule, "state": state, "model": model, "version": episode.version,
            "summary": episode.summary, "details": episode.details, "at": stamp(at),
            "episode": episode.id, "subject": episode.subject}


class AlertStore:
    """Channels, rule overrides, episodes and deliveries of one model.

    Args:
        secrets: seals channels' targets and signing keys at rest (``SECRETS_KEY``).
    """

    def __init__(self, database: Database, model: str, secrets: SecretBox | None = None):
        self.database, self.model = database, model
        self.secrets = secrets or SecretBox()

    # --- channels and rules (admins; audited) ------------------------------------------

    def channels(self) -> list[Channel]:
        rows = self.database.read(f"SELECT {', '.join(_CHANNEL)} FROM alert_channels WHERE "
                                  "model = :model ORDER BY name", {"model": self.model})
        return [self._channel(row) for row in rows]

    def _channel(self, row) -> Channel:
        values = dict(zip(_CHANNEL, row))
        sealed, secret = values["target"], values["secret"]
        problem = None
        try:
            target = self.secrets.open(sealed)
            secret = None if secret is None else self.secrets.open(secret)
        except InvalidInput as error:
            target, secret, problem = "", None, str(error)
        return Channel(values["name"], values["kind"], target, secret, values["smtp"],
                       values["smtp_user"], values["created_at"], values["created_by"],
                       values["target_shown"], values["target_fingerprint"],
                       sealed.startswith(SEALED_PREFIX), problem)

    def channel(self, name: str) -> Channel:
        found = [c for c in self.channels() if c.name == name]
        if not found:
            known = ", ".join(c.name for c in self.channels()) or "none yet"
            raise InvalidInput(f"there is no alert channel {name!r} (channels: {known}). To "
                               "fix this, see 'python -m core alerts channels'.")
        return found[0]

    def add_channel(self, channel: Channel, *, actor: Actor) -> Channel:
        if channel.kind not in CHANNEL_KINDS:
            raise ValueError(f"unknown channel kind {channel.kind!r}")
        with self.database.write() as conn:
            if conn.execute(text("SELECT 1 FROM alert_channels WHERE model = :model AND name "
                                 "= :name"), {"model": self.model, "name": channel.name}
                            ).first():
                raise InvalidInput(f"there is already an alert channel {channel.name!r}. To "
                                   "fix this, choose another name or remove it first "
                                   "('python -m core alerts remove-channel').")
            conn.execute(schema.alert_channels.insert().values(
                model=self.model, name=channel.name, kind=channel.kind,
                target=self.secrets.seal(channel.target),
                secret=None if channel.secret is None else self.secrets.seal(channel.secret),
                smtp=channel.smtp, smtp_user=channel.smtp_user,
                created_at=channel.created_at, created_by=channel.created_by,
                target_shown=channel.shown, target_fingerprint=channel.fingerprint))
            stored = replace(channel, encrypted=self.secrets.sealing)
            append(conn, AuditEntry(
                at=channel.created_at, actor=actor.name, role=actor.role,
                action="add_alert_channel", outcome="done", model=self.model,
                target=f"alert channel {channel.name}",
                details={k: v for k, v in stored.as_dict().items()
                         if k not in ("created_at", "created_by")}))
        return stored

    def remove_channel(self, name: str, *, actor: Actor, now: datetime) -> None:
        channel = self.channel(name)
        with self.database.write() as conn:
            conn.execute(text("DELETE FROM alert_channels WHERE model = :model AND name = "
                              ":name"), {"model": self.model, "name": name})
            # Its pending messages have nowhere to go.
            conn.execute(text("UPDATE alert_deliveries SET status = 'gave_up' WHERE model = "
                              ":model AND channel = :name AND status = 'pending'"),
                         {"model": self.model, "name": name})
            append(conn, AuditEntry(
                at=stamp(now), actor=actor.name, role=actor.role,
                action="remove_alert_channel", outcome="done", model=self.model,
                target=f"alert channel {name}", details=channel.as_dict()))

    def overrides(self) -> dict[str, dict]:
        rows = self.database.read("SELECT rule, settings FROM alert_rules WHERE model = "
                                  ":model", {"model": self.model})
        return {rule: json.loads(settings) for rule, settings in rows}

    def settings(self, rule: str) -> dict:
        return rule_settings(rule, self.overrides().get(rule, {}))

    def set_rule(self, rule: str, changes: dict, *, actor: Actor, reason: str,
                 now: datetime) -> dict:
        """Overrides some of a rule's settings for this model (audited, old and new)."""
        check_rule(rule)
        with self.database.write() as conn:
            row = conn.execute(text("SELECT settings FROM alert_rules WHERE model = :model "
                                    "AND rule = :rule"), {"model": self.model, "rule": rule}
                               ).first()
            old = json.loads(row[0]) if row else {}
            new = old | changes
            conn.execute(text("DELETE FROM alert_rules WHERE model = :model AND rule = :rule"),
                         {"model": self.model, "rule": rule})
            conn.execute(schema.alert_rules.insert().values(
                model=self.model, rule=rule, settings=json.dumps(new, sort_keys=True),
                set_at=stamp(now), set_by=actor.name))
            append(conn, AuditEntry(
                at=stamp(now), actor=actor.name, role=actor.role, action="set_alert_rule",
                outcome="done", model=self.model, target=f"alert rule {rule}", reason=reason,
                details={"from": rule_settings(rule, old), "to": rule_settings(rule, new)}))
        return rule_settings(rule, new)

    # --- episodes ------------------------------------------------------------------------

    def episodes(self, *, open_only: bool = False, limit: int = 200) -> list[Episode]:
        rows = self.database.read(
            f"SELECT {', '.join(_EPISODE)} FROM alert_episodes WHERE model = :model"
            + (" AND resolved_at IS NULL" if open_only else "")
            + " ORDER BY id DESC LIMIT :limit", {"model": self.model, "limit": limit})
        return [_episode(row) for row in rows]

    def episode(self, episode_id: int) -> Episode:
        rows = self.database.read(f"SELECT {', '.join(_EPISODE)} FROM alert_episodes WHERE "
                                  "model = :model AND id = :id",
                                  {"model": self.model, "id": episode_id})
        if not rows:
            raise InvalidInput(f"there is no alert episode {episode_id}. To fix this, see "
                               "'python -m core alerts list'.")
        return _episode(rows[0])

    def has_episode(self, rule: str, subject: str) -> bool:
        """Whether an episode of this rule and subject exists, open or not (events fire
        once per subject)."""
        return bool(self.database.read(
            "SELECT 1 FROM alert_episodes WHERE model = :model AND rule = :rule AND subject = "
            ":subject LIMIT 1", {"model": self.model, "rule": rule, "subject": subject}))

    def record(self, findings: Sequence[Finding], checked: Iterable[tuple[str, str]],
               now: datetime, reminders: dict[str, int]) -> Changes:
        """Applies one pass's findings: opens, reminds and resolves episodes, and queues
        their messages, in one transaction.

        Args:
            findings: conditions true now, and events that happened.
            checked: every (rule, subject) whose condition was evaluated this pass; an
                open episode among them without a finding is resolved. Subjects not
                checked (their data was unavailable) keep their episodes as they are.
            reminders: rule -> minutes between reminders (0: none).
        """
        fired, resolved, reminded = [], [], []
        at = stamp(now)
        found = {(f.rule, f.subject): f for f in findings}
        with self.database.write() as conn:
            channels = [row[0] for row in conn.execute(text(
                "SELECT name FROM alert_channels WHERE model = :model ORDER BY name"),
                {"model": self.model})]
            opened = {(e.rule, e.subject): e for e in (_episode(row) for row in conn.execute(
                text(f"SELECT {', '.join(_EPISODE)} FROM alert_episodes WHERE model = :model "
                     "AND resolved_at IS NULL"), {"model": self.model}))}
            queued = 0
            for key, finding in found.items():
                episode = opened.get(key)
                if episode is None:
                    event = RULES[finding.rule].kind == EVENT
                    episode_id = conn.execute(schema.alert_episodes.insert().values(
                        model=self.model, rule=finding.rule, subject=finding.subject,
                        version=finding.version, summary=finding.summary,
                        details=json.dumps(finding.details, sort_keys=True, default=str),
                        started_at=at, resolved_at=at if event else None, notified_at=at
                    ).returning(schema.alert_episodes.c.id)).scalar_one()
                    episode = self._get(conn, episode_id)
                    fired.append(episode)
                    queued += self._queue(conn, channels, episode, "firing", now)
                    continue
                conn.execute(text("UPDATE alert_episodes SET summary = :summary, details = "
                                  ":details WHERE id = :id"),
                             {"summary": finding.summary, "id": episode.id,
                              "details": json.dumps(finding.details, sort_keys=True,
                                                    default=str)})
                every = reminders.get(finding.rule, 0)
                due = (every and not episode.acknowledged_by and not episode.silenced(now)
                       and datetime.fromisoformat(episode.notified_at)
                       + timedelta(minutes=every) <= now)
                if due:
                    conn.execute(text("UPDATE alert_episodes SET notified_at = :at WHERE id "
                                      "= :id"), {"at": at, "id": episode.id})
                    episode = self._get(conn, episode.id)
                    reminded.append(episode)
                    queued += self._queue(conn, channels, episode, "firing", now)
            for key in set(checked) - set(found):
                episode = opened.get(key)
                if episode is None:
                    continue
                conn.execute(text("UPDATE alert_episodes SET resolved_at = :at WHERE id = :id"),
                             {"at": at, "id": episode.id})
                episode = self._get(conn, episode.id)
                resolved.append(episode)
                if not episode.silenced(now):
                    queued += self._queue(conn, channels, episode, "resolved", now)
        return Changes(fired, resolved, reminded, queued)

    def _get(self, conn: Connection, episode_id: int) -> Episode:
        return _episode(conn.execute(text(f"SELECT {', '.join(_EPISODE)} FROM alert_episodes "
                                          "WHERE id = :id"), {"id": episode_id}).one())

    def _queue(self, conn: Connection, channels: Sequence[str], episode: Episode, state: str,
               now: datetime) -> int:
        payload = json.dumps(message(episode, state, self.model, now), sort_keys=True,
                             default=str)
        for channel in channels:
            conn.execute(schema.alert_deliveries.insert().values(
                model=self.model, episode=episode.id, channel=channel, state=state,
                payload=payload, created_at=stamp(now), status="pending",
                next_attempt_at=stamp(now)))
        return len(channels)

    def acknowledge(self, episode_id: int, *, actor: Actor, reason: str, now: datetime,
                    silence_for: timedelta | None = None) -> Episode:
        """Acknowledges an open episode (no more reminders), or silences it until
        ``now + silence_for`` (no messages at all until then). Audited."""
        episode = self.episode(episode_id)
        if not episode.open:
            raise InvalidInput(f"alert episode {episode_id} was resolved at "
                               f"{episode.resolved_at}; nothing to acknowledge. To fix this, "
                               "pick an open episode ('python -m core alerts list --open').")
        at = stamp(now)
        until = stamp(now + silence_for) if silence_for else None
        with self.database.write() as conn:
            if silence_for:
                conn.execute(text("UPDATE alert_episodes SET silenced_until = :until WHERE id "
                                  "= :id"), {"until": until, "id": episode_id})
            else:
                conn.execute(text("UPDATE alert_episodes SET acknowledged_by = :by, "
                                  "acknowledged_at = :at WHERE id = :id"),
                             {"by": actor.name, "at": at, "id": episode_id})
            append(conn, AuditEntry(
                at=at, actor=actor.name, role=actor.role,
                action="silence_alert" if silence_for else "acknowledge_alert",
                outcome="done", model=self.model, target=f"alert episode {episode_id}",
                version=episode.version, reason=reason,
                details={"rule": episode.rule, "subject": episode.subject,
                         "silenced_until": until}))
        return self.episode(episode_id)

    # --- the monitor's own problems -----------------------------------------------------

    def set_problems(self, problems: dict[str, str], now: datetime) -> None:
        """Replaces what failed in the last pass (item -> error; empty: nothing)."""
        with self.database.write() as conn:
            conn.execute(text("DELETE FROM monitor_problems WHERE model = :model"),
                         {"model": self.model})
            for item, error in problems.items():
                conn.execute(schema.monitor_problems.insert().values(
                    model=self.model, item=item, at=stamp(now), error=error))

    def problems(self) -> list[tuple[str, str, str]]:
        """(item, at, error) of what failed in the monitor's last pass."""
        return [tuple(row) for row in self.database.read(
            "SELECT item, at, error FROM monitor_problems WHERE model = :model ORDER BY item",
            {"model": self.model})]

    # --- deliveries ----------------------------------------------------------------------

    def queue_test(self, channel: str, now: datetime) -> Delivery:
        """Queues a test message to one channel; returns its delivery."""
        self.channel(channel)
        payload: dict = {"rule": "test", "state": "test", "model": self.model, "version": None,
                   "summary": f"Test message from the {self.model} monitor: this channel "
                              "works.", "details": {}, "at": stamp(now), "episode": None,
                   "subject": "test"}
        with self.database.write() as conn:
            delivery_id = conn.execute(schema.alert_deliveries.insert().values(
                model=self.model, episode=None, channel=channel, state="test",
                payload=json.dumps(payload, sort_keys=True), created_at=stamp(now),
                status="pending", next_attempt_at=stamp(now)
            ).returning(schema.alert_deliveries.c.id)).scalar_one()
        return self.delivery(delivery_id)

    def delivery(self, delivery_id: int) -> Delivery:
        rows = self.database.read(f"SELECT {', '.join(_DELIVERY)} FROM alert_deliveries "
                                  "WHERE id = :id", {"id": delivery_id})
        return _delivery(rows[0])

    def deliveries(self, limit: int = 200) -> list[Delivery]:
        rows = self.database.read(f"SELECT {', '.join(_DELIVERY)} FROM alert_deliveries "
                                  "WHERE model = :model ORDER BY id DESC LIMIT :limit",
                                  {"model": self.model, "limit": limit})
        return [_delivery(row) for row in rows]

    def attempts(self, delivery_ids: Sequence[int]) -> list[Attempt]:
        if not delivery_ids:
            return []
        rows = self.database.read(
            "SELECT delivery, at, ok, status, error FROM alert_attempts WHERE delivery IN "
            f"({', '.join(str(int(i)) for i in delivery_ids)}) ORDER BY id")
        return [Attempt(d, at, bool(ok), status, error) for d, at, ok, status, error in rows]

    def claim_due(self, now: datetime, only: int | None = None) -> list[Delivery]:
        """Pending deliveries due now, claimed for CLAIM so that another monitor running
        at the same time does not send them too."""
        with self.database.write() as conn:
            rows = conn.execute(text(
                f"SELECT {', '.join(_DELIVERY)} FROM alert_deliveries WHERE model = :model AND "
                "status = 'pending' AND next_attempt_at <= :now"
                + ("" if only is None else " AND id = :only") + " ORDER BY id"),
                {"model": self.model, "now": stamp(now), "only": only}).all()
            if rows:
                conn.execute(text(
                    "UPDATE alert_deliveries SET next_attempt_at = :later WHERE id IN "
                    f"({', '.join(str(int(row[0])) for row in rows)})"),
                    {"later": stamp(now + CLAIM)})
        return [_delivery(row) for row in rows]

    def record_attempt(self, delivery: Delivery, now: datetime, ok: bool, status: str,
                       error: str | None) -> Delivery:
        """Records one attempt; schedules the next with exponential backoff, or gives up
        a day after the message was queued."""
        attempts = delivery.attempts + 1
        wait = min(FIRST_RETRY * 2 ** (attempts - 1), MAX_RETRY)
        expired = now - datetime.fromisoformat(delivery.created_at) >= GIVE_UP_AFTER
        new_status = "delivered" if ok else ("gave_up" if expired else "pending")
        with self.database.write() as conn:
            conn.execute(schema.alert_attempts.insert().values(
                delivery=delivery.id, at=stamp(now), ok=int(ok), status=status,
                error=error))
            conn.execute(text(
                "UPDATE alert_deliveries SET attempts = :attempts, status = :status, "
                "next_attempt_at = :next, delivered_at = :delivered WHERE id = :id"),
                {"attempts": attempts, "status": new_status, "id": delivery.id,
                 "next": stamp(now + wait), "delivered": stamp(now) if ok else None})
        return self.delivery(delivery.id)

