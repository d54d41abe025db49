"""Audit entries as records: who acted with which role, what, on what, why, and the
evidence; and their export (JSON, or CSV a spreadsheet cannot run)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

OUTCOMES = ("done", "refused")


def stamp(at: datetime, *, milliseconds: bool = False) -> str:
    """The one text form of times in records (audit entries, jobs, snapshots, alerts,
    sign-in failures; the prediction log to the millisecond): ISO 8601 in the zone ``at``
    carries (core's are UTC), so they sort as text."""
    return at.isoformat(timespec="milliseconds" if milliseconds else "seconds")


@dataclass(frozen=True)
class Actor:
    """Who acts, with the role they held at that moment."""

    name: str
    role: str


@dataclass(frozen=True)
class AuditEntry:
    """One audit record. ``seq``, ``prev_hash`` and ``hash`` are set when appended.

    Attributes:
        at: UTC time, ISO 8601.
        actor, role: who acted and the role they held.
        action: e.g. register, promote, reject, rollback, archive, submit_job,
            cancel_job, add_user, set_role, login.
        outcome: ``done`` or ``refused``.
        target: what was acted on, e.g. ``version 3``, ``job 5``, ``user alice``.
        version: the model version concerned, if any.
        reason: the written reason (decisions), or why it was refused.
        details: the evidence at that moment (comparison, gate, drift status) and
            the status change (``from_status``, ``to_status``).
    """

    at: str
    actor: str
    role: str
    action: str
    outcome: str
    model: str
    target: str
    version: int | None = None
    reason: str = ""
    details: dict = field(default_factory=dict)
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    hash_scheme: str | None = None  # KEYED, or None: plain SHA-256 (no AUDIT_KEY)

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(AuditEntry))


def export(entries: list[AuditEntry], fmt: str) -> str:
    """The entries as ``json`` (a list of objects) or ``csv`` (details as JSON text)."""
    rows = [entry.as_dict() for entry in entries]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        # The sequence number first: it is what people sort and cite by.
        columns = ("seq",) + tuple(c for c in COLUMNS if c != "seq")
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({name: _spreadsheet_safe(value) for name, value in (
                row | {"details": json.dumps(row["details"], sort_keys=True)}).items()})
        return out.getvalue()
    raise ValueError(f"unknown format {fmt!r}")


def _spreadsheet_safe(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: one starting with ``= + - @`` (or a tab or
    carriage return) would run as a formula (``=HYPERLINK(...)`` as a user name), so it
    gets a leading ``'`` (OWASP's advice). JSON export keeps every value exactly."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
