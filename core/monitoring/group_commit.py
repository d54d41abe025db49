"""Group commit: many requests' log rows in one transaction, each request told when its row is stored.

The serving API answers a prediction only once its row is committed ("an
answered request is logged"). One transaction per request would cap throughput at
the database's commit rate; instead a writer thread takes every row queued while
the previous commit ran (up to ``max_rows``, waiting at most ``max_wait`` for more
once it has one), appends them in one transaction, and resolves each request's
future. Under light load a batch is one row and costs no wait beyond ``max_wait``;
under heavy load batches grow and commits per second stay low.

The queue is bounded (``max_queued_rows``): when the database cannot keep up, ``submit``
refuses at once (``Overloaded``, answered 503) instead of holding ever more requests, and
their images, in memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from core.errors import Overloaded
from core.monitoring.log_records import FailedRequest, PredictionRecord
from core.monitoring.prediction_log import PredictionLog


@dataclass
class _Pending:
    records: list[PredictionRecord]
    failures: Sequence[FailedRequest]
    future: Future = field(default_factory=Future)


# Called after each commit with (rows in the batch, seconds the commit took): metrics.
CommitObserver = Callable[[int, float], None]
# Called with the rows waiting for their commit, each time that changes: metrics (a
# database that stops committing shows as a growing backlog, with no commit to observe).
BacklogObserver = Callable[[int], None]


class GroupCommitWriter:
    """Appends to ``log`` from one background thread, in batches.

    Args:
        max_rows: the most rows (predictions and failures) one transaction holds.
        max_wait: seconds to wait for more rows once a batch has its first.
        max_queued_rows: the most rows waiting for their commit; more are refused.
    """

    def __init__(self, log: PredictionLog, *, max_rows: int = 256, max_wait: float = 0.001,
                 max_queued_rows: int = 10_000, on_commit: CommitObserver | None = None,
                 on_backlog: BacklogObserver | None = None):
        if max_rows < 1 or max_wait < 0 or max_queued_rows < 1:
            raise ValueError("max_rows and max_queued_rows must be at least 1 and max_wait "
                             "not negative")
        self.log, self.max_rows, self.max_wait = log, max_rows, max_wait
        self.max_queued_rows = max_queued_rows
        self.on_commit, self.on_backlog = on_commit, on_backlog
        self._queued = 0  # rows submitted and not yet taken into a batch
        self._count_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, records: list[PredictionRecord],
               failures: Sequence[FailedRequest] = ()) -> Future:
        """Queues rows; the future resolves to the records' ids once they are committed
        (or to the database's exception, in which case none of them is stored)."""
        if self._closed:
            raise RuntimeError("the log writer is closed")
        pending = _Pending(records, failures)
        with self._count_lock:
            if self._queued and self._queued + _size(pending) > self.max_queued_rows:
                raise Overloaded(
                    f"{self._queued:,} prediction-log rows are waiting for the database "
                    f"(LOG_QUEUE_ROWS={self.max_queued_rows:,}): it is not keeping up. To fix "
                    "this, retry in a moment; if it persists, the database needs attention.",
                    retry_after=1)
            self._queued += _size(pending)
            self._report_backlog()
        self._queue.put(pending)
        return pending.future

    def close(self, timeout: float = 10.0) -> None:
        """Commits what is queued, then stops the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    def _next_batch(self) -> tuple[list[_Pending], bool]:
        """Blocks for the first item, then gathers more; returns (batch, stop)."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch, rows = [first], _size(first)
        deadline = time.monotonic() + self.max_wait
        while rows < self.max_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                self._commit(batch)
                return [], True
            batch.append(item)
            rows += _size(item)
        return batch, False

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            self._append(batch)
        finally:  # the batch's rows are no longer held here
            with self._count_lock:
                self._queued -= sum(_size(item) for item in batch)
                self._report_backlog()

    def _report_backlog(self) -> None:
        if self.on_backlog is not None:
            self.on_backlog(self._queued)

    def _append(self, batch: list[_Pending]) -> None:
        records = [r for item in batch for r in item.records]
        failures = [f for item in batch for f in item.failures]
        started = time.perf_counter()
        try:
            ids = self.log.append(records, failures)
        except Exception as error:  # noqa: BLE001 - every waiting request must hear of it
            for item in batch:
                item.future.set_exception(error)
            return
        if self.on_commit is not None:
            self.on_commit(len(records) + len(failures), time.perf_counter() - started)
        start = 0
        for item in batch:
            item.future.set_result(ids[start:start + len(item.records)])
            start += len(item.records)


def _size(item: _Pending) -> int:
    return len(item.records) + len(item.failures)
