"""Traffic policy: which version answers which API request, besides the champion.

- ``off``: the champion answers everything.
- ``shadow``: the champion answers; the candidate also predicts every request,
  logged with the same request id, never shown to the client.
- ``canary``: ``percent`` % of requests, chosen by their request id (so a retried
  request lands on the same version), are answered by the candidate.

Setting a policy is a decision about production, audited with its reason in the
same transaction. A policy whose version is no longer a candidate (promoted,
rejected, or archived after a promotion and a rollback) is inactive: the champion
answers alone, so a decision never leaves traffic on the wrong version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text

from core.audit import Actor, AuditEntry, append
from core.errors import InvalidInput
from core.storage.database import Database

MODES = ("off", "shadow", "canary")


@dataclass(frozen=True)
class TrafficPolicy:
    mode: str = "off"
    candidate: int | None = None
    percent: int | None = None  # canary only: 1-100
    set_at: str = ""
    set_by: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"unknown traffic mode {self.mode!r}. To fix this, use one of: "
                               f"{', '.join(MODES)}.")
        if self.mode == "off" and (self.candidate is not None or self.percent is not None):
            raise InvalidInput("traffic 'off' takes no candidate or percent.")
        if self.mode != "off" and self.candidate is None:
            raise InvalidInput(f"{self.mode} needs a candidate version. To fix this, give one, "
                               "e.g. --shadow 4 or --canary 4:10.")
        if self.mode == "canary" and (self.percent is None or not 1 <= self.percent <= 100):
            raise InvalidInput(f"canary percent {self.percent} is out of range. To fix this, "
                               "give a whole number from 1 to 100, e.g. --canary 4:10.")
        if self.mode == "shadow" and self.percent is not None:
            raise InvalidInput("shadow takes no percent: every request is shadowed.")

    def as_dict(self) -> dict:
        return {"mode": self.mode, "candidate": self.candidate, "percent": self.percent,
                "set_at": self.set_at, "set_by": self.set_by, "reason": self.reason}


@dataclass(frozen=True)
class Assignment:
    """Who answers one request: ``version`` (as ``variant``), and who shadows it."""

    version: int
    variant: str  # champion or canary
    shadow: int | None = None


def in_canary(request_id: str, percent: int) -> bool:
    """Deterministic per request id: the same id always gets the same answer."""
    bucket = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big")
    return bucket % 10_000 < percent * 100


def active_candidate(policy: TrafficPolicy, champion: int,
                     statuses: Mapping[int, str]) -> int | None:
    """The policy's candidate while it still is one: once promoted, rejected or (after a
    promotion and a rollback) archived, the champion answers alone."""
    candidate = policy.candidate
    if policy.mode == "off" or candidate is None or candidate == champion:
        return None
    return candidate if statuses.get(candidate) == "candidate" else None


def assign(policy: TrafficPolicy, champion: int, statuses: Mapping[int, str],
           request_id: str) -> Assignment:
    candidate = active_candidate(policy, champion, statuses)
    if candidate is None:
        return Assignment(champion, "champion")
    if policy.mode == "shadow":
        return Assignment(champion, "champion", shadow=candidate)
    if in_canary(request_id, policy.percent or 0):
        return Assignment(candidate, "canary")
    return Assignment(champion, "champion")


class TrafficStore:
    """The current policy per model; its history is the audit log's ``traffic`` entries."""

    def __init__(self, database: Database, model: str):
        self.database, self.model = database, model

    def get(self) -> TrafficPolicy:
        rows = self.database.read("SELECT mode, candidate, percent, set_at, set_by, reason "
                                  "FROM traffic_policies WHERE model = :model",
                                  {"model": self.model})
        return TrafficPolicy(*rows[0]) if rows else TrafficPolicy()

    def set(self, policy: TrafficPolicy, *, actor: Actor) -> TrafficPolicy:
        """Replaces the policy and audits the change (old and new) in one transaction."""
        with self.database.write() as db:
            row = db.execute(text("SELECT mode, candidate, percent FROM traffic_policies "
                                  "WHERE model = :model"), {"model": self.model}).first()
            old = {"mode": row[0], "candidate": row[1], "percent": row[2]} if row else {
                "mode": "off", "candidate": None, "percent": None}
            db.execute(text("DELETE FROM traffic_policies WHERE model = :model"),
                       {"model": self.model})
            db.execute(text("INSERT INTO traffic_policies (model, mode, candidate, percent, "
                            "set_at, set_by, reason) VALUES (:model, :mode, :candidate, "
                            ":percent, :at, :by, :reason)"),
                       {"model": self.model, "mode": policy.mode, "candidate": policy.candidate,
                        "percent": policy.percent, "at": policy.set_at, "by": actor.name,
                        "reason": policy.reason})
            append(db, AuditEntry(
                at=policy.set_at, actor=actor.name, role=actor.role, action="traffic",
                outcome="done", model=self.model, target="traffic", version=policy.candidate,
                reason=policy.reason, details={"from": old, "to": {
                    "mode": policy.mode, "candidate": policy.candidate,
                    "percent": policy.percent}}))
        return self.get()
