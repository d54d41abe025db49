"""For the platform running the server: liveness, readiness, Prometheus metrics. Neither
named, logged nor counted (``core.serving.bookkeeping``)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

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
    """Prometheus exposition: requests, latency, predictions by class, model loads,
    log batches. With ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
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
    body, content_type = metrics.exposition(config.metrics_dir)
    return Response(body, media_type=content_type)
