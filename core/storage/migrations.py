"""The schema's history: numbered steps, each applied once, recorded in ``schema_version``.

A database made by any earlier release is brought to the newest schema by
``upgrade``, inside the caller's write transaction (DDL is transactional on
SQLite and PostgreSQL), so a process killed mid-upgrade leaves the old schema
intact. Release 1 (before this module) created its tables with ``CREATE TABLE IF
NOT EXISTS`` on every write; step 1 is that schema, so such a database is adopted
as it is. To change the schema, append a step; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import DatabaseError

from core.storage import schema


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _landed_schema(conn: Connection) -> None:
    """Step 1: the tables of the first release (created only where missing)."""
    tables = [schema.versions, schema.comparisons, schema.audit_log, schema.audit_head,
              schema.users, schema.jobs, schema.predictions]
    schema.metadata.create_all(conn, tables=tables, checkfirst=True)
    _append_only_audit_log(conn)


def _append_only_audit_log(conn: Connection) -> None:
    """The database itself refuses to update or delete audit entries."""
    if conn.dialect.name == "postgresql":
        # One statement-level trigger also covers TRUNCATE, which row triggers miss.
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; "
            "END $$")
        conn.exec_driver_sql(
            "CREATE TRIGGER audit_log_is_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only()")
        return
    for event in ("update", "delete"):
        conn.exec_driver_sql(
            f"CREATE TRIGGER IF NOT EXISTS audit_log_is_append_only_{event} BEFORE "
            f"{event.upper()} ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is "
            "append-only'); END;")


def _predictions_by_time(conn: Connection) -> None:
    """Step 2: windows by time (``drift --since/--until``) read an index, not the table."""
    # Plain DDL: an Index object would attach itself to the shared table metadata,
    # and step 1 would then create it too.
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS predictions_by_time "
                         "ON predictions (model, version, at)")


def _api_traffic(conn: Connection) -> None:
    """Step 3: the serving API's traffic (request ids, clients, variants, failures),
    API keys and traffic policies."""
    present = {column["name"] for column in inspect(conn).get_columns("predictions")}
    for column in ("request_id", "client", "variant"):
        if column not in present:
            conn.exec_driver_sql(f"ALTER TABLE predictions ADD COLUMN {column} TEXT")
    schema.metadata.create_all(conn, tables=[schema.request_failures, schema.api_keys,
                                             schema.traffic_policies], checkfirst=True)
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS request_failures_by_time "
                         "ON request_failures (model, at)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS predictions_by_model_time "
                         "ON predictions (model, at)")


def _monitoring(conn: Connection) -> None:
    """Step 4: monitoring snapshots, the monitor's progress, alerts (channels, rule
    overrides, episodes, deliveries and their attempts); shadow pairs found by request."""
    schema.metadata.create_all(conn, tables=[
        schema.monitor_snapshots, schema.monitor_cursors, schema.alert_channels,
        schema.alert_rules, schema.alert_episodes, schema.alert_deliveries,
        schema.alert_attempts], checkfirst=True)
    # At most one open episode per rule and subject, enforced by the database.
    conn.exec_driver_sql("CREATE UNIQUE INDEX IF NOT EXISTS one_open_episode ON "
                         "alert_episodes (model, rule, subject) WHERE resolved_at IS NULL")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS alert_deliveries_due ON "
                         "alert_deliveries (status, next_attempt_at)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS predictions_by_request ON "
                         "predictions (request_id) WHERE request_id IS NOT NULL")


def _job_runners(conn: Connection) -> None:
    """Step 5: where a job's worker runs (``ray:<submission id>`` for a job on a Ray
    cluster; empty: a local process, known by its pid)."""
    present = {column["name"] for column in inspect(conn).get_columns("jobs")}
    if "runner" not in present:
        conn.exec_driver_sql("ALTER TABLE jobs ADD COLUMN runner TEXT")


def _ood_scores(conn: Connection) -> None:
    """Step 6: each prediction's out-of-distribution score (``core.ml.ood``)."""
    present = {column["name"] for column in inspect(conn).get_columns("predictions")}
    if "ood_score" not in present:
        conn.exec_driver_sql("ALTER TABLE predictions ADD COLUMN ood_score DOUBLE PRECISION")


def _instance_pairs(conn: Connection) -> None:
    """Step 7: shadow pairs join on the server's own request id and the instance's place
    in the request, not on the client-chosen request id (one 15-instance request made
    225 "pairs"). Older rows get both only where that is certain: their request id has
    one row per variant (a single-instance request); the rest stay unpaired."""
    present = {column["name"] for column in inspect(conn).get_columns("predictions")}
    if "server_request_id" not in present:
        conn.exec_driver_sql("ALTER TABLE predictions ADD COLUMN server_request_id TEXT")
    if "instance" not in present:
        conn.exec_driver_sql("ALTER TABLE predictions ADD COLUMN instance INTEGER")
    conn.exec_driver_sql(
        "UPDATE predictions SET server_request_id = request_id, instance = 0 WHERE "
        "request_id IN (SELECT request_id FROM predictions WHERE request_id IS NOT NULL "
        "GROUP BY request_id HAVING COUNT(*) = COUNT(DISTINCT COALESCE(variant, '')))")
    conn.exec_driver_sql("DROP INDEX IF EXISTS predictions_by_request")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS predictions_by_server_request ON "
                         "predictions (server_request_id, instance) WHERE server_request_id "
                         "IS NOT NULL")


def _redacted_channels(conn: Connection) -> None:
    """Step 8: channels' targets are shown redacted with a fingerprint, never whole (a
    Slack webhook URL is itself a secret); earlier rows get both from their target."""
    from core.storage.secrets import fingerprint, redact

    present = {column["name"] for column in inspect(conn).get_columns("alert_channels")}
    for column in ("target_shown", "target_fingerprint"):
        if column not in present:
            conn.exec_driver_sql(f"ALTER TABLE alert_channels ADD COLUMN {column} TEXT "
                                 "NOT NULL DEFAULT ''")
    rows = conn.exec_driver_sql("SELECT model, name, target FROM alert_channels WHERE "
                                "target_shown = ''").all()
    for model, name, target in rows:
        conn.execute(schema.alert_channels.update().where(
            schema.alert_channels.c.model == model, schema.alert_channels.c.name == name
        ).values(target_shown=redact(target), target_fingerprint=fingerprint(target)))


def _monitor_problems(conn: Connection) -> None:
    """Step 9: what failed in the monitor's last pass (each item on its own)."""
    schema.metadata.create_all(conn, tables=[schema.monitor_problems], checkfirst=True)


def _accounts(conn: Connection) -> None:
    """Step 10: accounts an admin disabled, and failed sign-ins per client address for
    exponential back-off (replacing the lockout per user name, which anyone could
    trigger for anyone)."""
    present = {column["name"] for column in inspect(conn).get_columns("users")}
    for column in ("disabled_at", "disabled_by"):
        if column not in present:
            conn.exec_driver_sql(f"ALTER TABLE users ADD COLUMN {column} TEXT")
    schema.metadata.create_all(conn, tables=[schema.sign_in_failures], checkfirst=True)


def _labels(conn: Connection) -> None:
    """Step 11: labels with who gave them and when; a visitor's only a suggestion."""
    schema.metadata.create_all(conn, tables=[schema.labels], checkfirst=True)
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS labels_by_prediction ON labels "
                         "(model, prediction)")


def _keyed_audit_chain(conn: Connection) -> None:
    """Step 12: an audit entry may be chained with HMAC-SHA256 under AUDIT_KEY; entries
    written before keep their plain SHA-256 (hash_scheme NULL) and keep verifying."""
    present = {column["name"] for column in inspect(conn).get_columns("audit_log")}
    if "hash_scheme" not in present:
        conn.exec_driver_sql("ALTER TABLE audit_log ADD COLUMN hash_scheme TEXT")


def _logged_images_beside(conn: Connection) -> None:
    """Step 13: logged images are kept in the artifact store, the row refers to them;
    older rows keep theirs in ``pixels``. Retention finds a pack's rows by the index."""
    present = {column["name"] for column in inspect(conn).get_columns("predictions")}
    for column, kind in (("image_pack", "TEXT"), ("image_offset", "BIGINT"),
                         ("image_length", "INTEGER")):
        if column not in present:
            conn.exec_driver_sql(f"ALTER TABLE predictions ADD COLUMN {column} {kind}")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS predictions_by_image_pack ON "
                         "predictions (image_pack) WHERE image_pack IS NOT NULL")


def _device_predictions(conn: Connection) -> None:
    """Step 14: a phone's predictions, synced later, are logged once per device and client
    id however often a batch is retried (the sync checks first; this is the guarantee)."""
    conn.exec_driver_sql("CREATE UNIQUE INDEX IF NOT EXISTS predictions_from_devices ON "
                         "predictions (client, request_id) WHERE source = 'device'")


def _device_keys(conn: Connection) -> None:
    """Step 15: a key's role may be ``device`` (a phone's). SQLite cannot change a CHECK
    constraint: the table is rebuilt with the new one, in the upgrade's transaction."""
    allowed = "role IN ('viewer', 'operator', 'reviewer', 'admin', 'device')"
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role")
        conn.exec_driver_sql(f"ALTER TABLE api_keys ADD CONSTRAINT api_keys_role CHECK ({allowed})")
        return
    conn.exec_driver_sql("ALTER TABLE api_keys RENAME TO api_keys_before_devices")
    schema.metadata.create_all(conn, tables=[schema.api_keys])
    conn.exec_driver_sql("INSERT INTO api_keys SELECT name, role, key_hash, rate_limit, "
                         "created_at, created_by, revoked_at, revoked_by FROM "
                         "api_keys_before_devices")
    conn.exec_driver_sql("DROP TABLE api_keys_before_devices")


def _trace_ids(conn: Connection) -> None:
    """Step 16: each API request's rows name its OpenTelemetry trace."""
    for table in ("predictions", "request_failures"):
        if "trace_id" not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN trace_id TEXT")


MIGRATIONS = (
    Migration(1, "the first release's tables (catalog, audit log, users, jobs, predictions)",
              _landed_schema),
    Migration(2, "index predictions by model, version and time", _predictions_by_time),
    Migration(3, "API traffic: request ids, clients, variants, failed requests, API keys, "
                 "traffic policies", _api_traffic),
    Migration(4, "monitoring snapshots and alerts", _monitoring),
    Migration(5, "where each job's worker runs", _job_runners),
    Migration(6, "each prediction's out-of-distribution score", _ood_scores),
    Migration(7, "shadow pairs by the server's request id and instance", _instance_pairs),
    Migration(8, "alert channels' targets shown redacted", _redacted_channels),
    Migration(9, "what failed in the monitor's last pass", _monitor_problems),
    Migration(10, "disabled accounts; sign-in back-off per client", _accounts),
    Migration(11, "labels with provenance; visitors' labels as suggestions", _labels),
    Migration(12, "audit entries chained under AUDIT_KEY", _keyed_audit_chain),
    Migration(13, "logged images kept beside the prediction log", _logged_images_beside),
    Migration(14, "predictions synced from devices, once each", _device_predictions),
    Migration(15, "keys for devices (phones)", _device_keys),
    Migration(16, "the trace of each API request's rows", _trace_ids),
)
LATEST = MIGRATIONS[-1].version


def is_current(conn: Connection) -> bool:
    """Whether the database records the newest schema (one cheap query, no lock)."""
    try:
        recorded = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
    except DatabaseError:  # no schema_version table yet: release 1, or being created
        return False
    return recorded == LATEST


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0: none recorded yet)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    recorded = conn.execute(select(schema.schema_version.c.version)).scalars().all()
    return max(recorded, default=0)


def upgrade(conn: Connection) -> list[int]:
    """Applies every step newer than the recorded version; returns the steps applied.

    The caller holds a write transaction, so two processes upgrading at once
    apply each step once: the second finds it recorded.
    """
    schema.schema_version.create(conn, checkfirst=True)
    done = current_version(conn)
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= done:
            continue
        migration.apply(conn)
        conn.execute(schema.schema_version.insert().values(
            version=migration.version, description=migration.description,
            applied_at=datetime.now(UTC).isoformat(timespec="seconds")))
        applied.append(migration.version)
    return applied
