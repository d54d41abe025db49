"""Made-up rows for the prediction log (no model needed): predictions, answered and failed
API requests."""

from __future__ import annotations

import numpy as np

from core.monitoring.log_records import FailedRequest, PredictionRecord


def record(i: int, version: int = 1, source: str = "cli", at: str | None = None,
           true_label=None, model: str = "m") -> PredictionRecord:
    probabilities = np.full(10, 0.05, np.float32)
    probabilities[i % 10] = 0.55
    return PredictionRecord(
        at=at or f"2026-01-01T00:00:{i % 60:02d}.000+00:00", model=model, version=version,
        source=source, predicted=i % 10, label=f"c{i % 10}", confidence=0.55,
        probabilities=probabilities, latency_ms=1.5, brightness=0.1 * (i % 10),
        contrast=0.2, sharpness=0.01, width=28, height=28,
        embedding=np.arange(16, dtype=np.float32) + i, pixels=b"png-%d" % i,
        true_label=true_label)


def answered(at: str, n: int, latency_ms: float = 5.0) -> list[PredictionRecord]:
    """``n`` answered API requests of version 1 (made-up outputs: no model needed)."""
    return [PredictionRecord(
        at=at, model="classifier", version=1, source="api", predicted=0, label="a",
        confidence=0.9, probabilities=np.array([0.9, 0.1], np.float32), latency_ms=latency_ms,
        brightness=0.5, contrast=0.2, sharpness=0.1, width=28, height=28,
        embedding=np.zeros(4, np.float32), pixels=b"png", request_id=f"r{at}{i}",
        client="test", variant="champion") for i in range(n)]


def failed(at: str, n: int) -> list[FailedRequest]:
    return [FailedRequest(at=at, model="classifier", status=400, error_kind="invalid_input",
                          latency_ms=1.0, client="test", request_id=f"f{at}{i}")
            for i in range(n)]


def stamp(moment) -> str:
    return moment.isoformat(timespec="milliseconds")
