"""The Open Inference Protocol (V2): ``/v2``, ``/v2/health/live|ready``,
``/v2/models/NAME[/versions/N][/ready|/infer]``.

Bodies and replies are shaped by ``core.serving.open_inference``; an ``/infer`` is
authorized, routed (shadow, canary), logged and counted exactly like TF Serving's
``:predict`` (the same ``ModelRoute`` and ``predict_and_log``). Errors are the
protocol's ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.app import (
    Instance,
    ModelState,
    ModelVersion,
    RequestPixels,
    ServingSession,
    decode_instances,
)
from core.serving import open_inference
from core.serving.bookkeeping import ModelRoute, answered_by, json_response
from core.serving.dependencies import (
    Predictor,
    Session,
    Viewer,
    on_the_way,
    predict_and_log,
    served_model,
)

router = APIRouter(route_class=ModelRoute, tags=["Open Inference Protocol (V2)"])
health = APIRouter(tags=["Open Inference Protocol (V2)"])  # neither logged nor counted

INFER_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "example": {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                            "data": ["<base64 of a PNG or JPEG file>"]}]}}}}}


@health.get("/v2")
async def server_metadata(request: Request) -> Response:
    """The server's name, version (the API's, as in /openapi.json) and extensions."""
    return json_response({"name": request.app.title, "version": request.app.version,
                          "extensions": open_inference.EXTENSIONS})


@health.get("/v2/health/live")
async def live() -> Response:
    """The process is alive."""
    return json_response({"live": True})


@health.get("/v2/health/ready")
async def ready(session: Session) -> Response:
    """A model is loaded and the database answers (503 otherwise, like ``/readyz``)."""
    is_ready, detail = session.ready()
    return json_response({"ready": is_ready, "detail": detail}, 200 if is_ready else 503)


def _named(request: Request, session: ServingSession, name: str, version: str | None
           ) -> tuple[ModelState, ModelVersion | None]:
    model = served_model(request, session, name)
    return model, None if version is None else model.version(version)


def _metadata(request: Request, session: ServingSession, name: str, version: str | None
              ) -> Response:
    model, chosen = _named(request, session, name, version)
    chosen = chosen or model.champion
    predictor = session.predictor(chosen)
    answered_by(request, chosen.version, None)
    versions = [chosen] if version is not None else list(model.versions.values())
    return json_response(open_inference.model_metadata(
        model.name, versions, chosen, predictor.embedding_size, predictor.ood is not None))


@router.get("/v2/models/{name}")
async def model_metadata(name: str, request: Request, caller: Viewer, session: Session
                         ) -> Response:
    """The champion's input and outputs, and the versions that may be asked for."""
    return _metadata(request, session, name, None)


@router.get("/v2/models/{name}/versions/{version}")
async def version_metadata(name: str, version: str, request: Request, caller: Viewer,
                           session: Session) -> Response:
    return _metadata(request, session, name, version)


def _ready(request: Request, session: ServingSession, name: str, version: str | None
           ) -> Response:
    model, chosen = _named(request, session, name, version)
    session.predictor(chosen or model.champion)  # loaded, or the load's error answers
    return json_response({"name": model.name, "ready": True})


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str, request: Request, caller: Viewer, session: Session
                      ) -> Response:
    """200 once the champion is loaded; 404 for a model this server does not serve."""
    return _ready(request, session, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready")
async def version_ready(name: str, version: str, request: Request, caller: Viewer,
                        session: Session) -> Response:
    return _ready(request, session, name, version)


def _instances(session: ServingSession, body: bytes, header_length: str | None,
               pixels: RequestPixels) -> tuple[open_inference.InferRequest, list[Instance]]:
    """Runs off the event loop: parsing and decoding take CPU time."""
    pixels.take(len(body), "the JSON body (one pixel per byte until parsed)")
    parsed = open_inference.parse_infer(body, header_length,
                                        session.backends.config.max_instances)
    return parsed, decode_instances(session.backends.decoder, parsed.inputs, pixels)


async def _infer(request: Request, session: ServingSession, caller: Predictor, name: str,
                 version: str | None) -> Response:
    model, chosen = _named(request, session, name, version)
    with on_the_way(request) as ticket, session.backends.decoder.request() as pixels:
        body = await request.body()
        parsed, instances = await run_in_threadpool(
            _instances, session, body, request.headers.get(open_inference.HEADER_LENGTH),
            pixels)
        predictions, assignment = await predict_and_log(request, session, caller, model,
                                                        instances, chosen, ticket)
    reply, binary = open_inference.infer_reply(
        model.name, parsed, predictions,
        {"variant": assignment.variant, "request_id": request.state.request_id})
    if not binary:
        return json_response(reply)
    header = json.dumps(reply).encode()
    return Response(header + binary, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


@router.post("/v2/models/{name}/infer", openapi_extra=INFER_DOC)
async def model_infer(name: str, request: Request, caller: Predictor, session: Session
                      ) -> Response:
    """Answered by the champion, or by the candidate under the traffic policy."""
    return await _infer(request, session, caller, name, None)


@router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=INFER_DOC)
async def version_infer(name: str, version: str, request: Request, caller: Predictor,
                        session: Session) -> Response:
    return await _infer(request, session, caller, name, version)
