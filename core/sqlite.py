"""SQLite helpers shared by the catalog and the prediction log (one file, WAL mode)."""

from __future__ import annotations

import sqlite3
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
        db.execute("PRAGMA journal_mode=WAL")
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
