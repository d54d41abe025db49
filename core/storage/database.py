"""One database for the catalog, audit log, users, prediction log and jobs.

SQLAlchemy Core runs the same statements on every database it supports; the
embedded default is one SQLite file in WAL mode, and a team's servers share one
PostgreSQL database. The contract every store relies on, written down where it
is implemented, and kept by both:

- ``write()`` yields a connection inside a transaction in which read-then-write
  sequences cannot interleave with another writer. It commits on success and
  rolls back on any error. A change and its audit entry go through the same
  connection, so both commit or neither does. Writers take turns: SQLite's
  ``BEGIN IMMEDIATE`` takes the file's write lock up front; on PostgreSQL every
  write transaction first takes one transaction-scoped advisory lock. Readers
  never wait for writers on either. Taking turns also keeps two promises the
  stores build on: ids handed out by the database grow in commit order (the
  monitor reads the log "up to the newest id seen"), and the audit chain has one
  head.
- A writer waits for its turn at most ``wait`` seconds (default a minute; the
  prediction log's writes, which requests wait on, much less). Past it, and when the
  disk is full, the write fails as one of core's errors: ``Overloaded`` ("retry in a
  moment", HTTP 503 with ``Retry-After``) or ``StorageUnavailable`` naming the fix,
  never a driver's exception. Nothing of a failed transaction is kept.
- ``read()`` never creates anything: reading a registry that does not exist yet
  leaves the disk (or the server) untouched and finds no rows.
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

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import QueuePool

from core.errors import CoreError, InvalidInput, Overloaded, StorageUnavailable

BUSY_TIMEOUT_SECONDS = 60
SYNCHRONOUS = ("FULL", "NORMAL")
# The key of PostgreSQL's advisory lock that write transactions take in turn
# (any constant; "mlops" in ASCII, so it is recognisable in pg_locks).
WRITE_LOCK_KEY = 0x6D6C6F7073


class Database:
    """A database URL's engine and the transaction contract above.

    Subclasses say how one engine keeps the contract; stores only see this class.
    """

    unreachable_fix = "correct DATABASE_URL"

    def __init__(self, url: URL, audit_key: str = ""):
        self.url = url
        # The key of the audit chain's HMAC (AUDIT_KEY): it travels with every write
        # transaction, where audit entries are appended (core.audit).
        self.audit_key = audit_key
        self._engine: Engine | None = None
        self._schema_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def describe(self) -> str:
        """The URL without its password, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def dispose(self) -> None:
        """Closes the pooled connections (a process that is done with the database)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # --- what each engine says ---------------------------------------------------------

    def _create_engine(self) -> Engine:
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the registry's database has been created (it has tables)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Once, before the schema is first created: what the engine needs set up."""

    def _take_write_turn(self, conn: Connection, wait: float) -> None:
        """Inside a new write transaction: wait up to ``wait`` s for this writer's turn."""

    def _failure(self, error: Exception, wait: float) -> CoreError | None:
        """The error a failed write means to a user (None: a fault of ours, re-raised)."""
        driver_error = getattr(error, "orig", None) or error
        reason = (str(driver_error).strip().splitlines() or [type(driver_error).__name__])[0]
        if self._is_busy(driver_error):
            return Overloaded(f"the database is busy: another writer has held it for over "
                              f"{wait:g} s ({reason}). To fix this, retry in a moment.",
                              retry_after=1)
        if self._is_full(driver_error):
            return StorageUnavailable(f"the disk holding the database {self.describe()} is "
                                      f"full ({reason}); nothing was written. To fix this, "
                                      "free space on it (PREDICTION_LOG_RETENTION_DAYS keeps "
                                      "the prediction log from growing without end).")
        return None

    def _is_busy(self, error: Exception) -> bool:
        """Whether the driver's ``error`` says another writer held the lock too long."""
        raise NotImplementedError

    def _is_full(self, error: Exception) -> bool:
        """Whether the driver's ``error`` says the disk is full."""
        raise NotImplementedError

    # --- the contract --------------------------------------------------------------------

    def connect(self, **options: Any) -> Connection:
        """A pooled connection; an unreachable server gives one clear error."""
        try:
            return self.engine.connect().execution_options(**options)
        except OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise StorageUnavailable(f"cannot reach the database {self.describe()} "
                                     f"({reason}). To fix this, {self.unreachable_fix}.") from None

    def ensure_schema(self) -> None:
        """Creates or upgrades the schema (once per process; cheap afterwards)."""
        if self._schema_ready:
            return
        from core.storage import migrations

        # The common case, a database already at the newest schema, takes no write lock.
        if self.exists():
            with self.connect() as conn:
                self._schema_ready = migrations.is_current(conn)
        if self._schema_ready:
            return
        self._prepare()
        with self.connect(begin="IMMEDIATE") as conn:
            with conn.begin():
                self._take_write_turn(conn, BUSY_TIMEOUT_SECONDS)
                migrations.upgrade(conn)
        self._schema_ready = True

    @contextmanager
    def write(self, synchronous: str = "FULL", wait: float = BUSY_TIMEOUT_SECONDS
              ) -> Iterator[Connection]:
        """A connection inside a write transaction (see the module's contract).

        Args:
            wait: the most seconds to wait for another writer's turn to end; then
                ``Overloaded``.
            synchronous: ``FULL`` survives a power cut; ``NORMAL`` survives a killed
                process (committed pages are in the OS) but not a power cut. Frequent
                writes such as predictions use NORMAL on SQLite; decisions keep FULL.
                PostgreSQL always commits durably (group commit makes it cheap, and
                its asynchronous commit would lose answered requests if the server
                process crashed).
        """
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.ensure_schema()
        try:
            with self.connect(begin="IMMEDIATE", synchronous=synchronous, wait=wait,
                              audit_key=self.audit_key) as conn:
                with conn.begin():
                    self._take_write_turn(conn, wait)
                    yield conn
        # sqlite3's own error where BEGIN IMMEDIATE runs in the "begin" hook (below).
        except (OperationalError, sqlite3.OperationalError) as error:
            failure = self._failure(error, wait)
            if failure is None:
                raise
            raise failure from None

    def read(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows of one query, as tuples; none while the database does not exist."""
        if not self.exists():
            return []
        self.ensure_schema()
        with self.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]


class SQLiteDatabase(Database):
    """One file, ``sqlite:///<path>/registry.db``, in WAL mode."""

    unreachable_fix = ("make the registry folder writable, or correct MODEL_REGISTRY_DIR or "
                       "DATABASE_URL")

    def __init__(self, url: str, audit_key: str = ""):
        parsed = _parse(url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database:
            raise InvalidInput(f"unsupported database URL {url!r}. To fix this, use "
                               "sqlite:///<path to registry.db>.")
        super().__init__(parsed, audit_key)
        self.path = Path(parsed.database)

    def exists(self) -> bool:
        return self.path.exists()

    def _is_busy(self, error: Exception) -> bool:
        return "locked" in str(error) or "busy" in str(error)

    def _is_full(self, error: Exception) -> bool:
        return "full" in str(error)

    def _prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.engine.raw_connection()
        try:
            _use_wal(raw.driver_connection)  # persistent: once per database
        finally:
            raw.close()

    def _create_engine(self) -> Engine:
        # Connections are pooled. Opening one per operation cost more than the write:
        # closing the last connection to a WAL database checkpoints the log into the
        # file (~0.6 ms), and SQLAlchemy's set-up per connection adds more. Pooled, a
        # prediction row commits in ~0.2 ms. The log is checkpointed every 1000 pages
        # instead, and when the last process closes; a registry in use has its -wal and
        # -shm files beside it.
        engine = create_engine(f"sqlite:///{self.path}", poolclass=QueuePool, pool_size=5,
                               max_overflow=20,
                               connect_args={"timeout": BUSY_TIMEOUT_SECONDS,
                                             "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Transactions are begun below, not by the sqlite3 module's own guesswork.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def on_begin(conn: Any) -> None:  # a Connection; its driver's is sqlite3's
            # Straight to the driver: these two statements run on every write, and
            # SQLAlchemy's execution path would double their cost.
            options = conn.get_execution_options()
            driver = conn.connection.driver_connection
            synchronous = options.get("synchronous")
            if synchronous:
                driver.execute(f"PRAGMA synchronous={synchronous}")
            # How long BEGIN IMMEDIATE waits for another writer (the connection's own
            # timeout otherwise): set on every write, since connections are pooled.
            wait = options.get("wait", BUSY_TIMEOUT_SECONDS)
            driver.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            driver.execute("BEGIN IMMEDIATE" if options.get("begin") == "IMMEDIATE"
                           else "BEGIN")

        return engine


class PostgresDatabase(Database):
    """A PostgreSQL database, ``postgresql://USER[:PASSWORD]@HOST:PORT/DB``, shared by
    every dashboard, API server, monitor and worker. The password comes from the URL or
    ``PGPASSWORD`` (libpq reads it); the database itself must exist (``createdb``)."""

    unreachable_fix = "start the PostgreSQL server, or correct DATABASE_URL (and PGPASSWORD)"

    def __init__(self, url: str, audit_key: str = ""):
        parsed = _parse(url)
        if parsed.get_backend_name() != "postgresql" or not parsed.database:
            raise InvalidInput(f"unsupported database URL {url!r}. To fix this, use "
                               "postgresql://USER@HOST:PORT/DATABASE.")
        # psycopg (3) is the driver we install and test, whatever the URL names.
        super().__init__(parsed.set(drivername="postgresql+psycopg"), audit_key)
        self._exists = False

    def exists(self) -> bool:
        if not self._exists:
            with self.connect() as conn:
                self._exists = inspect(conn).has_table("schema_version")
        return self._exists

    def _prepare(self) -> None:
        self._exists = True  # about to create the schema

    def _take_write_turn(self, conn: Connection, wait: float) -> None:
        # lock_timeout bounds the wait for the advisory lock (and any row lock after it).
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait * 1000)}")
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    def _is_busy(self, error: Exception) -> bool:
        return getattr(error, "sqlstate", None) in ("55P03", "40P01")  # lock timeout

    def _is_full(self, error: Exception) -> bool:
        return getattr(error, "sqlstate", None) == "53100"  # disk_full

    def _create_engine(self) -> Engine:
        # pre_ping: a pooled connection that died with a restarted server is replaced
        # instead of failing the next request (one round trip per checkout, ~0.1 ms).
        return create_engine(self.url, poolclass=QueuePool, pool_size=5, max_overflow=20,
                             pool_pre_ping=True,
                             connect_args={"connect_timeout": 10,
                                           "application_name": "image-model-ops"})


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise InvalidInput(f"DATABASE_URL {url!r} is not a database URL. To fix this, use "
                           "sqlite:///<path to registry.db> or "
                           "postgresql://USER@HOST:PORT/DATABASE.") from None


def _use_wal(dbapi_connection: Any) -> None:
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
