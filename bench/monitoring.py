"""Monitoring at scale: a registry filled with 30 days x 10 million logged predictions, the
monitor's catch-up over it, and the Drift page rendered in a real browser.

The generator writes rows straight into the prediction log's table (a model would take
about an hour to predict 10 million images): each row's probabilities, embedding and
image statistics are a validation image's own outputs from the champion's reference
profile, with the last five days shifted the way a brightness drift shifts them, and a
tiny PNG where the image would be (drift reads none of it). Times spread evenly over
the 30 days that end at the current hour.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.timing import Row
from core.app import build_backends
from core.app.monitor import load_reference
from core.app.snapshots import compute_snapshots
from core.config import Config
from core.monitoring.snapshots import period_start
from core.storage.database import SQLiteDatabase

MONITORING_ROWS = 10_000_000  # the issues' scale; --quick: a tenth
DAYS = 30
DRIFTED_DAYS = 5
CHUNK = 100_000
PAGE_TARGET_SECONDS = 2.0


COLUMNS = ("at", "model", "version", "source", "predicted", "label", "confidence",
           "probabilities", "latency_ms", "brightness", "contrast", "sharpness", "width",
           "height", "embedding", "true_label", "pixels", "request_id", "client", "variant")


def generated_batches(config: Config, rows: int, now: datetime, seed: int = 0
                      ) -> tuple[datetime, Iterator[list[tuple]]]:
    """The first row's time, and ``rows`` predictions of the champion over the 30 days
    before the current hour in batches of CHUNK (tuples in COLUMNS' order)."""
    backends = build_backends(config)
    champion = backends.registry.get_champion()
    reference = load_reference(backends, champion)
    end = period_start(now, "hour")
    start = end - timedelta(days=DAYS)
    drift_from = end - timedelta(days=DRIFTED_DAYS)
    rng = np.random.default_rng(seed)
    span = (end - start).total_seconds()
    sample = len(reference.embeddings)
    # The reference keeps a seeded sample of embeddings; pair each with its outputs.
    probabilities = reference.probabilities[:sample]
    embeddings = reference.embeddings.astype(np.float16)
    statistics = {k: v[:sample] for k, v in reference.statistics.items()}
    labels = reference.labels[:sample]
    names = champion.class_names

    def batches() -> Iterator[list[tuple]]:
        for offset in range(0, rows, CHUNK):
            n = min(CHUNK, rows - offset)
            seconds = (np.arange(offset, offset + n) + 0.5) * span / rows
            picks = rng.integers(0, sample, n)
            batch = []
            for number, (second, pick) in enumerate(zip(seconds, picks), start=offset):
                at = start + timedelta(seconds=float(second))
                drifted = at >= drift_from
                probs = probabilities[pick]
                if drifted:  # flatter answers and brighter images, as brightness +0.3 gives
                    probs = (probs * 0.7 + 0.03).astype(np.float32)
                predicted = int(probs.argmax())
                batch.append((
                    at.isoformat(timespec="milliseconds"), config.model_name, champion.version,
                    "api", predicted, names[predicted], float(probs.max()), probs.tobytes(),
                    2.0, float(statistics["brightness"][pick]) + (0.3 if drifted else 0.0),
                    float(statistics["contrast"][pick]), float(statistics["sharpness"][pick]),
                    28, 28, embeddings[pick].tobytes(),
                    int(labels[pick]) if pick % 10 == 0 else None, b"\x89PNG",
                    f"bench-{number}", "bench", "champion"))
            yield batch
            print(f"  generated {offset + n:,} / {rows:,} rows", flush=True)

    return start, batches()


def fill(config: Config, rows: int, now: datetime, seed: int = 0) -> tuple[datetime, float]:
    """Writes ``rows`` predictions of the champion over the 30 days before the current hour
    into ``config``'s database (SQLite or PostgreSQL) by its fastest bulk path; returns
    (the first row's time, seconds taken)."""
    database = build_backends(config).database
    database.ensure_schema()
    first, batches = generated_batches(config, rows, now, seed)
    started = time.perf_counter()
    if isinstance(database, SQLiteDatabase):
        connection = sqlite3.connect(database.path)
        connection.execute("PRAGMA synchronous=OFF")
        try:
            for batch in batches:
                connection.executemany(
                    f"INSERT INTO predictions ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(COLUMNS))})", batch)
                connection.commit()
        finally:
            connection.close()
    else:
        raw = database.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None  # psycopg's connection, open
            cursor = driver.cursor()
            for batch in batches:
                with cursor.copy(f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
                raw.commit()
            # Fresh statistics, or the planner guesses for a table it thinks is empty
            # (autovacuum would catch up later; a benchmark should not wait for it).
            cursor.execute("ANALYZE predictions")
            raw.commit()
        finally:
            raw.close()
    return first, time.perf_counter() - started


def monitoring_rows(config: Config, rows: int, quick: bool) -> list[Row]:
    from tests.browser import launch_chromium, open_page, running_dashboard

    now = datetime.now(UTC)
    first, fill_seconds = fill(config, rows, now)
    backends = build_backends(config)
    periods: dict[str, list[float]] = {"hour": [], "day": []}
    last = [time.perf_counter()]

    def timed(period: str, start: str, count: int) -> None:
        periods[period].append(time.perf_counter() - last[0])
        last[0] = time.perf_counter()
        if len(periods[period]) % 100 == 0 or period == "day":
            print(f"  monitor: {period} {start}", flush=True)

    started = time.perf_counter()
    compute_snapshots(backends, now, timed)
    catch_up = time.perf_counter() - started
    day_seconds = float(np.median(periods["day"]))
    from playwright.sync_api import sync_playwright

    samples = []
    with running_dashboard(config) as (url, _), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, url, "drift")  # warm-up: imports, the model's first load
        for _ in range(3 if quick else 5):
            samples.append(open_page(page, url, "drift"))
        # The 30-day view: one more rerun after choosing it.
        page.get_by_text("Last 30 days", exact=True).click()
        page.wait_for_timeout(150)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
        browser.close()
    render = float(np.median(samples))
    # The baseline: the same 30 daily drift reports computed from the raw log on demand
    # (what a page without snapshots has to do), timed during the catch-up.
    baseline = day_seconds * DAYS
    return [
        Row(f"Drift page in a browser, 30 days x {rows:,} logged predictions", render, "s",
            "30 daily reports from the raw log", baseline, baseline / render,
            f"≤ {PAGE_TARGET_SECONDS:g} s", render <= PAGE_TARGET_SECONDS,
            f"median of {len(samples)} page loads (new session each); generated in "
            f"{fill_seconds:.0f} s from {first:%Y-%m-%d}"),
        Row("monitor catch-up over 30 days (720 hourly + 30 daily snapshots)", catch_up, "s",
            "—", None, None, "computed once, resumable", True,
            f"hourly median {np.median(periods['hour']):.2f} s, daily median "
            f"{day_seconds:.2f} s ({rows // DAYS:,} rows a day)"),
    ]
