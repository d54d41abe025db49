"""The schema's path: a database made by release 1 is upgraded in place and nothing is lost."""

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.audit import AuditEntry, AuditLog
from core.errors import InvalidInput
from core.governance.users import UserStore
from core.jobs.records import JobStore
from core.monitoring.logged_images import LoggedImages
from core.monitoring.sql_prediction_log import SQLPredictionLog
from core.registry.artifacts import LocalArtifactStore
from core.registry.catalog import SQLCatalog
from core.storage import migrations
from core.storage.database import PostgresDatabase, SQLiteDatabase
from tests.conftest import PROJECT_ROOT
from tests.log_rows import record
from tests.storage.release_1 import RELEASE_1_COMPARISON, RELEASE_1_METADATA, release_1_database

# A version's metadata as release 1 stored it (versions.metadata and metadata.json).
# A comparison as release 1 stored it (JSON text in comparisons.result).


def test_a_release_1_database_is_upgraded_and_keeps_every_row(tmp_path):
    path = tmp_path / "registry.db"
    release_1_database(path)
    database = SQLiteDatabase(f"sqlite:///{path}")
    audit_log = AuditLog(database)
    catalog = SQLCatalog(database, audit_log)
    # The first use upgrades it (steps 1 and 2), then every store finds its rows.
    (version,) = catalog.search_model_versions("classifier")
    assert (version.version, version.status, version.class_names) == (1, "champion", ["a", "b"])
    assert version.metadata.as_dict() == RELEASE_1_METADATA  # read back exactly as stored
    comparison = catalog.find_comparison("classifier", 1, 2)
    assert comparison.as_dict() == RELEASE_1_COMPARISON  # the stored shape reads as it was
    assert comparison.recommendation == "review" and comparison.holdouts["clean"].n == 4
    assert [u.name for u in UserStore(database, "classifier").list_users()] == ["ann"]
    (job,) = JobStore(database, "classifier").list_jobs()
    assert (job.status, job.params, job.progress) == ("queued", {"epochs": 1}, {})
    log = SQLPredictionLog(database, LoggedImages(LocalArtifactStore(tmp_path)))
    assert log.count("classifier") == 3
    old_rows = log.window("classifier", 1)
    np.testing.assert_allclose(old_rows.probabilities[0], [0.2, 0.8])
    assert np.isnan(old_rows.ood_scores).all()  # logged before there were OOD scores
    # Images logged before step 13 stay in their rows; new ones go beside the log.
    (new_id,) = log.append([record(1, model="classifier")])
    assert log.images("classifier", [1, new_id]) == [(b"png", -1), (b"png-1", -1)]
    assert len(LoggedImages(LocalArtifactStore(tmp_path)).packs("classifier")) == 1
    verification = audit_log.verify()
    assert verification.ok and verification.entries == 3, verification.problem
    assert [change.version for change in catalog.get_status_history("classifier")] == [1]
    recorded = database.read("SELECT version FROM schema_version ORDER BY version")
    assert [v for (v,) in recorded] == [m.version for m in migrations.MIGRATIONS]
    indexes = {name for (name,) in database.read(
        "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"predictions_by_version", "predictions_by_time", "one_champion_per_model"} <= indexes
    # The upgraded database takes new writes; the chain goes on from release 1's head.
    audit_log.append_alone(AuditEntry(at="2026-01-02T00:00:00", actor="ann", role="admin",
                                      action="login", outcome="done", model="classifier",
                                      target="user ann"))
    assert audit_log.verify().ok and audit_log.verify().entries == 4
    # Release 1's protections survive the upgrade.
    with sqlite3.connect(path) as raw, pytest.raises(sqlite3.IntegrityError,
                                                      match="append-only"):
        raw.execute("DELETE FROM audit_log")


def test_a_new_database_gets_every_step_once(tmp_path):
    database = SQLiteDatabase(f"sqlite:///{tmp_path / 'registry.db'}")
    assert database.read("SELECT 1") == [] and not database.exists()  # reads create nothing
    database.ensure_schema()
    with database.write() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        assert migrations.upgrade(conn) == []  # nothing left to apply


UPGRADER = textwrap.dedent("""
    import sys
    from core.storage.database import SQLiteDatabase
    SQLiteDatabase(f"sqlite:///{sys.argv[1]}").ensure_schema()
""")


def test_processes_upgrading_at_once_apply_each_step_once(tmp_path):
    path = tmp_path / "registry.db"
    release_1_database(path)
    processes = [subprocess.Popen([sys.executable, "-c", UPGRADER, str(path)], cwd=PROJECT_ROOT)
                 for _ in range(3)]
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    rows = SQLiteDatabase(f"sqlite:///{path}").read("SELECT version FROM schema_version")
    assert sorted(v for (v,) in rows) == [m.version for m in migrations.MIGRATIONS]


@pytest.mark.parametrize("url", ["postgresql://db/registry", "mysql://x", "sqlite://", "::"])
def test_unsupported_database_urls_are_refused_clearly(url):
    with pytest.raises(InvalidInput, match="To fix this"):
        SQLiteDatabase(url)


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql://host", "mysql://x/db"])
def test_unsupported_postgresql_urls_are_refused_clearly(url):
    with pytest.raises(InvalidInput, match="To fix this"):
        PostgresDatabase(url)


def database_at_step(path: Path, step: int) -> SQLiteDatabase:
    """A new database whose schema stops at ``step`` (as that release left it)."""
    database = SQLiteDatabase(f"sqlite:///{path}")
    database._prepare()
    with database.engine.begin() as conn:
        from core.storage import schema

        schema.schema_version.create(conn)
        for migration in migrations.MIGRATIONS[:step]:
            migration.apply(conn)
            conn.execute(schema.schema_version.insert().values(
                version=migration.version, description=migration.description,
                applied_at="2026-01-01T00:00:00"))
    return database


def test_step_7_pairs_old_shadow_rows_only_where_certain(tmp_path):
    path = tmp_path / "registry.db"
    database_at_step(path, 6).dispose()
    db = sqlite3.connect(path)
    rows = [("single", "champion", 1), ("single", "shadow", 2),  # one instance: certain
            ("multi", "champion", 1), ("multi", "champion", 1),  # two instances: which
            ("multi", "shadow", 2), ("multi", "shadow", 2)]  # shadow row is whose?
    for request_id, variant, version in rows:
        db.execute("INSERT INTO predictions (at, model, version, source, predicted, label, "
                   "confidence, probabilities, latency_ms, brightness, contrast, sharpness, "
                   "width, height, embedding, pixels, request_id, variant) VALUES "
                   "('2026-01-01T00:00:00.000+00:00', 'classifier', ?, 'api', 0, 'a', 0.9, "
                   "x'00', 1, 0.5, 0.2, 0.01, 28, 28, x'00', x'00', ?, ?)",
                   (version, request_id, variant))
    db.commit()
    db.close()
    log = SQLPredictionLog(SQLiteDatabase(f"sqlite:///{path}"),
                           LoggedImages(LocalArtifactStore(tmp_path)))
    pairs = log.shadow_pairs("classifier", 1, 2)  # the first read upgrades to step 7
    assert pairs[:, :2].tolist() == [[1, 2]]
    assert len(log.api_requests("classifier", "2000")) == 4  # per request and variant


def test_step_15_lets_keys_be_devices_and_keeps_every_key(tmp_path):
    from core.audit import Actor
    from core.governance.keys import KeyStore

    path = tmp_path / "registry.db"
    database = SQLiteDatabase(f"sqlite:///{path}")
    database.ensure_schema()
    with sqlite3.connect(path) as raw:  # the table as steps 3-14 made it
        raw.execute("DROP TABLE api_keys")
        raw.execute("CREATE TABLE api_keys (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
                    "key_hash TEXT NOT NULL UNIQUE, rate_limit FLOAT, created_at TEXT NOT "
                    "NULL, created_by TEXT NOT NULL, revoked_at TEXT, revoked_by TEXT, "
                    "CONSTRAINT api_keys_role CHECK (role IN ('viewer', 'operator', "
                    "'reviewer', 'admin')))")
        raw.execute("INSERT INTO api_keys VALUES ('batch', 'viewer', 'h1', 5.0, 't', 'ann', "
                    "NULL, NULL)")
        raw.execute("DELETE FROM schema_version WHERE version >= 15")
    database = SQLiteDatabase(f"sqlite:///{path}")  # a new process: it upgrades
    keys = KeyStore(database, "classifier")
    keys.create("phone", "device", None, actor=Actor("ann", "admin"), at="t2")
    assert [(k.name, k.role, k.rate_limit) for k in keys.list_keys()] == [
        ("batch", "viewer", 5.0), ("phone", "device", None)]
    with sqlite3.connect(path) as raw, pytest.raises(sqlite3.IntegrityError, match="role"):
        raw.execute("UPDATE api_keys SET role = 'root' WHERE name = 'batch'")
