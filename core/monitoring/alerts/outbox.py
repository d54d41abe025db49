"""The outbox of alert messages: queued in the transaction that changed an episode, sent
by the monitor, retried with exponential backoff, every attempt recorded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from core.audit import stamp
from core.monitoring.alerts.records import (
    DELIVERY_COLUMNS,
    Attempt,
    Delivery,
    Episode,
    delivery_of,
    message,
)
from core.storage import schema
from core.storage.database import Database

# Retries: 10 s, 20 s, 40 s ... at most 30 min apart; given up after a day.
FIRST_RETRY = timedelta(seconds=10)
MAX_RETRY = timedelta(minutes=30)
GIVE_UP_AFTER = timedelta(days=1)
# A claimed delivery is not sent by another monitor for this long (one sender at a time).
CLAIM = timedelta(seconds=60)
_SELECT = f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM alert_deliveries"


class Outbox:
    def __init__(self, database: Database, model: str):
        self.database, self.model = database, model

    def queue(self, conn: Connection, episode: Episode, state: str, now: datetime) -> int:
        """Queues the episode's message to every channel, in the caller's transaction;
        returns how many were queued."""
        channels = [row[0] for row in conn.execute(text(
            "SELECT name FROM alert_channels WHERE model = :model ORDER BY name"),
            {"model": self.model})]
        payload = json.dumps(message(episode, state, self.model, now), sort_keys=True,
                             default=str)
        for channel in channels:
            conn.execute(schema.alert_deliveries.insert().values(
                model=self.model, episode=episode.id, channel=channel, state=state,
                payload=payload, created_at=stamp(now), status="pending",
                next_attempt_at=stamp(now)))
        return len(channels)

    def queue_test(self, channel: str, now: datetime) -> Delivery:
        """Queues a test message to one channel (which must exist); returns its delivery."""
        payload: dict = {"rule": "test", "state": "test", "model": self.model, "version": None,
                         "summary": f"Test message from the {self.model} monitor: this "
                                    "channel works.", "details": {}, "at": stamp(now),
                         "episode": None, "subject": "test"}
        with self.database.write() as conn:
            delivery_id = conn.execute(schema.alert_deliveries.insert().values(
                model=self.model, episode=None, channel=channel, state="test",
                payload=json.dumps(payload, sort_keys=True), created_at=stamp(now),
                status="pending", next_attempt_at=stamp(now)
            ).returning(schema.alert_deliveries.c.id)).scalar_one()
        return self.delivery(delivery_id)

    def delivery(self, delivery_id: int) -> Delivery:
        rows = self.database.read(f"{_SELECT} WHERE id = :id", {"id": delivery_id})
        return delivery_of(rows[0])

    def deliveries(self, limit: int = 200) -> list[Delivery]:
        rows = self.database.read(f"{_SELECT} WHERE model = :model ORDER BY id DESC LIMIT "
                                  ":limit", {"model": self.model, "limit": limit})
        return [delivery_of(row) for row in rows]

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
                f"{_SELECT} WHERE model = :model AND status = 'pending' AND next_attempt_at "
                "<= :now" + ("" if only is None else " AND id = :only") + " ORDER BY id"),
                {"model": self.model, "now": stamp(now), "only": only}).all()
            if rows:
                conn.execute(text(
                    "UPDATE alert_deliveries SET next_attempt_at = :later WHERE id IN "
                    f"({', '.join(str(int(row[0])) for row in rows)})"),
                    {"later": stamp(now + CLAIM)})
        return [delivery_of(row) for row in rows]

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
