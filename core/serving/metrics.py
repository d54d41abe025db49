"""Prometheus metrics of the serving API (``GET /metrics``).

Names follow Prometheus' conventions: a ``vision_`` prefix, base units (seconds,
ratios), ``_total`` on counters; model, version and variant labels. Counters and
histograms add up over several server processes (``--workers N``, prometheus_client's
multiprocess mode, enabled by ``PROMETHEUS_MULTIPROC_DIR``); the one gauge a process
keeps (its log backlog) is summed over the living processes. What the monitor found
(drift, unfamiliar images, its last pass) is read from the database when scraped
(``MonitoringCollector``). deploy/prometheus/rules.yml alerts on these names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from core.app import ModelHealth

LOGGER = logging.getLogger(__name__)

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
SHADOW_PREDICTIONS = Counter("vision_shadow_predictions", "Shadow predictions made beside "
                             "an answer, by whether they agreed with its class",
                             ("model", "version", "agreed"))
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

LOG_QUEUED_ROWS = Gauge("vision_log_queued_rows", "Prediction-log rows waiting for their "
                        "commit (answers wait for theirs)", multiprocess_mode="livesum")


def observe_commit(rows: int, seconds: float) -> None:
    LOG_BATCH_ROWS.observe(rows)
    LOG_COMMIT.observe(seconds)


def observe_backlog(rows: int) -> None:
    LOG_QUEUED_ROWS.set(rows)


# A statistic's status as a number, so that alerts and graphs can compare it.
STATUS_LEVELS = {"ok": 0, "warn": 1, "alert": 2}


class MonitoringCollector:
    """What the monitor last found, read from the database when scraped and kept for
    ``ttl`` seconds (every scrape of every worker would read it otherwise)."""

    def __init__(self, read: Callable[[], list[ModelHealth]], ttl: float = 5.0):
        self.read, self.ttl = read, ttl
        self._lock = threading.Lock()
        self._health: list[ModelHealth] = []
        self._read_at = -float("inf")

    def health(self) -> list[ModelHealth]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    self._health = self.read()
                except Exception:  # noqa: BLE001 - the page still shows the rest
                    LOGGER.exception("metrics: could not read the monitor's findings")
                self._read_at = time.monotonic()
            return self._health

    def collect(self) -> Iterator[Metric]:
        passed = GaugeMetricFamily(
            "vision_monitor_last_pass_timestamp_seconds", "When the monitor last finished "
            "a pass over the model (Unix time)", labels=["model"])
        status = GaugeMetricFamily(
            "vision_drift_status", "The latest hour's worst drift statistic: 0 ok, 1 warn, "
            "2 alert", labels=["model", "version"])
        statistic = GaugeMetricFamily(
            "vision_drift_statistic", "Each drift statistic of the latest hour",
            labels=["model", "version", "statistic"])
        unfamiliar = GaugeMetricFamily(
            "vision_unfamiliar_ratio", "Share of the latest hour's images the OOD detector "
            "found unfamiliar", labels=["model", "version"])
        accuracy = GaugeMetricFamily(
            "vision_estimated_accuracy_ratio", "The latest hour's accuracy as estimated from "
            "confidence (no labels needed)", labels=["model", "version"])
        for model in self.health():
            if model.monitor_passed_at is not None:
                passed.add_metric([model.model],
                                  datetime.fromisoformat(model.monitor_passed_at).timestamp())
            for snapshot in model.snapshots:
                labels = [model.model, str(snapshot.version)]
                if snapshot.drift:
                    status.add_metric(labels, max(STATUS_LEVELS[each["status"]]
                                                  for each in snapshot.drift.values()))
                for name, each in sorted(snapshot.drift.items()):
                    statistic.add_metric(labels + [name], each["value"])
                if "unfamiliar_rate" in snapshot.drift:
                    unfamiliar.add_metric(labels, snapshot.drift["unfamiliar_rate"]["value"])
                if snapshot.estimated_accuracy is not None:
                    accuracy.add_metric(labels, snapshot.estimated_accuracy)
        yield from (passed, status, statistic, unfamiliar, accuracy)


def exposition(multiprocess_dir: Path | None, monitoring: MonitoringCollector | None = None
               ) -> tuple[bytes, str]:
    """The metrics page: this process's, or every worker's when in multiprocess mode, and
    the monitor's findings."""
    registry = REGISTRY
    if multiprocess_dir is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    page = generate_latest(registry)
    if monitoring is not None:
        found = CollectorRegistry(auto_describe=False)
        found.register(monitoring)
        page += generate_latest(found)
    return page, CONTENT_TYPE_LATEST
