"""What the monitor is told and what it reports: a model's rule settings (overrides of
the rules' defaults; audited) and what failed in its last pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import text

from core.audit import Actor, AuditEntry, append, stamp
from core.storage import schema
from core.storage.database import Database


class RuleSettingsStore:
    def __init__(self, database: Database, model: str):
        self.database, self.model = database, model

    def overrides(self) -> dict[str, dict]:
        """Rule -> the settings this model overrides (as stored)."""
        rows = self.database.read("SELECT rule, settings FROM alert_rules WHERE model = "
                                  ":model", {"model": self.model})
        return {rule: json.loads(settings) for rule, settings in rows}

    def set(self, rule: str, changes: dict, *, effective: Callable[[dict], dict],
            actor: Actor, reason: str, now: datetime) -> dict:
        """Overrides some of a rule's settings for this model; the audit entry keeps the
        ``effective`` settings before and after. Returns the overrides now."""
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
                details={"from": effective(old), "to": effective(new)}))
        return new


class MonitorProblems:
    def __init__(self, database: Database, model: str):
        self.database, self.model = database, model

    def replace(self, problems: dict[str, str], now: datetime) -> None:
        """Replaces what failed in the last pass (item -> error; empty: nothing)."""
        with self.database.write() as conn:
            conn.execute(text("DELETE FROM monitor_problems WHERE model = :model"),
                         {"model": self.model})
            for item, error in problems.items():
                conn.execute(schema.monitor_problems.insert().values(
                    model=self.model, item=item, at=stamp(now), error=error))

    def last(self) -> list[tuple[str, str, str]]:
        """(item, at, error) of what failed in the monitor's last pass."""
        return [tuple(row) for row in self.database.read(
            "SELECT item, at, error FROM monitor_problems WHERE model = :model ORDER BY item",
            {"model": self.model})]
