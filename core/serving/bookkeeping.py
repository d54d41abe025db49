"""What every model request gets, whichever router answers it: a request id
(``X-Request-ID``, given or made), a caller, one answer for every error (TF Serving's
``{"error": "..."}`` with a 4xx status, 500 only for our own faults), a row in the
prediction log for every failure, and Prometheus counts.

``ModelRoute`` is the route class of the model routers: FastAPI's way to run
middleware-like code around a chosen set of path operations (the operations endpoints,
``/healthz``, ``/readyz``, ``/metrics``, are neither named, logged nor counted). Errors
raised by a dependency (the caller's key, its role) or by the endpoint reach
``answer_error``, the one handler of core's errors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from core.app import ServingSession, tracing
from core.app.vocabulary import ANONYMOUS
from core.errors import (
    ActionRefused,
    CoreError,
    ModelError,
    NotAvailable,
    Overloaded,
    RateLimited,
    RegistryError,
    RequestTooLarge,
    StorageUnavailable,
    Unauthenticated,
    VersionNotFound,
)
from core.serving import metrics

LOGGER = logging.getLogger("core.serving")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def json_response(document: dict, status: int = 200) -> Response:
    """``document`` as JSON. orjson: a reply carries the embedding, and the standard
    library took 0.5 ms to write the 1,280 numbers of a MobileNetV2's (orjson: 0.03)."""
    return Response(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY),
                    status_code=status, media_type="application/json")


def status_of(error: Exception) -> tuple[int, str]:
    """HTTP status and error kind (as logged) of an error."""
    if isinstance(error, RequestTooLarge):
        return 413, "too_large"
    if isinstance(error, Overloaded):
        return 503, "overloaded"
    if isinstance(error, Unauthenticated):
        return 401, "unauthenticated"
    if isinstance(error, ActionRefused):
        return 403, "refused"
    if isinstance(error, RateLimited):
        return 429, "rate_limited"
    if isinstance(error, VersionNotFound):
        return 404, "not_found"
    if isinstance(error, (RegistryError, NotAvailable)):
        return 409, "invalid_input"
    if isinstance(error, (ModelError, StorageUnavailable)):
        return 503, "internal"
    if isinstance(error, CoreError):  # InvalidInput, ImageError, DatasetError
        return 400, "invalid_input"
    return 500, "internal"


async def answer_error(session: ServingSession, error: Exception, *, request_id: str,
                       client: str, started: float, model: str | None = None) -> Response:
    """The error's answer, once its row in the prediction log is committed."""
    status, kind = status_of(error)
    if status == 500:
        LOGGER.exception("request %s failed", request_id, exc_info=error)
        message = (f"internal error (request {request_id}). To fix this, retry; if it "
                   "persists, give the request id to the server's operator.")
    else:
        message = str(error)
    response = json_response({"error": message}, status)
    if isinstance(error, (RateLimited, Overloaded)):
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    try:
        recorded = session.record_failure(
            now=datetime.now(UTC), status=status, error_kind=kind,
            latency_ms=(time.perf_counter() - started) * 1000, client=client,
            request_id=request_id, model=model, trace_id=tracing.trace_id())
        # Busy is about the database or the log writer: the failure's row would wait
        # on the same, so the answer goes out now and the row follows when it can.
        if not isinstance(error, Overloaded):
            await asyncio.wrap_future(recorded)
    except Exception:  # noqa: BLE001 - the answer still goes out
        LOGGER.exception("could not record failed request %s", request_id)
    return response


def count(model: str, status: int, version: int | None, variant: str | None,
          started: float) -> None:
    labels = (model, "" if version is None else str(version), variant or "", str(status))
    metrics.REQUESTS.labels(*labels).inc()
    metrics.REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)


def answered_by(request: Request, version: int, variant: str | None) -> None:
    """Records which version and variant answered (the request's metrics labels)."""
    request.state.version, request.state.variant = version, variant


def session_of(request: Request) -> ServingSession:
    return cast(ServingSession, request.app.state.session)


class ModelRoute(APIRoute):
    """Names, answers errors of, logs failures of and counts every model request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = super().get_route_handler()

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            given = request.headers.get("x-request-id", "")
            request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
            state = request.state
            state.request_id, state.started, state.client = request_id, started, ANONYMOUS
            state.version, state.variant = None, None
            session = session_of(request)
            state.model = session.default_model  # until the request names a served one
            try:
                response = await endpoint(request)
            except Exception as error:  # noqa: BLE001 - every failure gets an answer and a row
                response = await answer_error(session, error, request_id=request_id,
                                              client=state.client, started=started,
                                              model=state.model)
            tracing.answered(request_id, state.model, state.version, state.variant)
            count(state.model, response.status_code, state.version, state.variant, started)
            response.headers["X-Request-ID"] = request_id
            return response

        return handle
