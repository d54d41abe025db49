"""For the platform running the server: liveness, readiness, Prometheus metrics. Neither
named, logged nor counted (``core.serving.bookkeeping``)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.serving import metrics
from core.serving.bookkeeping import json_response
from core.serving.dependencies import Session

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process is alive."""
    return json_response({"status": "alive"})


@router.get("/readyz")
async def readyz(session: Session) -> Response:
    """A model is loaded and the database answers (503 otherwise)."""
    ready, detail = session.ready()
    return json_response({"status": "ready" if ready else "not ready", "detail": detail},
                         200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def prometheus(request: Request, session: Session) -> Response:
    """Prometheus exposition: requests, latency, predictions by class, shadow agreement,
    model loads, the log's batches and backlog, and what the monitor found (drift,
    unfamiliar images, its last pass). With ``METRICS_TOKEN`` set, only for
    ``Authorization: Bearer <token>``."""
    config = session.backends.config
    if config.metrics_token:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {config.metrics_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            response = json_response({"error": "/metrics needs the metrics token. To fix "
                                               "this, send 'Authorization: Bearer "
                                               "<METRICS_TOKEN>' (Prometheus: authorization: "
                                               "{credentials: ...} in the scrape config)."},
                                     401)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
    # The monitor's findings may be read from the database: not on the event loop.
    body, content_type = await run_in_threadpool(
        metrics.exposition, config.metrics_dir, request.app.state.monitoring)
    return Response(body, media_type=content_type)
