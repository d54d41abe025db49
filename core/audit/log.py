"""Reading the audit log, and appending entries that change no other state."""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from core.audit.chain import Verification, append, verify_rows
from core.audit.entries import COLUMNS, AuditEntry
from core.storage.database import Database


class AuditLog:
    """Reading the log, and appending entries that change no other state."""

    def __init__(self, database: Database):
        self.database = database

    def append_alone(self, entry: AuditEntry) -> AuditEntry:
        """Appends ``entry`` in a transaction of its own (refusals, logins: no state changes)."""
        with self.database.write() as conn:
            return append(conn, entry)

    def raw_rows(self) -> list[dict]:
        """Every entry as stored (``details`` the JSON text that was hashed), oldest first."""
        rows = self.database.read(f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq")
        return [dict(zip(COLUMNS, row)) for row in rows]

    def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last entry as the head row records it."""
        rows = self.database.read("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def read_entries(self, model: str | None = None) -> list[AuditEntry]:
        """Every entry (of ``model``, if given), oldest first."""
        return [AuditEntry(**(row | {"details": json.loads(row["details"])}))
                for row in self.raw_rows() if model is None or row["model"] == model]

    def last_done(self, conn: Connection, model: str, version: int) -> tuple | None:
        """(actor, action, at) of the last change of a version, inside a transaction."""
        return conn.execute(text(
            "SELECT actor, action, at FROM audit_log WHERE model = :model AND version = "
            ":version AND outcome = 'done' ORDER BY seq DESC LIMIT 1"),
            {"model": model, "version": version}).first()

    def verify(self, anchor: tuple[int, str] | None = None) -> "Verification":
        """Checks every entry's hash and link, and the head; names the first problem.

        Args:
            anchor: (seq, hash) recorded earlier elsewhere; the entry ``seq`` must still
                carry that hash, which catches a chain rewritten from before it on.
        """
        return verify_rows(self.raw_rows(), self.head(), anchor, self.database.audit_key)
