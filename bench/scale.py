"""Scale-out figures (``python -m bench --only scale``): the prediction log on
PostgreSQL against SQLite, and loading a version from S3 against a local folder.

Real servers, started here and thrown away: a PostgreSQL cluster with fsync on (a
commit waits for the disk, as in production) and moto's S3 stand-in.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.servers import MotoServer, PostgresServer
from bench.suite import LOG_WRITER, Context
from bench.timing import Row
from core.app import build_backends, migrate_registry
from core.config import PROJECT_ROOT

WRITERS = 4
BATCH = 256  # rows per commit: the serving API's LOG_BATCH_ROWS


def _write_rate(url: str, rows_each: int) -> float:
    """Rows per second for WRITERS processes appending batches of BATCH rows at once."""
    with tempfile.TemporaryDirectory() as folder:
        go = Path(folder) / "go"
        workers = [subprocess.Popen([sys.executable, "-c", LOG_WRITER, url, str(w),
                                     str(rows_each), str(go), str(BATCH)], cwd=PROJECT_ROOT,
                                    stdout=subprocess.PIPE, text=True)
                   for w in range(1, WRITERS + 1)]
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        go.touch()
        for worker in workers:
            assert worker.wait(timeout=1200) == 0
        return WRITERS * rows_each / (time.perf_counter() - started)


def _timed_load(config) -> float:
    """Seconds to make the champion's predictor with new backends (an empty model cache;
    with S3, an empty download cache when ``config``'s registry folder is new)."""
    backends = build_backends(config)
    champion = backends.registry.get_champion()
    started = time.perf_counter()
    backends.models.predictor(champion)
    return time.perf_counter() - started


def _load_seconds(config, repeats: int, fresh_folder: bool) -> float:
    """Median of ``repeats`` loads, each in a new registry folder if ``fresh_folder``."""
    times = []
    for _ in range(repeats):
        if not fresh_folder:
            times.append(_timed_load(config))
            continue
        with tempfile.TemporaryDirectory() as cache:
            times.append(_timed_load(config.with_overrides(registry_dir=Path(cache))))
    return statistics.median(times)


def scale_rows(context: Context) -> list[Row]:
    rows_each = 5_000 if context.quick else 25_000
    with PostgresServer(durable=True) as postgres, MotoServer() as s3:
        with tempfile.TemporaryDirectory() as folder:
            sqlite_rate = _write_rate(f"sqlite:///{folder}/registry.db", rows_each)
        postgres_rate = _write_rate(postgres.create_database("logbench"), rows_each)

        import os

        os.environ.update(s3.environment)
        s3.create_bucket("bench")
        url = postgres.create_database("registry")
        migrate_registry(build_backends(context.config), to_url=url,
                         artifacts_url="s3://bench/registry")
        repeats = 3 if context.quick else 7
        on_s3 = context.config.with_overrides(database_url=url,
                                              artifacts_url="s3://bench/registry")
        s3_seconds = _load_seconds(on_s3, repeats, fresh_folder=True)
        local_seconds = _load_seconds(context.config.with_overrides(database_url=url), repeats,
                                      fresh_folder=False)
    return [
        Row(f"prediction-log writes on PostgreSQL, {WRITERS} writers, {BATCH} rows per "
            "commit (fsync on)", postgres_rate, "rows/s", "SQLite, same writers and batches",
            sqlite_rate, postgres_rate / sqlite_rate, "≥ 5,000 rows/s on PostgreSQL",
            postgres_rate >= 5000, f"{WRITERS} × {rows_each:,} rows"),
        Row("download + load of the champion from S3 (moto's server), empty cache",
            s3_seconds, "s", "load from the local registry folder", local_seconds,
            local_seconds / s3_seconds, "—", True,
            f"median of {repeats}; sha256 of every file checked; {s3_seconds / local_seconds:.0f}× "
            "the local time, once per version and server (then read from the cache)"),
    ]

