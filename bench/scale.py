"""Scale-out figures (``python -m bench --only scale``): prediction-log writes and
drift-window reads on PostgreSQL against SQLite, and loading a version from S3 against
a local folder.

Real servers, started here and thrown away: a PostgreSQL cluster with fsync on (a
commit waits for the disk, as in production) and moto's S3 stand-in.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.monitoring import DAYS, MONITORING_ROWS, fill
from bench.suite import LOG_WRITER, Context
from bench.timing import Row
from core.app import build_backends, migrate_registry
from core.config import PROJECT_ROOT
from tests.servers import MotoServer, PostgresServer

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


def _window_reads(config, first: datetime, repeats: int) -> dict[str, float]:
    """Median seconds of the two drift-window reads over a filled log: the live report's
    latest 500 predictions, and the monitor's hourly window (the pass's id bound
    included), each hour a different one of the 30 days."""
    backends = build_backends(config)
    log, model = backends.prediction_log, config.model_name
    version = backends.registry.get_champion().version
    high = log.last_id()
    hours = random.Random(0).sample(range(DAYS * 24), repeats)
    latest, hourly, sizes = [], [], []
    for hour in hours:
        started = time.perf_counter()
        log.window(model, version, last=500)
        latest.append(time.perf_counter() - started)
        since = first + timedelta(hours=hour)
        started = time.perf_counter()
        window = log.window(model, version, since=since.isoformat(timespec="milliseconds"),
                            until=(since + timedelta(hours=1)).isoformat(
                                timespec="milliseconds"), max_id=high)
        hourly.append(time.perf_counter() - started)
        sizes.append(len(window))
    return {"latest": statistics.median(latest), "hourly": statistics.median(hourly),
            "hour rows": statistics.median(sizes)}


def _window_rows(context: Context, postgres_url: str) -> list[Row]:
    """The same generated log (bench/monitoring.py's) in SQLite and in PostgreSQL."""
    total = MONITORING_ROWS // (10 if context.quick else 1)
    repeats = 5 if context.quick else 9
    now = datetime.now(UTC)
    on_postgres = context.config.with_overrides(database_url=postgres_url)
    first, sqlite_fill = fill(context.config, total, now)
    _, postgres_fill = fill(on_postgres, total, now)
    sqlite, postgres = (_window_reads(context.config, first, repeats),
                        _window_reads(on_postgres, first, repeats))
    detail = (f"median of {repeats}; {total:,} rows over {DAYS} days, filled in "
              f"{sqlite_fill:.0f} s (SQLite) and {postgres_fill:.0f} s (PostgreSQL, COPY)")
    return [
        Row(f"drift window read on PostgreSQL, one hour of {total:,} logged rows "
            f"(~{postgres['hour rows']:,.0f} rows: the monitor's read)", postgres["hourly"],
            "s", "SQLite, same rows", sqlite["hourly"], sqlite["hourly"] / postgres["hourly"],
            "≤ 0.5 s", postgres["hourly"] <= 0.5 and sqlite["hourly"] <= 0.5, detail),
        Row(f"drift window read on PostgreSQL, the latest 500 of {total:,} logged rows "
            "(the live report's read)", postgres["latest"], "s", "SQLite, same rows",
            sqlite["latest"], sqlite["latest"] / postgres["latest"], "≤ 0.5 s",
            postgres["latest"] <= 0.5 and sqlite["latest"] <= 0.5, detail),
    ]


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
        # Last: it fills both logs (the copy above had an empty one).
        windows = _window_rows(context, url)
    return windows + [
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

