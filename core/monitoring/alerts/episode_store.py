"""Episodes of rules' findings: opened, reminded and resolved by the monitor's passes,
acknowledged or silenced by people (audited). Each change queues its messages in the
same transaction (``Outbox``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from core.audit import Actor, AuditEntry, append, stamp
from core.errors import InvalidInput
from core.monitoring.alerts.outbox import Outbox
from core.monitoring.alerts.records import (
    EPISODE_COLUMNS,
    Changes,
    Episode,
    Finding,
    episode_of,
)
from core.storage import schema
from core.storage.database import Database

_SELECT = f"SELECT {', '.join(EPISODE_COLUMNS)} FROM alert_episodes"


def _details(finding: Finding) -> str:
    return json.dumps(finding.details, sort_keys=True, default=str)


class EpisodeStore:
    def __init__(self, database: Database, model: str, outbox: Outbox):
        self.database, self.model, self.outbox = database, model, outbox

    def recent(self, *, open_only: bool = False, limit: int = 200) -> list[Episode]:
        rows = self.database.read(
            f"{_SELECT} WHERE model = :model" + (" AND resolved_at IS NULL" if open_only else "")
            + " ORDER BY id DESC LIMIT :limit", {"model": self.model, "limit": limit})
        return [episode_of(row) for row in rows]

    def get(self, episode_id: int) -> Episode:
        rows = self.database.read(f"{_SELECT} WHERE model = :model AND id = :id",
                                  {"model": self.model, "id": episode_id})
        if not rows:
            raise InvalidInput(f"there is no alert episode {episode_id}. To fix this, see "
                               "'python -m core alerts list'.")
        return episode_of(rows[0])

    def exists(self, rule: str, subject: str) -> bool:
        """Whether an episode of this rule and subject exists, open or not (events fire
        once per subject)."""
        return bool(self.database.read(
            "SELECT 1 FROM alert_episodes WHERE model = :model AND rule = :rule AND subject = "
            ":subject LIMIT 1", {"model": self.model, "rule": rule, "subject": subject}))

    def record(self, findings: Sequence[Finding], checked: Iterable[tuple[str, str]],
               now: datetime, *, reminders: dict[str, int], events: frozenset[str]
               ) -> Changes:
        """Applies one pass's findings: opens, reminds and resolves episodes, and queues
        their messages, in one transaction.

        Args:
            findings: conditions true now, and events that happened.
            checked: every (rule, subject) whose condition was evaluated this pass; an
                open episode among them without a finding is resolved. Subjects not
                checked (their data was unavailable) keep their episodes as they are.
            reminders: rule -> minutes between reminders (0: none).
            events: the rules whose episodes close as they open (one message each).
        """
        changes = Changes([], [], [], 0)
        queued = 0
        found = {(f.rule, f.subject): f for f in findings}
        with self.database.write() as conn:
            opened = {(e.rule, e.subject): e for e in (episode_of(row) for row in conn.execute(
                text(f"{_SELECT} WHERE model = :model AND resolved_at IS NULL"),
                {"model": self.model}))}
            for key, finding in found.items():
                episode = opened.get(key)
                if episode is None:
                    queued += self._open(conn, finding, finding.rule in events, now, changes)
                else:
                    queued += self._hold(conn, episode, finding, reminders.get(finding.rule, 0),
                                         now, changes)
            for key in set(checked) - set(found):
                if key in opened:
                    queued += self._resolve(conn, opened[key], now, changes)
        return Changes(changes.fired, changes.resolved, changes.reminded, queued)

    def _open(self, conn: Connection, finding: Finding, event: bool, now: datetime,
              changes: Changes) -> int:
        at = stamp(now)
        episode_id = conn.execute(schema.alert_episodes.insert().values(
            model=self.model, rule=finding.rule, subject=finding.subject,
            version=finding.version, summary=finding.summary, details=_details(finding),
            started_at=at, resolved_at=at if event else None, notified_at=at
        ).returning(schema.alert_episodes.c.id)).scalar_one()
        episode = self._read(conn, episode_id)
        changes.fired.append(episode)
        return self.outbox.queue(conn, episode, "firing", now)

    def _hold(self, conn: Connection, episode: Episode, finding: Finding, every: int,
              now: datetime, changes: Changes) -> int:
        """The condition still holds: the episode keeps the latest summary, and reminds
        every ``every`` minutes unless acknowledged or silenced."""
        conn.execute(text("UPDATE alert_episodes SET summary = :summary, details = :details "
                          "WHERE id = :id"), {"summary": finding.summary, "id": episode.id,
                                              "details": _details(finding)})
        due = (every and not episode.acknowledged_by and not episode.silenced(now)
               and datetime.fromisoformat(episode.notified_at) + timedelta(minutes=every)
               <= now)
        if due:
            conn.execute(text("UPDATE alert_episodes SET notified_at = :at WHERE id = :id"),
                         {"at": stamp(now), "id": episode.id})
            episode = self._read(conn, episode.id)
            changes.reminded.append(episode)
            return self.outbox.queue(conn, episode, "firing", now)
        return 0

    def _resolve(self, conn: Connection, episode: Episode, now: datetime,
                 changes: Changes) -> int:
        conn.execute(text("UPDATE alert_episodes SET resolved_at = :at WHERE id = :id"),
                     {"at": stamp(now), "id": episode.id})
        episode = self._read(conn, episode.id)
        changes.resolved.append(episode)
        return 0 if episode.silenced(now) else self.outbox.queue(conn, episode, "resolved", now)

    def _read(self, conn: Connection, episode_id: int) -> Episode:
        return episode_of(conn.execute(text(f"{_SELECT} WHERE id = :id"),
                                       {"id": episode_id}).one())

    def acknowledge(self, episode_id: int, *, actor: Actor, reason: str, now: datetime,
                    silence_for: timedelta | None = None) -> Episode:
        """Acknowledges an open episode (no more reminders), or silences it until
        ``now + silence_for`` (no messages at all until then). Audited."""
        episode = self.get(episode_id)
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
        return self.get(episode_id)
