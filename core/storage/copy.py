"""Copies every table of one database into another, empty one (``python -m core migrate``).

The source is only read: it must already be at the newest schema (any command run
against it upgrades it), so that both sides have the same tables. The target's
schema is made by the same migrations; then every row is copied inside one write
transaction of the target, so a copy killed at any moment leaves the target as
empty as it was, and a rerun starts over. Ids are copied as they are, and
PostgreSQL's sequences are moved past them.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Table, func, select, text

from core.errors import InvalidInput
from core.storage import migrations, schema
from core.storage.database import Database

COPY_BATCH_ROWS = 2000
# Every table but the schema's own history, which the target's migrations write.
TABLES: tuple[Table, ...] = tuple(t for t in schema.metadata.sorted_tables
                                  if t.name != schema.schema_version.name)

CopyProgress = Callable[[str, int, int], None]  # table, rows copied, rows in the table


def row_counts(database: Database) -> dict[str, int]:
    """Rows per table (none while the database does not exist)."""
    if not database.exists():
        return {table.name: 0 for table in TABLES}
    with database.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in TABLES}


def copy_database(source: Database, target: Database,
                  on_progress: CopyProgress | None = None) -> dict[str, int]:
    """Copies every row of ``source`` into the empty ``target``; returns rows per table."""
    if not source.exists():
        raise InvalidInput(f"the source database {source.describe()} does not exist. To fix "
                           "this, point MODEL_REGISTRY_DIR or DATABASE_URL at the registry to "
                           "copy.")
    with source.connect() as conn:
        if not migrations.is_current(conn):
            raise InvalidInput(
                f"the source database {source.describe()} has an older schema. To fix this, "
                "run any command against it first (e.g. 'python -m core versions'), which "
                "upgrades it, then migrate.")
    counts = row_counts(source)
    target.ensure_schema()
    with source.connect() as reading, target.write() as writing:
        filled = {t.name for t in TABLES
                  if writing.execute(select(1).select_from(t).limit(1)).first() is not None}
        if filled:
            raise InvalidInput(
                f"the target database {target.describe()} already holds rows (in "
                f"{', '.join(sorted(filled))}). To fix this, migrate into a new, empty "
                "database (e.g. createdb registry2).")
        for table in TABLES:
            _copy_table(table, reading, writing, counts[table.name], on_progress)
        if target.dialect == "postgresql":
            _move_sequences(writing)
    return counts


def _copy_table(table: Table, reading: Connection, writing: Connection, total: int,
                on_progress: CopyProgress | None) -> None:
    done = 0
    if on_progress:
        on_progress(table.name, done, total)
    ordered = select(table).order_by(*table.primary_key.columns)
    result = reading.execution_options(stream_results=True,
                                       yield_per=COPY_BATCH_ROWS).execute(ordered)
    for rows in result.partitions():
        writing.execute(table.insert(), [dict(row._mapping) for row in rows])
        done += len(rows)
        if on_progress:
            on_progress(table.name, done, total)


def _move_sequences(conn: Connection) -> None:
    """Copied ids were given explicitly; the next id a sequence hands out must follow
    them, or the first new row would collide with a copied one."""
    for table in TABLES:
        key = list(table.primary_key.columns)
        if len(key) != 1 or key[0].autoincrement is not True:
            continue
        column = key[0].name
        conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
            f"COALESCE((SELECT MAX({column}) FROM {table.name}), 1), "
            f"(SELECT MAX({column}) FROM {table.name}) IS NOT NULL)"))
