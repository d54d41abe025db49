"""The group-commit writer: every submitted row committed once, in batches, and a failed
commit reported to every request in its batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.monitoring.group_commit import GroupCommitWriter
from core.monitoring.log_records import FailedRequest, PredictionRecord
from tests.conftest import backends_of

# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.every_database


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        at=f"2026-01-01T00:00:{i % 60:02d}.000+00:00", model="classifier", version=1,
        source="api", predicted=i % 10, label=str(i % 10), confidence=0.5,
        probabilities=np.full(10, 0.1, np.float32), latency_ms=1.0, brightness=0.5,
        contrast=0.1, sharpness=0.01, width=28, height=28,
        embedding=np.zeros(8, np.float32), pixels=b"png", request_id=f"r{i}",
        client="test", variant="champion")


def test_concurrent_requests_are_committed_in_shared_batches(config):
    log = backends_of(config).prediction_log
    batches: list[int] = []
    writer = GroupCommitWriter(log, max_rows=64, max_wait=0.005,
                               on_commit=lambda rows, seconds: batches.append(rows))
    ids: dict[int, list[int]] = {}

    def client(start: int) -> None:
        for i in range(start, start + 50):
            ids[i] = writer.submit([record(i)]).result(timeout=30)

    threads = [threading.Thread(target=client, args=(k * 50,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert log.count("classifier") == 400 == sum(batches)
    assert max(batches) > 1 and len(batches) < 400  # rows shared transactions
    assert max(batches) <= 64
    window = log.window("classifier", 1)
    # Each request got the id of its own row.
    by_id = dict(zip(window.ids.tolist(), window.predicted.tolist()))
    assert all(by_id[ids[i][0]] == i % 10 for i in range(400))


def test_failed_requests_and_predictions_share_a_batch(config):
    backends = backends_of(config)
    writer = GroupCommitWriter(backends.prediction_log)
    failure = FailedRequest(at="2026-01-01T00:00:00.000+00:00", model="classifier",
                            status=400, error_kind="invalid_input", latency_ms=2.0,
                            client="test", request_id="bad-1")
    assert writer.submit([], [failure]).result(timeout=30) == []
    assert len(writer.submit([record(1), record(2)]).result(timeout=30)) == 2
    writer.close()
    rows = backends.database.read("SELECT status, error_kind, request_id FROM request_failures")
    assert [tuple(r) for r in rows] == [(400, "invalid_input", "bad-1")]


def test_a_failed_commit_fails_every_request_of_its_batch_and_stores_none(config):
    log = backends_of(config).prediction_log
    writer = GroupCommitWriter(log)
    bad = FailedRequest(at="x", model="classifier", status=400, error_kind="no such kind",
                        latency_ms=1.0, client="t", request_id="r")
    with pytest.raises(ValueError, match="error kind"):
        writer.submit([record(3)], [bad]).result(timeout=30)
    assert writer.submit([record(4)]).result(timeout=30)  # the writer goes on
    writer.close()
    assert log.count("classifier") == 1
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit([record(5)])


def test_the_backlog_grows_while_the_database_is_stuck_and_empties_after(config):
    """What VisionLogBacklog alerts on: rows waiting, reported when they queue (a stuck
    database commits nothing to observe), and 0 once they are stored."""
    log = backends_of(config).prediction_log
    gate, backlog = threading.Event(), []
    append = log.append

    def stuck(records, failures):
        gate.wait(30)
        return append(records, failures)

    log.append = stuck  # type: ignore[method-assign]
    writer = GroupCommitWriter(log, max_rows=1, on_backlog=backlog.append)
    futures = [writer.submit([record(i)]) for i in range(5)]
    assert max(backlog) >= 4  # the first may be taken into a batch before the rest queue
    gate.set()
    assert all(len(future.result(timeout=30)) == 1 for future in futures)
    writer.close()
    assert backlog[-1] == 0 and log.count("classifier") == 5
