"""The HTTP API: ``python -m core serve``. FastAPI on uvicorn, one ``ServingSession`` per process.

Every request goes through ``_Handler.run``: it names the request (``X-Request-ID``,
given or made), identifies the caller (``Authorization: Bearer <key>`` or
anonymous), runs the endpoint, turns a ``CoreError`` into TF Serving's
``{"error": "..."}`` with a 4xx status, records failures in the prediction log
and counts everything in Prometheus metrics. A prediction is answered only after
its log row is committed.

Parsing a body and decoding its images run in the thread pool (big images in a
decoding process, ``core.app.uploads``), within the process's budget of decoded pixels:
a request that would pass it is answered 413 (its own limit) or 503 with
``Retry-After`` (the process's), before any pixel is decoded. The model call runs on the
event loop: a TFLite call on one small image takes well under a millisecond, less than a
thread hop. Grad-CAM (TensorFlow, tens of milliseconds) runs in the thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.app import (
    ANONYMOUS,
    Actor,
    ApiKey,
    Assignment,
    Instance,
    ModelVersion,
    Prediction,
    ServingSession,
    build_backends,
    encode_png,
    explain_image,
)
from core.config import Config, load_config
from core.errors import (
    ActionRefused,
    CoreError,
    ImageError,
    ModelError,
    Overloaded,
    RateLimited,
    RegistryError,
    RequestTooLarge,
    StorageUnavailable,
    Unauthenticated,
    VersionNotFound,
)
from core.serving import metrics, protocol

LOGGER = logging.getLogger("core.serving")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# JSON carries an image as base64 (4/3 of its size); leave room for the rest of the body.
BODY_OVERHEAD = 64 * 1024


def body_limit(config: Config) -> int:
    return config.max_upload_bytes * 4 // 3 + BODY_OVERHEAD


class BodyTooLarge(RequestTooLarge):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the request body is over {size:,} bytes, over the limit of "
                         f"{limit:,}. To fix this, send a smaller image (the limit follows "
                         "MAX_UPLOAD_BYTES).")


def _status_of(error: Exception) -> tuple[int, str]:
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
    if isinstance(error, RegistryError):
        return 409, "invalid_input"
    if isinstance(error, (ModelError, StorageUnavailable)):
        return 503, "internal"
    if isinstance(error, CoreError):  # InvalidInput, ImageError, DatasetError
        return 400, "invalid_input"
    return 500, "internal"


def header_text(value: str) -> str:
    """``value`` as an HTTP header value: as it is when plain printable ASCII, otherwise
    RFC 8187's UTF-8 form (``UTF-8''T%E6%81%A4`` for "T恤"): HTTP headers carry bytes
    Latin-1 at most, and a class name may be in any script."""
    if value.isascii() and value.isprintable():
        return value
    return "UTF-8''" + quote(value, safe="")


def _client(key: ApiKey | None) -> str:
    return key.name if key else ANONYMOUS


def _json(document: dict, status: int = 200) -> Response:
    return JSONResponse(document, status_code=status)


@dataclass
class Outcome:
    """What an endpoint answered, and which version and variant answered it."""

    response: Response
    version: int | None = None
    variant: str | None = None


Endpoint = Callable[[Actor, ApiKey | None, str, float], Awaitable[Outcome]]


class _Handler:
    """Per-request bookkeeping shared by every endpoint."""

    def __init__(self, session: ServingSession):
        self.session = session
        self.model = session.model

    async def run(self, request: Request, endpoint: Endpoint) -> Response:
        started = time.perf_counter()
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        client, version, variant = ANONYMOUS, None, None
        try:
            actor, key = self.session.authenticate(request.headers.get("authorization"))
            client = _client(key)
            outcome = await endpoint(actor, key, request_id, started)
            response, version, variant = outcome.response, outcome.version, outcome.variant
        except Exception as error:  # noqa: BLE001 - every failure gets an answer and a row
            response = await self.fail(error, request_id=request_id, client=client,
                                       started=started)
        self.count(response.status_code, version, variant, started)
        response.headers["X-Request-ID"] = request_id
        return response

    async def fail(self, error: Exception, *, request_id: str, client: str, started: float,
                   version: int | None = None, variant: str | None = None) -> Response:
        status, kind = _status_of(error)
        if status == 500:
            LOGGER.exception("request %s failed", request_id, exc_info=error)
            message = (f"internal error (request {request_id}). To fix this, retry; if it "
                       "persists, give the request id to the server's operator.")
        else:
            message = str(error)
        response = _json({"error": message}, status)
        if isinstance(error, (RateLimited, Overloaded)):
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        if isinstance(error, Unauthenticated):
            response.headers["WWW-Authenticate"] = "Bearer"
        try:
            recorded = self.session.record_failure(
                now=datetime.now(UTC), status=status, error_kind=kind,
                latency_ms=(time.perf_counter() - started) * 1000, client=client,
                request_id=request_id, version=version, variant=variant)
            # Busy is about the database or the log writer: the failure's row would wait
            # on the same, so the answer goes out now and the row follows when it can.
            if not isinstance(error, Overloaded):
                await asyncio.wrap_future(recorded)
        except Exception:  # noqa: BLE001 - the answer still goes out
            LOGGER.exception("could not record failed request %s", request_id)
        return response

    def count(self, status: int, version: int | None, variant: str | None,
              started: float) -> None:
        labels = (self.model, "" if version is None else str(version), variant or "",
                  str(status))
        metrics.REQUESTS.labels(*labels).inc()
        metrics.REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)

    async def predict(self, instances: list[Instance], *, client: str, request_id: str,
                      started: float, version: ModelVersion | None = None
                      ) -> tuple[list[Prediction], Assignment]:
        """Predicts (the caller is authorized), waits for the rows' commit, counts."""
        session = self.session
        assignment = session.assignment(request_id, version=version)
        served = session.predict(instances, assignment, client=client, request_id=request_id,
                                 now=datetime.now(UTC), started=started)
        await asyncio.wrap_future(served.logged)
        for prediction in served.predictions:
            metrics.PREDICTIONS.labels(self.model, str(prediction.version), assignment.variant,
                                       prediction.label).inc()
        if served.shadow is not None and served.shadow_error:
            metrics.SHADOW_ERRORS.labels(self.model, str(served.shadow)).inc()
        return served.predictions, assignment


class BodyLimit:
    """Answers 413 to a body over ``limit`` bytes before anything reads it."""

    def __init__(self, app: ASGIApp, limit: int, handler: _Handler):
        self.app, self.limit, self.handler = app, limit, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(scope, receive, send, BodyTooLarge(int(length), self.limit))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(received, self.limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge as error:  # raised outside an endpoint's own handling
            await self._refuse(scope, receive, send, error)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send,
                      error: BodyTooLarge) -> None:
        started = time.perf_counter()
        response = await self.handler.fail(error, request_id=uuid.uuid4().hex,
                                           client=ANONYMOUS, started=started)
        self.handler.count(413, None, None, started)
        await response(scope, receive, send)


def create_app(config: Config | None = None, *, log_predictions: bool = True) -> FastAPI:
    """The API for ``config`` (default: from the environment). uvicorn calls it once per
    worker process (``--factory``)."""
    config = config or load_config()
    session = ServingSession(
        build_backends(config), log_predictions=log_predictions,
        on_load=lambda version, seconds: metrics.MODEL_LOAD.labels(
            config.model_name, str(version)).observe(seconds),
        on_commit=metrics.observe_commit)
    handler = _Handler(session)
    model = config.model_name

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        session.start()
        try:
            yield
        finally:
            session.close()

    app = FastAPI(
        title="Vision model operations: serving API",
        description="TF Serving's REST protocol (`/v1/models/...`) and plain endpoints "
                    "(`/v1/predict`, `/v1/explain`). Authenticate with "
                    "`Authorization: Bearer <key>` (`python -m core keys create`).",
        lifespan=lifespan)
    app.state.session = session
    app.add_middleware(BodyLimit, limit=body_limit(config), handler=handler)

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, error: StarletteHTTPException) -> Response:
        return _json({"error": f"no endpoint {request.method} {request.url.path} "
                               f"({error.detail}). To fix this, see /docs."}, error.status_code)

    # --- TF Serving's protocol -----------------------------------------------------

    def status_endpoint(pick: Callable[[str], list]):
        async def endpoint(actor, key, request_id, started) -> Outcome:
            session.authorize(actor, key, "view", datetime.now(UTC))
            return Outcome(_json(protocol.version_status(pick(request_id))))
        return endpoint

    @app.get("/v1/models/{name}", tags=["TF Serving"])
    async def model_status(name: str, request: Request) -> Response:
        """Every version of the model, each AVAILABLE."""
        def versions(_):
            session.check_model(name)
            return list(session.state.versions.values())
        return await handler.run(request, status_endpoint(versions))

    @app.get("/v1/models/{name}/versions/{version}", tags=["TF Serving"])
    async def version_status(name: str, version: str, request: Request) -> Response:
        def versions(_):
            session.check_model(name)
            return [session.version(version)]
        return await handler.run(request, status_endpoint(versions))

    @app.get("/v1/models/{name}/labels/{label}", tags=["TF Serving"])
    async def label_status(name: str, label: str, request: Request) -> Response:
        def versions(_):
            session.check_model(name)
            return [session.label(label)]
        return await handler.run(request, status_endpoint(versions))

    def metadata_endpoint(name: str, version: str | None = None, label: str | None = None):
        async def endpoint(actor, key, request_id, started) -> Outcome:
            session.authorize(actor, key, "view", datetime.now(UTC))
            session.check_model(name)
            chosen = (session.version(version) if version is not None
                      else session.label(label) if label is not None
                      else session.state.champion)
            size = session.predictor(chosen).embedding_size
            return Outcome(_json(protocol.metadata(model, chosen, size)), chosen.version)
        return endpoint

    @app.get("/v1/models/{name}/metadata", tags=["TF Serving"])
    async def model_metadata(name: str, request: Request) -> Response:
        """The champion's signature: input shape and dtype, outputs, class names."""
        return await handler.run(request, metadata_endpoint(name))

    @app.get("/v1/models/{name}/versions/{version}/metadata", tags=["TF Serving"])
    async def version_metadata(name: str, version: str, request: Request) -> Response:
        return await handler.run(request, metadata_endpoint(name, version=version))

    @app.get("/v1/models/{name}/labels/{label}/metadata", tags=["TF Serving"])
    async def label_metadata(name: str, label: str, request: Request) -> Response:
        return await handler.run(request, metadata_endpoint(name, label=label))

    def predict_endpoint(request: Request, name: str, version: str | None = None,
                         label: str | None = None):
        async def endpoint(actor, key, request_id, started) -> Outcome:
            session.authorize(actor, key, "predict", datetime.now(UTC))
            session.check_model(name)
            chosen = (session.version(version) if version is not None
                      else session.label(label) if label is not None else None)
            body = await request.body()
            with session.backends.decoder.request() as pixels:
                instances, columnar = await run_in_threadpool(protocol.instances, session,
                                                              body, pixels)
                predictions, assignment = await handler.predict(
                    instances, client=_client(key), request_id=request_id, started=started,
                    version=chosen)
            return Outcome(_json(protocol.predict_reply(predictions, columnar)),
                           assignment.version, assignment.variant)
        return endpoint

    predict_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "example": {"instances": [{"b64": "<base64 of a PNG or JPEG file>"}]}}}}}

    @app.post("/v1/models/{name}:predict", tags=["TF Serving"], openapi_extra=predict_doc)
    async def model_predict(name: str, request: Request) -> Response:
        """Answered by the champion, or by the candidate under the traffic policy."""
        return await handler.run(request, predict_endpoint(request, name))

    @app.post("/v1/models/{name}/versions/{version}:predict", tags=["TF Serving"],
              openapi_extra=predict_doc)
    async def version_predict(name: str, version: str, request: Request) -> Response:
        return await handler.run(request, predict_endpoint(request, name, version=version))

    @app.post("/v1/models/{name}/labels/{label}:predict", tags=["TF Serving"],
              openapi_extra=predict_doc)
    async def label_predict(name: str, label: str, request: Request) -> Response:
        """``champion``, or ``candidate`` (the traffic policy's, else the newest)."""
        return await handler.run(request, predict_endpoint(request, name, label=label))

    # --- plain endpoints -----------------------------------------------------------

    upload_doc = {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}}}}}}}

    async def uploaded(request: Request) -> bytes:
        try:
            form = await request.form(max_files=1, max_fields=4)
        except BodyTooLarge:
            raise
        except Exception:  # noqa: BLE001 - any other parse failure is the client's body
            raise ImageError("the body is not a readable multipart form. To fix this, send "
                             "the image as multipart/form-data in the field 'file', e.g. "
                             "curl -F file=@photo.jpg ...") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ImageError("no file in the field 'file'. To fix this, send the image as "
                             "multipart/form-data, e.g. curl -F file=@photo.jpg ...")
        return await upload.read()

    @app.post("/v1/predict", tags=["plain"], openapi_extra=upload_doc)
    async def predict(request: Request) -> Response:
        """One uploaded image -> label, confidence, probabilities, version, latency."""
        async def endpoint(actor, key, request_id, started) -> Outcome:
            session.authorize(actor, key, "predict", datetime.now(UTC))
            data = await uploaded(request)
            with session.backends.decoder.request() as pixels:
                instances = await run_in_threadpool(session.instances, [data], pixels)
                predictions, assignment = await handler.predict(
                    instances, client=_client(key), request_id=request_id, started=started)
            answer = predictions[0]
            return Outcome(_json(answer.as_dict() | {
                "variant": assignment.variant, "request_id": request_id,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3)}),
                assignment.version, assignment.variant)
        return await handler.run(request, endpoint)

    @app.post("/v1/explain", tags=["plain"], openapi_extra=upload_doc,
              response_class=Response,
              responses={200: {"content": {"image/png": {}},
                               "description": "the Grad-CAM overlay"}})
    async def explain(request: Request) -> Response:
        """One uploaded image -> its Grad-CAM overlay as PNG (``?class=`` to choose the
        class; default the predicted one). Headers say the class and version."""
        async def endpoint(actor, key, request_id, started) -> Outcome:
            now = datetime.now(UTC)
            session.authorize(actor, key, "predict", now)
            data = await uploaded(request)
            result = await run_in_threadpool(
                explain_image, session.backends, data, actor=actor.name, source="api",
                now=now, class_name=request.query_params.get("class"), wait=0)
            png = await run_in_threadpool(encode_png, result.overlay)
            version = result.prediction.version
            return Outcome(Response(png, media_type="image/png", headers={
                "X-Predicted-Class": header_text(result.prediction.label),
                "X-Explained-Class": header_text(result.explained_class),
                # true: no region raised the class's score; the PNG shows no heat.
                "X-Heatmap-Empty": "true" if result.heatmap_empty else "false",
                "X-Model-Version": str(version)}), version, "direct")
        return await handler.run(request, endpoint)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """The process is alive."""
        return _json({"status": "alive"})

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        """A model is loaded and the database answers (503 otherwise)."""
        ready, detail = session.ready()
        return _json({"status": "ready" if ready else "not ready", "detail": detail},
                     200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus exposition: requests, latency, predictions by class, model loads,
        log batches."""
        body, content_type = metrics.exposition(config.metrics_dir)
        return Response(body, media_type=content_type)

    return app
