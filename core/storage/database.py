"""One database for the catalog, audit log, users, prediction log and jobs.

SQLAlchemy Core runs the same statements on every database it supports; the
embedded default is one SQLite file in WAL mode. The contract every store
relies on, written down where it is implemented:

- ``write()`` yields a connection inside a transaction in which read-then-write
  sequences cannot interleave with another writer: on SQLite, ``BEGIN
  IMMEDIATE`` takes the write lock up front. It commits on success and rolls
  back on any error. A change and its audit entry go through the same
  connection, so both commit or neither does.
- ``read()`` never creates anything: reading a registry that does not exist yet
  leaves the disk untouched and finds no rows.
- The schema is brought up to date (``core.storage.migrations``) in a
  transaction of its own before the first write, and before the first read of a
  database that exists, so a writer killed later cannot take the tables down with
  it, and a database made by an older release is upgraded before it is used.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from core.errors import InvalidInput

BUSY_TIMEOUT_SECONDS = 60
SYNCHRONOUS = ("FULL", "NORMAL")


class Database:
    """A database URL's engine and the transaction contract above.

    Args:
        url: an SQLAlchemy URL, e.g. ``sqlite:////path/registry.db``.
    """

    def __init__(self, url: str):
        self.url = make_url(url)
        if self.url.get_backend_name() != "sqlite" or not self.url.database:
            raise InvalidInput(f"unsupported database URL {url!r}. To fix this, use "
                               "sqlite:///<path to registry.db>.")
        self.path = Path(self.url.database)
        self._engine: Engine | None = None
        self._schema_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = _sqlite_engine(self.path)
            return self._engine

    def exists(self) -> bool:
        return self.path.exists()

    def ensure_schema(self) -> None:
        """Creates or upgrades the schema (once per process; cheap afterwards)."""
        if self._schema_ready:
            return
        from core.storage import migrations

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.engine.connect().execution_options(begin="IMMEDIATE") as conn:
            with conn.begin():
                migrations.upgrade(conn)
        self._schema_ready = True

    @contextmanager
    def write(self, synchronous: str = "FULL") -> Iterator[Connection]:
        """A connection inside a write transaction (see the module's contract).

        Args:
            synchronous: ``FULL`` survives a power cut; ``NORMAL`` survives a killed
                process (committed pages are in the OS) but not a power cut. Frequent
                writes such as predictions use NORMAL; decisions keep FULL.
        """
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.ensure_schema()
        with self.engine.connect().execution_options(begin="IMMEDIATE",
                                                     synchronous=synchronous) as conn:
            with conn.begin():
                yield conn

    def read(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows of one query, as tuples; none while the database does not exist."""
        if not self.exists():
            return []
        self.ensure_schema()
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]



def _sqlite_engine(path: Path) -> Engine:
    # A connection per operation, closed after it (NullPool): a process holds no file
    # open between operations, and the last one to close checkpoints the WAL, as
    # SQLite's own tools expect. Opening costs ~0.1 ms, far below a commit's fsync.
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool,
                           connect_args={"timeout": BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Transactions are begun below, not by the sqlite3 module's own guesswork.
        dbapi_connection.isolation_level = None
        _use_wal(dbapi_connection)

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        options = conn.get_execution_options()
        synchronous = options.get("synchronous")
        if synchronous:
            conn.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("begin") == "IMMEDIATE"
                             else "BEGIN")

    return engine


def _use_wal(dbapi_connection: sqlite3.Connection) -> None:
    """Switches a new database to WAL mode (a no-op once it is).

    The switch needs an exclusive lock, and SQLite does not wait on its busy
    handler for it: two processes creating the file at once would see "database
    is locked". So retry for as long as a normal write would wait.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
