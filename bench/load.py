"""The dashboard's soak: 20 visitors for a minute with a retraining job, beside one visitor
alone (the engine is the load test's, tests/load.py)."""

from __future__ import annotations

from bench.drift_detection import BENCH_ACTOR
from bench.timing import Row
from core.config import Config
from tests.load import run_load


def load_rows(url: str, config: Config, images, quick: bool) -> list[Row]:
    """The soak: 20 visitors for a minute with a retraining job, against one visitor alone."""
    alone = run_load(url, config, images, sessions=1, seconds=10 if quick else 20)
    loaded = run_load(url, config, images, sessions=20, seconds=20 if quick else 60,
                      retrain_as=BENCH_ACTOR)
    job_status = loaded.job.status if loaded.job else "not run"
    clean = (not loaded.problems and loaded.logged == loaded.answers
             and job_status == "succeeded")
    return [Row(
        "upload to answer drawn, 20 sessions + a retraining job (median)",
        loaded.median, "s", "one session alone", alone.median, alone.median / loaded.median,
        "no errors, one log row per answer, p95 ≤ 5 s",
        clean and loaded.percentile(0.95) <= 5,
        f"{loaded.answers} answers in {loaded.seconds:.0f} s "
        f"({loaded.answers / loaded.seconds:.1f}/s); p95 {loaded.percentile(0.95):.2f} s, "
        f"max {max(loaded.latencies):.2f} s; {len(loaded.problems)} errors; "
        f"{loaded.logged} log rows; retraining job {job_status}; "
        f"one session alone: {alone.answers} answers, median {alone.median:.3f} s")]
