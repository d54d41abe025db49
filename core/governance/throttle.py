"""Sign-in throttling: exponential back-off per client address, never a lockout per name.

A lock per user name let anyone lock anyone out (names are easy to learn) for as long as
they kept guessing. Here failures count per (client address, user name) and per client
address across names: after ``FREE_FAILURES`` in a row a client waits, 1 minute at
first and twice as long after each further failure, at most 15 minutes. While it waits
its attempts are refused without checking the password (no 64 MiB argon2 check, no audit
row) and do not count. Another client, the rightful user's included, is not affected.
Counts start again ``WINDOW`` after a client's last failure, and a success clears its
count for that name.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from core.audit import stamp
from core.storage.database import Database

FREE_FAILURES = 5  # per client and user name, before the first wait
FREE_FAILURES_ANY_NAME = 20  # per client across names (trying many names with a password)
FIRST_WAIT = timedelta(minutes=1)
MAX_WAIT = timedelta(minutes=15)
WINDOW = timedelta(minutes=15)
ANY_NAME = "*"


def backoff(failures: int, free: int) -> timedelta:
    """How long a client waits after its ``failures``-th failure in a row."""
    if failures < free:
        return timedelta(0)
    return min(FIRST_WAIT * 2 ** (failures - free), MAX_WAIT)


class SignInThrottle:
    """Failed sign-ins per client, in the registry's database (shared by every dashboard)."""

    def __init__(self, database: Database):
        self.database = database

    def blocked_until(self, client: str, name: str, now: datetime) -> datetime | None:
        """When ``client`` may try ``name`` again (None: now)."""
        rows = self.database.read(
            "SELECT MAX(blocked_until) FROM sign_in_failures WHERE client = :client AND "
            "name IN (:name, :any) AND blocked_until > :now",
            {"client": client, "name": name, "any": ANY_NAME, "now": stamp(now)})
        return datetime.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    def record_failure(self, conn: Connection, client: str, name: str, now: datetime) -> None:
        """Counts a failed password check, inside the caller's transaction."""
        for key, free in ((name, FREE_FAILURES), (ANY_NAME, FREE_FAILURES_ANY_NAME)):
            row = conn.execute(text(
                "SELECT failures, last_at FROM sign_in_failures WHERE client = :client AND "
                "name = :name"), {"client": client, "name": key}).first()
            failures = 1
            if row is not None and now - datetime.fromisoformat(row[1]) < WINDOW:
                failures += row[0]
            wait = backoff(failures, free)
            conn.execute(text("DELETE FROM sign_in_failures WHERE client = :client AND name = "
                              ":name"), {"client": client, "name": key})
            conn.execute(text(
                "INSERT INTO sign_in_failures (client, name, failures, last_at, blocked_until) "
                "VALUES (:client, :name, :failures, :at, :until)"),
                {"client": client, "name": key, "failures": failures, "at": stamp(now),
                 "until": stamp(now + wait) if wait else None})

    def clear(self, conn: Connection, client: str, name: str) -> None:
        """Forgets ``client``'s failures for ``name`` (it signed in)."""
        conn.execute(text("DELETE FROM sign_in_failures WHERE client = :client AND name = "
                          ":name"), {"client": client, "name": name})
