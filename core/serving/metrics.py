"""Prometheus metrics of the serving API (``GET /metrics``).

Names follow Prometheus' conventions: a ``vision_`` prefix, base units (seconds),
``_total`` on counters. Only counters and histograms are used, so that several
server processes (``--workers N``, prometheus_client's multiprocess mode, enabled
by ``PROMETHEUS_MULTIPROC_DIR``) add up without per-metric modes.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# ``*_created`` samples double the page and nothing here reads them.
disable_created_metrics()

# Latency buckets around what the API measures: sub-millisecond model calls to
# slow uploads.
_LATENCY = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25,
            0.5, 1.0, 2.5, 5.0)
_REQUEST_LABELS = ("model", "version", "variant", "status")

REQUESTS = Counter("vision_requests", "API requests answered, by the version and "
                   "variant that answered and the HTTP status", _REQUEST_LABELS)
REQUEST_DURATION = Histogram("vision_request_duration_seconds", "Time from a request's "
                             "arrival to its answer (row committed)", _REQUEST_LABELS,
                             buckets=_LATENCY)
PREDICTIONS = Counter("vision_predictions", "Predictions made, by predicted class "
                      "(shadow predictions included, as variant shadow)",
                      ("model", "version", "variant", "class_name"))
SHADOW_ERRORS = Counter("vision_shadow_errors", "Shadow predictions that failed (the "
                        "answer was unaffected)", ("model", "version"))
MODEL_LOAD = Histogram("vision_model_load_duration_seconds", "Time to load a version's "
                       "model into a server process", ("model", "version"),
                       buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PREDICTION_BATCH = Histogram("vision_prediction_batch_instances", "Instances per "
                             "prediction batch (requests that arrived together)", ("model",),
                             buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
# outcome: stored, already_stored (a retry), rejected, disagreed (stored; the server's run
# of the same version on the same image gave another class: int8 files, or made-up rows).
DEVICE_SYNCED = Counter("vision_device_synced_predictions", "Predictions devices synced, "
                        "by outcome", ("outcome",))
LOG_BATCH_ROWS = Histogram("vision_log_batch_rows", "Rows per prediction-log transaction",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
LOG_COMMIT = Histogram("vision_log_commit_duration_seconds", "Time to commit one batch of "
                       "prediction-log rows", buckets=_LATENCY)


def observe_commit(rows: int, seconds: float) -> None:
    LOG_BATCH_ROWS.observe(rows)
    LOG_COMMIT.observe(seconds)


def exposition(multiprocess_dir: Path | None) -> tuple[bytes, str]:
    """The metrics page: this process's, or every worker's when in multiprocess mode."""
    registry = REGISTRY
    if multiprocess_dir is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST
