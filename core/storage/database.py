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
from sqlalchemy.pool import QueuePool

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

        # The common case, a database already at the newest schema, takes no write lock.
        if self.exists():
            with self.engine.connect() as conn:
                self._schema_ready = migrations.is_current(conn)
        if self._schema_ready:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.engine.raw_connection()
        try:
            _use_wal(raw.driver_connection)  # persistent: once per database
        finally:
            raw.close()
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
    # Connections are pooled. Opening one per operation cost more than the write:
    # closing the last connection to a WAL database checkpoints the log into the file
    # (~0.6 ms), and SQLAlchemy's set-up per connection adds more. Pooled, a prediction
    # row commits in ~0.2 ms. The log is checkpointed every 1000 pages instead, and when
    # the last process closes; a registry in use has its -wal and -shm files beside it.
    engine = create_engine(f"sqlite:///{path}", poolclass=QueuePool, pool_size=5,
                           max_overflow=20,
                           connect_args={"timeout": BUSY_TIMEOUT_SECONDS,
                                         "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Transactions are begun below, not by the sqlite3 module's own guesswork.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # Straight to the driver: these two statements run on every write, and
        # SQLAlchemy's execution path would double their cost.
        options = conn.get_execution_options()
        driver = conn.connection.driver_connection
        synchronous = options.get("synchronous")
        if synchronous:
            driver.execute(f"PRAGMA synchronous={synchronous}")
        driver.execute("BEGIN IMMEDIATE" if options.get("begin") == "IMMEDIATE" else "BEGIN")

    return engine


def _use_wal(dbapi_connection) -> None:
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
