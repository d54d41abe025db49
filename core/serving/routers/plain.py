"""Plain endpoints for programs that send an image file: ``/v1/predict``, ``/v1/explain``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.app import decode_instances, encode_png, explain_image
from core.errors import ImageError
from core.serving.bookkeeping import ModelRoute, answered_by, json_response
from core.serving.dependencies import (
    Predictor,
    Session,
    on_the_way,
    predict_and_log,
    served_model,
)
from core.serving.limits import BodyTooLarge

router = APIRouter(route_class=ModelRoute, tags=["plain"])

UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}}}}}}}


def header_text(value: str) -> str:
    """``value`` as an HTTP header value: as it is when plain printable ASCII, otherwise
    RFC 8187's UTF-8 form (``UTF-8''T%E6%81%A4`` for "T恤"): HTTP headers carry bytes
    Latin-1 at most, and a class name may be in any script."""
    if value.isascii() and value.isprintable():
        return value
    return "UTF-8''" + quote(value, safe="")


async def uploaded(request: Request) -> bytes:
    """The file of a multipart form's field ``file``."""
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


ModelName = Annotated[str | None, Query(
    alias="model", description="the model to ask (default: the server's MODEL_NAME)")]


@router.post("/v1/predict", openapi_extra=UPLOAD_DOC)
async def predict(request: Request, caller: Predictor, session: Session,
                  model_name: ModelName = None) -> Response:
    """One uploaded image -> label, confidence, probabilities, version, latency."""
    model = served_model(request, session, model_name)
    with on_the_way(request) as ticket, session.backends.decoder.request() as pixels:
        data = await uploaded(request)
        instances = await run_in_threadpool(decode_instances, session.backends.decoder, [data],
                                            pixels)
        predictions, assignment = await predict_and_log(request, session, caller, model,
                                                        instances, ticket=ticket)
    return json_response(predictions[0].as_dict() | {
        "variant": assignment.variant, "request_id": request.state.request_id,
        "latency_ms": round((time.perf_counter() - request.state.started) * 1000, 3)})


@router.post("/v1/explain", openapi_extra=UPLOAD_DOC, response_class=Response,
             responses={200: {"content": {"image/png": {}},
                              "description": "the Grad-CAM overlay"}})
async def explain(request: Request, caller: Predictor, session: Session,
                  model_name: ModelName = None) -> Response:
    """One uploaded image -> its Grad-CAM overlay as PNG (``?class=`` to choose the
    class; default the predicted one). Headers say the class and version."""
    model = served_model(request, session, model_name)
    data = await uploaded(request)
    result = await run_in_threadpool(
        explain_image, model.backends, data, actor=caller.actor.name, source="api",
        now=datetime.now(UTC), class_name=request.query_params.get("class"), wait=0,
        heatmap_required=True)
    png = await run_in_threadpool(encode_png, result.overlay)
    version = result.prediction.version
    answered_by(request, version, "direct")
    return Response(png, media_type="image/png", headers={
        "X-Predicted-Class": header_text(result.prediction.label),
        "X-Explained-Class": header_text(result.explained_class),
        # true: no region raised the class's score; the PNG shows no heat.
        "X-Heatmap-Empty": "true" if result.heatmap_empty else "false",
        "X-Model-Version": str(version)})
