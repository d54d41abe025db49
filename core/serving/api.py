"""The HTTP API: ``python -m core serve``. FastAPI on uvicorn, one ``ServingSession`` per
process, assembled from routers (FastAPI's "bigger applications" layout):

- ``routers/tf_serving.py``: TF Serving's REST protocol; ``routers/open_inference.py``:
  the Open Inference Protocol (V2); ``routers/plain.py``: image uploads; all with
  ``bookkeeping.ModelRoute`` (request id, errors, failure rows, metrics) and
  ``dependencies`` (the session, the caller allowed to act, predicting);
- ``routers/device.py``: the phone app at ``/app/``, its device model, its sync;
- ``routers/operations.py``: ``/healthz``, ``/readyz``, ``/metrics`` (and V2's health);
- ``limits.BodyLimit``: the body's size, before anything reads it.

A prediction is answered only after its log row is committed. Parsing a body and
decoding its images run in the thread pool (big images in a decoding process,
``core.app.uploads``), within the process's budget of decoded pixels: a request that
would pass it is answered 413 (its own limit) or 503 with ``Retry-After`` (the
process's), before any pixel is decoded. The model call runs on the event loop: a TFLite
call on one small image takes well under a millisecond, less than a thread hop. Grad-CAM
(TensorFlow, tens of milliseconds) runs in the thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from core.app import ServingSession, build_backends, model_health, tracing
from core.config import Config, load_config
from core.serving import metrics
from core.serving.batching import Batcher
from core.serving.bookkeeping import json_response
from core.serving.limits import BodyLimit, body_limit
from core.serving.routers import device, open_inference, operations, plain, tf_serving


def create_app(config: Config | None = None, *, log_predictions: bool = True) -> FastAPI:
    """The API for ``config`` (default: from the environment). uvicorn calls it once per
    worker process (``--factory``)."""
    config = config or load_config()
    tracing.start_tracing(config, "vision-api")
    # One BLAS thread per server process. A request's matrix products are small (the OOD
    # score's k-NN, the image statistics); with OpenBLAS's default of a thread per core,
    # its idle threads spin between calls, and two workers on two cores spent 8 ms of CPU
    # per 28x28 answer (2.4 ms with one thread; 247 against 754 req/s, `wrk -c 8`).
    threadpool_limits(limits=1, user_api="blas")
    session = ServingSession(
        build_backends(config), log_predictions=log_predictions,
        on_load=lambda model, version, seconds: metrics.MODEL_LOAD.labels(
            model, str(version)).observe(seconds),
        on_commit=metrics.observe_commit, on_backlog=metrics.observe_backlog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session.start()
        try:
            yield
        finally:
            session.close()

    app = FastAPI(
        title="Vision model operations: serving API",
        description="TF Serving's REST protocol (`/v1/models/...`), the Open Inference "
                    "Protocol (`/v2/...`) and plain endpoints "
                    "(`/v1/predict`, `/v1/explain`). Authenticate with "
                    "`Authorization: Bearer <key>` (`python -m core keys create`).",
        lifespan=lifespan)
    app.state.session = session
    app.state.monitoring = metrics.MonitoringCollector(lambda: model_health(session.backends))
    app.state.batcher = Batcher(session, max_wait=config.batch_wait_ms / 1000,
                                max_instances=config.batch_max_instances,
                                mode=config.batching)
    app.add_middleware(BodyLimit, limit=body_limit(config), session=session)
    app.add_exception_handler(StarletteHTTPException, _no_endpoint)  # type: ignore[arg-type]
    for router in (device.router, tf_serving.router, open_inference.router, plain.router,
                   operations.router, open_inference.health):
        app.include_router(router)
    device.mount_app(app)
    return app


async def _no_endpoint(request: Request, error: StarletteHTTPException) -> Response:
    return json_response({"error": f"no endpoint {request.method} {request.url.path} "
                                   f"({error.detail}). To fix this, see /docs."},
                         error.status_code)
