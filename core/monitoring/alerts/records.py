"""The alert records: findings, episodes, channels, deliveries and their attempts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.audit import AuditEntry, stamp
from core.storage.secrets import fingerprint, redact

CHANNEL_KINDS = ("webhook", "slack", "email")


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


EPISODE_COLUMNS = ("id", "rule", "subject", "version", "summary", "details", "started_at",
                   "resolved_at", "notified_at", "acknowledged_by", "acknowledged_at",
                   "silenced_until")


def episode_of(row: Sequence[Any]) -> Episode:
    values = dict(zip(EPISODE_COLUMNS, row))
    values["details"] = json.loads(values["details"])
    return Episode(**values)


@dataclass(frozen=True)
class Changes:
    """What one evaluation did."""

    fired: list[Episode]
    resolved: list[Episode]
    reminded: list[Episode]
    deliveries: int


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


DELIVERY_COLUMNS = ("id", "episode", "channel", "state", "payload", "created_at", "status",
                    "attempts", "next_attempt_at", "delivered_at")


def delivery_of(row: Sequence[Any]) -> Delivery:
    values = dict(zip(DELIVERY_COLUMNS, row))
    values["payload"] = json.loads(values["payload"])
    return Delivery(**values)


@dataclass(frozen=True)
class Attempt:
    delivery: int
    at: str
    ok: bool
    status: str
    error: str | None


def message(episode: Episode, state: str, model: str, at: datetime) -> dict:
    """The JSON body every channel starts from (a webhook gets it as is)."""
    return {"rule": episode.rule, "state": state, "model": model, "version": episode.version,
            "summary": episode.summary, "details": episode.details, "at": stamp(at),
            "episode": episode.id, "subject": episode.subject}
