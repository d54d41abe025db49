"""Copies of the suite's shared registries (built once per run, read-only)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path


def checkpoint(registry: Path) -> None:
    """Moves everything committed into the registry's database file itself (a process
    that built it may keep connections open, and with them its -wal file)."""
    for database in registry.glob("*.db"):
        with closing(sqlite3.connect(database)) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert not busy, f"{database} could not be checkpointed"


def copy_registry(source: Path, target: Path) -> None:
    """A copy of a shared, read-only registry (checkpointed when built: its database file
    holds every row). SQLite's -wal and -shm files are left out: a process reading the
    registry makes and removes them (empty: readers write nothing), and one vanishing
    mid-copy failed the copy."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm"))
