"""PostgreSQL as the registry's database: the schema's steps, concurrent upgraders,
a server that cannot be reached, and moving a registry there (``migrate``).

The stores' own contract suites (registry, governance, prediction log, jobs, alerts,
snapshots) run on PostgreSQL too; these are the parts only PostgreSQL has.
"""

import json
import subprocess
import sys
import textwrap
import uuid

import pytest
from sqlalchemy.exc import DBAPIError

from core.app import build_backends, migrate_registry
from core.errors import InvalidInput, StorageUnavailable
from core.storage import migrations
from core.storage.copy import row_counts
from core.storage.database import PostgresDatabase
from tests.cli_runner import run_cli, snapshot
from tests.conftest import PROJECT_ROOT, backends_of
from tests.log_rows import record


def new_database(postgres) -> str:
    return postgres.create_database(f"t{uuid.uuid4().hex[:16]}")


UPGRADER = textwrap.dedent("""
    import sys
    from core.storage.database import PostgresDatabase
    PostgresDatabase(sys.argv[1]).ensure_schema()
""")


def test_processes_creating_the_schema_at_once_apply_each_step_once(postgres):
    url = new_database(postgres)
    processes = [subprocess.Popen([sys.executable, "-c", UPGRADER, url], cwd=PROJECT_ROOT)
                 for _ in range(3)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    database = PostgresDatabase(url)
    rows = database.read("SELECT version FROM schema_version")
    assert sorted(v for (v,) in rows) == [m.version for m in migrations.MIGRATIONS]
    with database.write() as conn:
        assert migrations.upgrade(conn) == []


def test_reads_of_a_new_database_create_nothing(postgres):
    database = PostgresDatabase(new_database(postgres))
    assert database.read("SELECT 1") == [] and not database.exists()
    assert PostgresDatabase(database.url.render_as_string(hide_password=False)).read(
        "SELECT 1") == []


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    from tests.servers import free_port

    database = PostgresDatabase(f"postgresql://nobody@127.0.0.1:{free_port()}/registry")
    with pytest.raises(StorageUnavailable) as error:
        database.read("SELECT 1")
    message = str(error.value)
    assert "cannot reach the database" in message and "To fix this" in message
    assert "start the PostgreSQL server" in message


def test_the_audit_log_refuses_truncate_too(postgres, registry_copy):
    url = new_database(postgres)
    migrate_registry(backends_of(registry_copy), to_url=url)
    database = PostgresDatabase(url)
    with database.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        with conn.begin():
            conn.exec_driver_sql("TRUNCATE audit_log")
    assert database.read("SELECT COUNT(*) FROM audit_log") == [(6,)]


def test_migrate_copies_every_row_leaves_the_source_alone_and_verifies(
        postgres, candidate_copy):
    before = snapshot(candidate_copy.registry_dir)
    url = new_database(postgres)
    result = run_cli(candidate_copy.registry_dir, "migrate", "--to", url, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    source = backends_of(candidate_copy)
    assert summary["rows"] == row_counts(source.database)
    assert summary["rows"]["predictions"] >= 300 and summary["rows"]["versions"] == 2
    assert summary["audit"]["ok"] and summary["audit"]["entries"] > 6
    assert snapshot(candidate_copy.registry_dir) == before  # the source is only read
    # The copy is a working registry: same versions, statuses and chain; new rows follow
    # the copied ids (PostgreSQL's sequences were moved past them).
    copy = build_backends(candidate_copy.with_overrides(database_url=url))
    assert [(v.version, v.status) for v in copy.registry.list_versions()] == \
        [(v.version, v.status) for v in source.registry.list_versions()]
    assert copy.audit_log.verify().head_hash == source.audit_log.verify().head_hash
    highest = copy.database.read("SELECT MAX(id) FROM predictions")[0][0]
    (new_id,) = copy.prediction_log.append([record(1)])
    assert new_id == highest + 1


def test_migrate_refuses_a_target_with_rows_and_its_own_database(postgres, registry_copy):
    url = new_database(postgres)
    migrate_registry(backends_of(registry_copy), to_url=url)
    with pytest.raises(InvalidInput, match="already holds rows"):
        migrate_registry(backends_of(registry_copy), to_url=url)
    own = registry_copy.effective_database_url
    with pytest.raises(InvalidInput, match="own database"):
        migrate_registry(backends_of(registry_copy), to_url=own)


def test_migrate_to_postgresql_and_s3_then_serve_from_the_bucket(postgres, s3, request,
                                                                 registry_copy, tmp_path):
    from core.app import predict_image
    from core.ml.images import encode_png
    from tests.conftest import FIXED_NOW, fashion_test_images, new_bucket

    url, bucket = new_database(postgres), new_bucket(request)
    images, _ = fashion_test_images(2)
    before, _ = predict_image(backends_of(registry_copy), encode_png(images[1]),
                              actor="anonymous", source="cli", now=FIXED_NOW)
    logged = backends_of(registry_copy).prediction_log.images("classifier", [before.log_id])
    result = migrate_registry(backends_of(registry_copy), to_url=url, artifacts_url=bucket)
    assert result.versions_copied == 1 and result.audit.ok
    # A server on another machine: nothing but the two URLs (and an empty cache folder).
    elsewhere = registry_copy.with_overrides(registry_dir=tmp_path / "elsewhere",
                                             database_url=url, artifacts_url=bucket)
    backends = build_backends(elsewhere)
    assert backends.prediction_log.images("classifier", [before.log_id]) == logged
    prediction, _ = predict_image(backends, encode_png(images[0]), actor="anonymous",
                                  source="cli", now=FIXED_NOW)
    assert prediction.version == 1
    local = backends_of(registry_copy).registry.get_champion()
    assert sorted(backends.registry.get_champion().metadata.files) == sorted(local.metadata.files)
    cached = tmp_path / "elsewhere" / "cache" / "classifier" / "1"
    assert (cached / "model.tflite").is_file()
    assert backends.prediction_log.count("classifier") == 2
    (image, _), = backends.prediction_log.images("classifier", [prediction.log_id])
    assert image == encode_png(images[0])  # kept in the bucket beside the log
    assert [item.key.split("/")[1] for item in backends.artifacts.list_objects(
        "_logged-images/")] == ["classifier", "classifier"]


def test_a_writer_waiting_too_long_for_its_turn_is_told_to_retry(postgres, tmp_path):
    import time

    from core.errors import Overloaded
    from core.monitoring.logged_images import LoggedImages
    from core.monitoring.sql_prediction_log import SQLPredictionLog
    from core.registry.artifacts import LocalArtifactStore

    database = PostgresDatabase(new_database(postgres))
    log = SQLPredictionLog(database, LoggedImages(LocalArtifactStore(tmp_path)), write_wait=1)
    log.append([record(1)])
    with database.write() as holding:  # another writer's turn, held
        assert holding is not None
        started = time.perf_counter()
        with pytest.raises(Overloaded, match="database is busy"):
            log.append([record(2)])
        assert time.perf_counter() - started < 5
    assert log.count("m") == 1
    log.append([record(3)])  # the turn is free again
    assert log.count("m") == 2
