"""What the model routes depend on: the process's serving session, the caller (from
``Authorization: Bearer <key>``, else anonymous) allowed to do what the route does, and
the one way a route predicts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, Request

from core.app import (
    Actor,
    ApiKey,
    Assignment,
    Instance,
    ModelState,
    ModelVersion,
    Prediction,
    PredictRequest,
    ServingSession,
    tracing,
)
from core.app.vocabulary import ANONYMOUS
from core.errors import Unauthenticated
from core.serving import metrics
from core.serving.batching import Batcher, Ticket
from core.serving.bookkeeping import answered_by, session_of


async def _session(request: Request) -> ServingSession:
    return session_of(request)  # async: FastAPI runs a plain function in a thread


Session = Annotated[ServingSession, Depends(_session)]


@dataclass(frozen=True)
class Caller:
    actor: Actor
    key: ApiKey | None

    @property
    def client(self) -> str:
        """The name the prediction log keeps: the key's, else anonymous."""
        return self.key.name if self.key else ANONYMOUS


def identify(session: ServingSession, authorization: str | None) -> Caller:
    """The caller of a request from its ``Authorization`` header (none: anonymous)."""
    if not authorization:
        return Caller(*session.identify(None))
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header is not 'Bearer <key>'. To fix "
                              "this, send 'Authorization: Bearer <your API key>'.")
    return Caller(*session.identify(secret.strip()))


def allowed(permission: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the caller, once allowed ``permission`` (rate limit, role)."""

    async def caller(request: Request) -> Caller:
        session = session_of(request)
        who = identify(session, request.headers.get("authorization"))
        request.state.client = who.client  # a refusal's row names who was refused
        session.authorize(who.actor, who.key, permission, datetime.now(UTC))
        return who

    return caller


Viewer = Annotated[Caller, Depends(allowed("view"))]
Predictor = Annotated[Caller, Depends(allowed("predict"))]


def served_model(request: Request, session: ServingSession, name: str | None) -> ModelState:
    """The model a request names (None: the default); the request's rows and metrics
    are labelled with it from here on. Unknown: VersionNotFound (404)."""
    model = session.model(name)
    request.state.model = model.name
    return model


async def predict_and_log(request: Request, session: ServingSession, caller: Caller,
                          model: ModelState, instances: Sequence[Instance],
                          version: ModelVersion | None = None, ticket: Ticket | None = None
                          ) -> tuple[list[Prediction], Assignment]:
    """Predicts with the version asked for, else the model's traffic policy's, in a batch
    with the requests arriving together; answers once the rows are committed; counts the
    predictions. ``ticket``: the request's from ``on_the_way``."""
    state = request.state
    assignment = model.assignment(state.request_id, version=version)
    served = await batcher_of(request).predict(ticket, model, assignment, PredictRequest(
        instances, caller.client, state.request_id, datetime.now(UTC), state.started,
        tracing.current()))
    with tracing.span("log", {"vision.rows": len(served.predictions) + len(
            served.shadowed or ())}):
        await asyncio.wrap_future(served.logged)
    for prediction in served.predictions:
        metrics.PREDICTIONS.labels(model.name, str(prediction.version), assignment.variant,
                                   prediction.label).inc()
    if served.shadow is not None and served.shadow_error:
        metrics.SHADOW_ERRORS.labels(model.name, str(served.shadow)).inc()
    for answer, shadow in zip(served.predictions, served.shadowed or ()):
        metrics.SHADOW_PREDICTIONS.labels(model.name, str(served.shadow),
                                          str(answer.label == shadow.label).lower()).inc()
    answered_by(request, assignment.version, assignment.variant)
    return served.predictions, assignment


def batcher_of(request: Request) -> Batcher:
    return cast(Batcher, request.app.state.batcher)


def on_the_way(request: Request) -> AbstractContextManager[Ticket]:
    """Wraps a predicting route from before it reads its body: batches wait for it."""
    return batcher_of(request).on_the_way()
