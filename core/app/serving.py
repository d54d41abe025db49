"""Serving use cases: one API process's view of what to serve, and its predictions.

A ``ServingSession`` lives as long as a server process and serves every model of the
registry that has a champion (TF Serving's multi-model configuration, without a file to
keep in step). It holds a snapshot (``ServingState``): per model (``ModelState``) the
champion, the versions and the traffic policy; and the active API keys (shared by every
model, like users), re-read every ``REFRESH_SECONDS`` by a background thread. A model
registered while the server runs is served from the next refresh. The models a
new snapshot needs are loaded *before* it replaces the old one, so a promotion,
rollback or policy change reaches the process without a restart and without a
request waiting on a model load or failing. Requests in flight finish on the
snapshot they started with.

Predictions of every model are appended through one ``GroupCommitWriter`` (one writer
per process, whatever the number of models): the caller gets a future that resolves once
the rows are committed, and answers only then. The decoding budget and the rate limits
are the process's too: a client cannot double its share by naming another model.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime

from opentelemetry.context import Context

from core.app import tracing
from core.app.backends import Backends, backends_for_model, model_names
from core.app.routing import Instance, Origin, Routed, log_records, predict_routed
from core.audit import Actor, stamp
from core.errors import (
    ImageError,
    InvalidInput,
    RateLimited,
    Unauthenticated,
    VersionNotFound,
)
from core.governance.keys import ApiKey, hash_secret, key_actor
from core.governance.traffic import Assignment, TrafficPolicy, active_candidate, assign
from core.governance.users import ANONYMOUS, ROLE_PERMISSIONS
from core.ml.predictor import Prediction, Predictor
from core.monitoring.group_commit import GroupCommitWriter
from core.monitoring.log_records import FailedRequest, PredictionRecord
from core.names import parse_version
from core.registry.records import ModelVersion, find_champion_in

LOGGER = logging.getLogger("core.serving")
LABELS = ("champion", "candidate")


@dataclass(frozen=True)
class ModelState:
    """One model as a process serves it, as of its snapshot."""

    backends: Backends  # this model's
    champion: ModelVersion
    versions: dict[int, ModelVersion]
    policy: TrafficPolicy

    @property
    def name(self) -> str:
        return self.backends.model

    @property
    def statuses(self) -> dict[int, str]:
        return {n: v.status for n, v in self.versions.items()}

    @property
    def active_candidate(self) -> int | None:
        return active_candidate(self.policy, self.champion.version, self.statuses)

    def version(self, number: int | str) -> ModelVersion:
        """A registered version (the snapshot, else the registry: it may be seconds old)."""
        try:
            n = parse_version(number)
        except InvalidInput as error:
            raise VersionNotFound(str(error)) from None
        if n in self.versions:
            return self.versions[n]
        return self.backends.registry.get_version(n)

    def label(self, label: str) -> ModelVersion:
        """``champion``; ``candidate``: the traffic policy's, else the newest candidate."""
        if label == "champion":
            return self.champion
        if label == "candidate":
            candidate = self.active_candidate
            if candidate is None:
                candidates = [n for n, v in self.versions.items() if v.status == "candidate"]
                candidate = max(candidates, default=None)
            if candidate is None:
                raise VersionNotFound(f"model {self.name!r} has no candidate version. To fix "
                                      "this, retrain one, or use labels/champion.")
            return self.versions[candidate]
        raise VersionNotFound(f"unknown version label {label!r}. To fix this, use one of: "
                              f"{', '.join(LABELS)}.")

    def assignment(self, request_id: str, *, version: ModelVersion | None = None) -> Assignment:
        """Who answers: the version asked for (``direct``), else the traffic policy."""
        if version is not None:
            return Assignment(version.version, "direct")
        return assign(self.policy, self.champion.version, self.statuses, request_id)


@dataclass(frozen=True)
class ServingState:
    """What one process serves, as of ``loaded_at`` (a snapshot; replaced, never changed)."""

    models: dict[str, ModelState]  # every model with a champion, by name
    keys: dict[str, ApiKey]  # active keys by the SHA-256 of their secret
    loaded_at: float

    def model(self, name: str) -> ModelState:
        if name not in self.models:
            raise VersionNotFound(f"there is no model {name!r} on this server. To fix this, "
                                  f"use one of: {', '.join(sorted(self.models))} (GET "
                                  "/v1/models lists them; a model is served once it has a "
                                  "champion).")
        return self.models[name]


@dataclass
class Served:
    """A request's answer, and the future that resolves once its rows are committed."""

    version: ModelVersion
    variant: str
    predictions: list[Prediction]
    logged: Future
    shadow: int | None = None
    shadow_error: str | None = None
    shadowed: list[Prediction] | None = None  # the shadow's predictions, if it answered


@dataclass(frozen=True)
class PredictRequest:
    """One request's part of a batch: its instances and where they come from."""

    instances: Sequence[Instance]
    client: str
    request_id: str
    now: datetime
    started: float  # when the request came (perf_counter): its answers' latency
    trace: Context | None = None  # the request's span: the batch's steps are its children


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """A token bucket per key: ``rate`` requests per second, bursts up to one second's worth.

    Per server process: N processes admit up to N x rate in total (documented).
    """

    buckets: dict[str, _Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str, rate: float, now: float) -> float:
        """0 if admitted, else the seconds until a request would be."""
        capacity = max(1.0, rate)
        with self.lock:
            bucket = self.buckets.setdefault(name, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate


def _done(value: object) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class ServingSession:
    """Serving for one process. ``start()`` before use, ``close()`` at shutdown.

    Args:
        backends: the default model's (``MODEL_NAME``: the one ``/v1/predict`` answers
            for without ``model=``, and the one that must have a champion to start).
        log_predictions: False only for benchmarks measuring what logging costs.
        on_load: called with (model, version, seconds) after each model load (metrics).
        on_commit: called with (rows, seconds) after each log commit (metrics).
        on_backlog: called with the log rows waiting for their commit when that changes.
    """

    def __init__(self, backends: Backends, *, log_predictions: bool = True,
                 on_load: Callable[[str, int, float], None] | None = None,
                 on_commit: Callable[[int, float], None] | None = None,
                 on_backlog: Callable[[int], None] | None = None):
        self.backends = backends
        self.default_model = backends.model
        self._backends = {backends.model: backends}
        self.log_predictions = log_predictions
        self.on_load = on_load
        self._on_commit, self._on_backlog = on_commit, on_backlog
        self._state: ServingState | None = None
        self._writer: GroupCommitWriter | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._limiter = RateLimiter()
        self._refresh_lock = threading.Lock()

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Loads the champion (and the policy's candidate), then refreshes in the background.

        Raises VersionNotFound if the model has no champion yet.
        """
        config = self.backends.config
        self.refresh()
        self._writer = GroupCommitWriter(
            self.backends.prediction_log, max_rows=config.log_batch_rows,
            max_wait=config.log_batch_ms / 1000, max_queued_rows=config.log_queue_rows,
            on_commit=self._on_commit, on_backlog=self._on_backlog)
        self._refresher = threading.Thread(target=self._refresh_loop, name="serving-refresh",
                                           daemon=True)
        self._refresher.start()

    def close(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.close()
        self.backends.decoder.close()

    @property
    def state(self) -> ServingState:
        if self._state is None:
            raise RuntimeError("the serving session is not started")
        return self._state

    def refresh(self) -> ServingState:
        """Re-reads every model's champion, versions and policy, and the keys; loads the
        models before swapping. A model other than the default that cannot be read or
        loaded keeps its previous snapshot (or is not served yet): one broken model does
        not stop the others from following their promotions."""
        with self._refresh_lock:
            previous = self._state.models if self._state is not None else {}
            models = {}
            for name in model_names(self.backends):
                try:
                    model = self._read_model(name)
                except Exception:
                    if name == self.default_model:
                        raise
                    LOGGER.exception("could not refresh model %r; serving its previous "
                                     "snapshot, if any", name)
                    model = previous.get(name)
                if model is not None:
                    models[name] = model
            self._state = ServingState(models, self.backends.keys.active_keys(),
                                       time.monotonic())
            return self._state

    def _read_model(self, name: str) -> ModelState | None:
        """The model's snapshot with its models loaded; None if it has no champion yet
        (the default model must have one: VersionNotFound)."""
        if name not in self._backends:  # built once per model and process
            self._backends[name] = backends_for_model(self.backends, name)
        backends = self._backends[name]
        versions = {v.version: v for v in backends.registry.list_versions()}
        champion = find_champion_in(versions.values())
        if champion is None:
            if name != self.default_model:
                return None
            raise VersionNotFound(f"model {name!r} has no champion yet. To fix this, run "
                                  "'python -m core bootstrap' (or 'register').")
        model = ModelState(backends, champion, versions, backends.traffic.get())
        self.predictor(model.champion)
        candidate = model.active_candidate
        if candidate is not None:
            self.predictor(versions[candidate])
        return model

    def _refresh_loop(self) -> None:
        interval = self.backends.config.refresh_seconds
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep serving the last good snapshot
                LOGGER.exception("refresh failed; serving the previous snapshot")

    def predictor(self, version: ModelVersion) -> Predictor:
        """The version's loaded predictor (loaded once per process)."""
        models = self.backends.models
        if not models.has_predictor(version):
            started = time.perf_counter()
            predictor = models.predictor(version)
            predictor.batching_pays  # noqa: B018 - measured at load, not on a request
            if self.on_load is not None:
                self.on_load(version.model, version.version, time.perf_counter() - started)
            return predictor
        return models.predictor(version)

    def ready(self) -> tuple[bool, str]:
        """Whether this process can answer: a model loaded and the database reachable."""
        if self._state is None:
            return False, "no model loaded yet"
        try:
            self.backends.database.read("SELECT 1")
        except Exception as error:  # noqa: BLE001 - readiness reports, never raises
            return False, f"database unreachable: {type(error).__name__}"
        champions = ", ".join(f"{name} version {model.champion.version}"
                              for name, model in self._state.models.items())
        return True, f"serving {champions}"

    # --- who is calling ---------------------------------------------------------------

    def identify(self, secret: str | None) -> tuple[Actor, ApiKey | None]:
        """The caller with this API key's secret (none: anonymous)."""
        if secret is None:
            return self.backends.access.anonymous(), None
        key = self.state.keys.get(hash_secret(secret))
        if key is None:
            raise Unauthenticated("the API key is not valid (unknown or revoked). To fix "
                                  "this, check the key, or ask an admin for a new one "
                                  "('python -m core keys create').")
        return Actor(key_actor(key.name), key.role), key

    def authorize(self, actor: Actor, key: ApiKey | None, permission: str,
                  now: datetime) -> None:
        """Rate limit, then the same role check as everywhere (refusals audited).

        An anonymous caller without the permission gets 401 and no audit entry: a flood
        of keyless requests must not flood the audit log.
        """
        if actor.name == ANONYMOUS and permission not in ROLE_PERMISSIONS.get(actor.role, ()):
            raise Unauthenticated(f"this server needs an API key to {permission} "
                                  f"(ANONYMOUS_ROLE={actor.role}). To fix this, send "
                                  "'Authorization: Bearer <your API key>'.")
        if key is not None and key.rate_limit is not None:
            wait = self._limiter.take(key.name, key.rate_limit, time.monotonic())
            if wait > 0:
                raise RateLimited(f"key {key.name!r} is over its rate limit of "
                                  f"{key.rate_limit:g} requests per second. To fix this, retry "
                                  f"after {wait:.2f} s, or ask an admin for a higher limit.",
                                  retry_after=wait)
        self.backends.access.authorize_actor(actor, permission, now)

    # --- what answers -----------------------------------------------------------------

    def model(self, name: str | None = None) -> ModelState:
        """A served model (default: ``MODEL_NAME``); VersionNotFound names the served ones."""
        return self.state.model(name or self.default_model)

    # --- predictions ------------------------------------------------------------------

    def predict_together(self, model: ModelState, assignment: Assignment,
                         requests: Sequence[PredictRequest]) -> list[Served]:
        """Requests with the same assignment predicted as one batch (the model, the OOD
        score and the image statistics cost less per image in a batch), each answered
        with its own predictions and logged with its own rows, in one commit."""
        version = model.version(assignment.version)
        routed = predict_routed(lambda n: self.predictor(model.version(n)),
                                [i for r in requests for i in r.instances], assignment,
                                min(r.started for r in requests))
        finished, start = time.perf_counter(), 0
        served, records = [], []
        for request in requests:
            part = routed.part(start, len(request.instances))
            start += len(request.instances)
            for step, (began, ended) in routed.timings.items():  # each request's own spans
                tracing.record(step, request.trace, began, ended, {
                    "vision.model": model.name, "vision.version": assignment.version
                    if step == "predict" else assignment.shadow or 0,
                    "vision.batch_instances": len(routed.answers)})
            answers = [replace(p, latency_ms=(finished - request.started) * 1000)
                       for p in part.answers]
            served.append(Served(version, assignment.variant, answers, _done([]),
                                 shadow=assignment.shadow, shadowed=part.shadowed))
            if routed.shadow_error is not None:
                served[-1].shadow_error = self._shadow_failed(routed.shadow_error, model,
                                                              assignment, request)
            if self.log_predictions:  # rows (an image each) are built only when they are kept
                # The server's own id pairs the shadow's rows with the answer's: never the
                # client's, which a client could repeat.
                origin = Origin("api", request.now, request_id=request.request_id,
                                server_request_id=uuid.uuid4().hex, client=request.client,
                                trace_id=tracing.trace_id(request.trace))
                records += log_records(Routed(assignment, answers, part.shadowed),
                                       request.instances, model.name, origin)
        if records:
            logged = self._submit(records, [])
            for each in served:
                each.logged = logged
        return served

    def _shadow_failed(self, error: Exception, model: ModelState, assignment: Assignment,
                       request: PredictRequest) -> str:
        """The shadow never changes the answer; its failure is counted and kept."""
        bad_input = isinstance(error, (InvalidInput, ImageError))
        self.record_failure(
            now=request.now, status=400 if bad_input else 500,
            error_kind="invalid_input" if bad_input else "internal",
            latency_ms=(time.perf_counter() - request.started) * 1000, client=request.client,
            request_id=request.request_id, model=model.name, version=assignment.shadow,
            variant="shadow")
        return type(error).__name__

    def record_failure(self, *, now: datetime, status: int, error_kind: str,
                       latency_ms: float, client: str, request_id: str,
                       model: str | None = None, version: int | None = None,
                       variant: str | None = None, trace_id: str | None = None) -> Future:
        """Queues a failed request's row (no image) under ``model`` (default: the default
        model); resolves once committed."""
        if not self.log_predictions:
            return _done([])
        return self._submit([], [FailedRequest(
            at=stamp(now, milliseconds=True), model=model or self.default_model, status=status,
            error_kind=error_kind, latency_ms=latency_ms, client=client[:128],
            request_id=request_id, version=version, variant=variant, trace_id=trace_id)])

    def _submit(self, records: list[PredictionRecord], failures: list[FailedRequest]
                ) -> Future:
        if self._writer is None:
            raise RuntimeError("the serving session is not started")
        return self._writer.submit(records, failures)
