"""Dynamic batching: the predictions of requests that arrive together run as one batch.

Each API process predicts on its event loop. A request that has decoded its images asks
the ``Batcher``; the batcher waits while other requests are still on their way (reading
their body, decoding), at most ``BATCH_WAIT_MS``, then runs everything waiting as one
``ServingSession.predict_together`` per model and assignment (same version, same shadow),
and gives each request its own answers. A request alone waits for nothing: with no other
request on its way it is predicted in the same turn of the loop. One batch holds at most
``BATCH_MAX_INSTANCES`` instances.

What a batch saves per image is the model's fixed cost per call and the OOD score's pass
over its bank of training embeddings (memory-bound: one pass serves 8 queries for about
the price of 2), the image statistics' and the log's per-call costs: measured on the
28x28 CNN, 0.52 ms per image alone, 0.25 ms in a batch of 8
(``docs/benchmarks.md``). The rows of a batch go to the log writer in one submission.

Batching is off for a model where it does not pay (``Predictor.batching_pays``, measured
once per process): MobileNetV2 at 224x224 costs ~5 ms per image on one thread, alone or
in a batch, and a batch of 8 held the event loop (and every other request) for 40 ms:
throughput fell from 202 to 174 req/s at concurrency 8.

If a batch fails (one request's tensor has the wrong shape), each of its requests is
predicted alone, so that the error reaches only the request that caused it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.app import Assignment, ModelState, PredictRequest, ServingSession
from core.app.serving import Served
from core.errors import InvalidInput
from core.serving import metrics


@dataclass
class _Waiting:
    model: ModelState
    assignment: Assignment
    request: PredictRequest
    future: asyncio.Future


@dataclass
class Ticket:
    """A request on its way to the batcher: batches wait for it (at most ``max_wait``)."""

    arrived: bool = False


BATCHING = ("auto", "on", "off")


@dataclass
class Batcher:
    session: ServingSession
    max_wait: float  # seconds
    max_instances: int
    mode: str = "auto"  # BATCHING: auto (where it pays), on, off
    _waiting: list[_Waiting] = field(default_factory=list)
    _instances: int = 0
    _on_the_way: int = 0
    _flush: asyncio.Handle | asyncio.TimerHandle | None = None

    @contextmanager
    def on_the_way(self) -> Iterator[Ticket]:
        """Marks a request as coming (from before its body is read): a batch waits for it
        until it asks to predict, or leaves with an error."""
        ticket = Ticket()
        self._on_the_way += 1
        try:
            yield ticket
        finally:
            if not ticket.arrived:
                ticket.arrived = True
                self._on_the_way -= 1
                self._schedule()

    async def predict(self, ticket: Ticket | None, model: ModelState, assignment: Assignment,
                      request: PredictRequest) -> Served:
        """The request's answers, once its batch has run (its rows queued, not committed)."""
        if ticket is not None and not ticket.arrived:
            ticket.arrived = True
            self._on_the_way -= 1
            self._schedule()  # the others may have been waiting for this one only
        if not self._batches(model, assignment):
            metrics.PREDICTION_BATCH.labels(model.name).observe(len(request.instances))
            return self.session.predict_together(model, assignment, [request])[0]
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(model, assignment, request, future))
        self._instances += len(request.instances)
        self._schedule()
        return await future

    def __post_init__(self) -> None:
        if self.mode not in BATCHING:
            raise InvalidInput(f"BATCHING={self.mode!r} is not a mode. To fix this, set "
                               f"BATCHING to one of {', '.join(BATCHING)}.")

    def _batches(self, model: ModelState, assignment: Assignment) -> bool:
        if self.mode != "auto":
            return self.mode == "on"
        return self.session.predictor(model.version(assignment.version)).batching_pays

    def _schedule(self) -> None:
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        if (self._on_the_way == 0 or self._instances >= self.max_instances
                or self.max_wait <= 0):
            if isinstance(self._flush, asyncio.TimerHandle):
                self._flush.cancel()
                self._flush = None
            if self._flush is None:
                # call_soon: requests woken in this same turn of the loop still join.
                self._flush = loop.call_soon(self._run)
        elif self._flush is None:
            self._flush = loop.call_later(self.max_wait, self._run)

    def _run(self) -> None:
        self._flush = None
        waiting, self._waiting, self._instances = self._waiting, [], 0
        groups: dict[tuple, list[_Waiting]] = {}
        for each in waiting:
            key = (each.model.name, each.assignment)
            groups.setdefault(key, []).append(each)
        for group in groups.values():
            for chunk in _chunks(group, self.max_instances):
                self._predict(chunk)

    def _predict(self, group: list[_Waiting]) -> None:
        first = group[0]
        metrics.PREDICTION_BATCH.labels(first.model.name).observe(
            sum(len(w.request.instances) for w in group))
        try:
            served = self.session.predict_together(first.model, first.assignment,
                                                   [w.request for w in group])
        except Exception as error:  # noqa: BLE001 - handed to the request(s) it concerns
            if len(group) == 1:
                _settle(first.future, error=error)
            else:  # one request's bad input must not fail the others
                for each in group:
                    self._predict([each])
            return
        for each, answer in zip(group, served):
            _settle(each.future, answer)


def _chunks(group: list[_Waiting], max_instances: int) -> Iterator[list[_Waiting]]:
    """Consecutive requests holding at most ``max_instances`` instances (a bigger request
    alone)."""
    chunk: list[_Waiting] = []
    size = 0
    for each in group:
        count = len(each.request.instances)
        if chunk and size + count > max_instances:
            yield chunk
            chunk, size = [], 0
        chunk.append(each)
        size += count
    if chunk:
        yield chunk


def _settle(future: asyncio.Future, result: Served | None = None,
            error: Exception | None = None) -> None:
    if future.done():  # the request was cancelled (its client left)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
