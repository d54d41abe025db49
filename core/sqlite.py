"""SQLite helpers shared by the catalog and the prediction log (one file, WAL mode)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

BUSY_TIMEOUT_SECONDS = 60


@contextmanager
def write_transaction(path: Path, schema: str,
                      synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
    """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on error.

    BEGIN IMMEDIATE takes the write lock up front, so read-then-write sequences
    inside one transaction cannot interleave with another writer. ``schema``
    (CREATE ... IF NOT EXISTS statements) commits on its own first, so a writer
    killed later cannot take the tables down with it. ``synchronous="NORMAL"``
    survives a killed process (WAL pages are in the OS) but not a power cut;
    "FULL" survives both.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        _use_wal(db)
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(schema)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()


def _use_wal(db: sqlite3.Connection) -> None:
    """Switches a new database to WAL mode (a no-op once it is).

    The switch needs an exclusive lock, and SQLite does not wait on its busy
    handler for it: two processes creating the file at once would see "database
    is locked". So retry for as long as a normal write would wait.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def read(path: Path, sql: str, args=()) -> list[tuple]:
    """Rows of a query; a database (or table) that does not exist yet has none.

    Never creates the file: reading a registry must leave the disk untouched.
    """
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError as error:
        # A process killed between creating the file and creating the tables
        # leaves an empty database: it holds nothing yet.
        if "no such table" in str(error):
            return []
        raise
    finally:
        db.close()
