"""Monitoring snapshots: what each version's traffic looked like in each closed hour and day.

The monitor (``core.app.snapshots``) computes a snapshot once, when its period has
closed (plus a grace for rows still in flight), from the raw prediction log and
request records; pages draw time axes from snapshots instead of re-reading
millions of log rows. Rows that arrive after their period's snapshot are counted
on it as ``late_rows`` (the snapshot itself is never recomputed; the raw log still
holds them for an ad-hoc ``drift --since/--until``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from core.audit import stamp
from core.errors import InvalidInput
from core.monitoring.log_records import RequestRow
from core.monitoring.report import DriftReport
from core.storage import schema
from core.storage.database import Database

PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
NO_VERSION = 0  # the snapshot row of API requests that failed before a version was chosen


def period_start(at: datetime, period: str) -> datetime:
    """The start of the hour or (UTC) day holding ``at``."""
    start = at.replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if period == "day" else start


@dataclass(frozen=True)
class VariantTraffic:
    """API requests of one variant (champion, canary, shadow, direct) in a period."""

    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def summarize_requests(rows: Sequence[RequestRow]) -> dict[str, VariantTraffic]:
    """Requests per variant; latency percentiles over the answered ones."""
    groups: dict[str, list[RequestRow]] = {}
    for row in rows:
        groups.setdefault(row.variant or "none", []).append(row)
    result = {}
    for variant, members in sorted(groups.items()):
        answered = np.asarray([r.latency_ms for r in members if r.status == 200], np.float64)
        p50, p95, p99 = ([float(p) for p in np.percentile(answered, [50, 95, 99])]
                         if len(answered) else (None, None, None))
        result[variant] = VariantTraffic(len(members), sum(r.status != 200 for r in members),
                                         p50, p95, p99)
    return result


@dataclass(frozen=True)
class Snapshot:
    """One version's traffic in one closed period.

    Attributes:
        drift: statistic name -> {value, status, warn, alert}; empty when the period
            held fewer predictions than a drift report needs.
        traffic: variant -> its API requests (empty: no API traffic).
        late_rows: predictions dated in the period that arrived after it was computed.
    """

    model: str
    period: str
    start: str
    end: str
    version: int
    computed_at: str
    n: int
    labelled: int
    alert: bool
    estimated_accuracy: float | None
    realized_accuracy: float | None
    reference_accuracy: float | None
    drift: dict
    traffic: dict[str, VariantTraffic]
    late_rows: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, *, model: str, period: str, start: datetime, version: int, computed_at: str,
           report: DriftReport | None, n: int, labelled: int,
           realized_accuracy: float | None, requests: Sequence[RequestRow]) -> "Snapshot":
        drift = ({s.name: {"value": s.value, "status": s.status, "warn": s.warn,
                           "alert": s.threshold} for s in report.statistics}
                 if report else {})
        return cls(model, period, stamp(start), stamp(start + PERIODS[period]), version,
                   computed_at, n, labelled, bool(report and report.alert),
                   report.estimated_accuracy if report else None, realized_accuracy,
                   report.reference_accuracy if report else None, drift,
                   summarize_requests(requests))


_COLUMNS = ("model", "period", "start", "end", "version", "computed_at", "n", "labelled",
            "alert", "estimated_accuracy", "realized_accuracy", "reference_accuracy", "drift",
            "traffic", "late_rows")
# Quoted: "end" is a reserved word in PostgreSQL.
_SELECTED = ", ".join(f'"{column}"' for column in _COLUMNS)


def _row(snapshot: Snapshot) -> dict:
    values = {c: getattr(snapshot, c) for c in _COLUMNS}
    values["alert"] = int(snapshot.alert)
    values["drift"] = json.dumps(snapshot.drift, sort_keys=True)
    values["traffic"] = json.dumps({k: asdict(v) for k, v in snapshot.traffic.items()},
                                   sort_keys=True)
    return values


def _snapshot(row: Sequence[Any]) -> Snapshot:
    values = dict(zip(_COLUMNS, row))
    values["alert"] = bool(values["alert"])
    values["drift"] = json.loads(values["drift"])
    values["traffic"] = {k: VariantTraffic(**v) for k, v in json.loads(values["traffic"]).items()}
    return Snapshot(**values)


class SnapshotStore:
    """Snapshots and the monitor's cursors, in the registry's database."""

    def __init__(self, database: Database, model: str):
        self.database, self.model = database, model

    def save(self, conn: Connection, snapshots: Sequence[Snapshot]) -> None:
        """Inserts snapshots inside the caller's transaction; one already there is an error
        (a period is computed once: the caller's cursor says which are done)."""
        if snapshots:
            conn.execute(schema.monitor_snapshots.insert(), [_row(s) for s in snapshots])

    def add_late_rows(self, conn: Connection, period: str, counts: dict[tuple[str, int], int]
                      ) -> None:
        """Counts late rows on their periods' snapshots ((start, version) -> rows)."""
        for (start, version), count in counts.items():
            conn.execute(text(
                "UPDATE monitor_snapshots SET late_rows = late_rows + :count WHERE model = "
                ":model AND period = :period AND start = :start AND version = :version"),
                {"count": count, "model": self.model, "period": period, "start": start,
                 "version": version})

    def read(self, period: str, since: str, until: str,
             versions: Sequence[int] | None = None) -> list[Snapshot]:
        """Snapshots of periods starting in [since, until), oldest first."""
        if period not in PERIODS:
            raise InvalidInput(f"unknown period {period!r}. To fix this, use one of: "
                               f"{', '.join(PERIODS)}.")
        rows = self.database.read(
            f"SELECT {_SELECTED} FROM monitor_snapshots WHERE model = :model AND "
            "period = :period AND start >= :since AND start < :until ORDER BY start, version",
            {"model": self.model, "period": period, "since": since, "until": until})
        snapshots = [_snapshot(row) for row in rows]
        if versions is not None:
            snapshots = [s for s in snapshots if s.version in versions]
        return snapshots

    def latest(self, period: str) -> list[Snapshot]:
        """The snapshots of the latest period that has any (one per version), or none."""
        rows = self.database.read(
            f"SELECT {_SELECTED} FROM monitor_snapshots WHERE model = :model AND "
            "period = :period AND start = (SELECT MAX(start) FROM monitor_snapshots WHERE "
            "model = :model AND period = :period) ORDER BY version",
            {"model": self.model, "period": period})
        return [_snapshot(row) for row in rows]

    def count(self, period: str | None = None) -> int:
        rows = self.database.read(
            "SELECT COUNT(*) FROM monitor_snapshots WHERE model = :model"
            + ("" if period is None else " AND period = :period"),
            {"model": self.model, "period": period})
        return rows[0][0] if rows else 0

    # --- cursors: where the monitor has got to ----------------------------------------

    def cursor(self, name: str, conn: Connection | None = None) -> str | None:
        sql = "SELECT value FROM monitor_cursors WHERE model = :model AND name = :name"
        args = {"model": self.model, "name": name}
        if conn is not None:
            return conn.execute(text(sql), args).scalar()
        rows = self.database.read(sql, args)
        return rows[0][0] if rows else None

    def set_cursor(self, conn: Connection, name: str, value: str, now: datetime) -> None:
        conn.execute(text("DELETE FROM monitor_cursors WHERE model = :model AND name = :name"),
                     {"model": self.model, "name": name})
        conn.execute(schema.monitor_cursors.insert().values(
            model=self.model, name=name, value=value, updated_at=stamp(now)))
