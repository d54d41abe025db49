"""Where alert messages go: a model's channels, their targets and signing keys sealed at
rest (``SECRETS_KEY``). Adding and removing one is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import text

from core.audit import Actor, AuditEntry, append, stamp
from core.errors import InvalidInput
from core.monitoring.alerts.records import CHANNEL_KINDS, Channel
from core.storage import schema
from core.storage.database import Database
from core.storage.secrets import PREFIX as SEALED_PREFIX
from core.storage.secrets import SecretBox

_COLUMNS = ("name", "kind", "target", "secret", "smtp", "smtp_user", "created_at",
            "created_by", "target_shown", "target_fingerprint")


class ChannelStore:
    def __init__(self, database: Database, model: str, secrets: SecretBox):
        self.database, self.model, self.secrets = database, model, secrets

    def all(self) -> list[Channel]:
        rows = self.database.read(f"SELECT {', '.join(_COLUMNS)} FROM alert_channels WHERE "
                                  "model = :model ORDER BY name", {"model": self.model})
        return [self._channel(row) for row in rows]

    def _channel(self, row: Sequence[Any]) -> Channel:
        values = dict(zip(_COLUMNS, row))
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

    def get(self, name: str) -> Channel:
        channels = self.all()
        found = [c for c in channels if c.name == name]
        if not found:
            known = ", ".join(c.name for c in channels) or "none yet"
            raise InvalidInput(f"there is no alert channel {name!r} (channels: {known}). To "
                               "fix this, see 'python -m core alerts channels'.")
        return found[0]

    def add(self, channel: Channel, *, actor: Actor) -> Channel:
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

    def remove(self, name: str, *, actor: Actor, now: datetime) -> None:
        channel = self.get(name)
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

