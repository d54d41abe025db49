"""The phone app (docs/phone.md): its files at ``/app/``, the model file it runs on the
device, and ``POST /v1/predictions:sync``, where it hands in what it answered offline.

The device file and its metadata need ``predict`` (whoever may ask the server for an
answer may run the model themselves); syncing needs ``sync``, which only a ``device``
key has.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from core.app import (
    DeviceAnswer,
    DeviceModels,
    ServingSession,
    parse_time,
    sync_device_answers,
)
from core.errors import InvalidInput, VersionNotFound
from core.serving import metrics
from core.serving.bookkeeping import ModelRoute, answered_by, json_response
from core.serving.dependencies import Caller, Predictor, Session, allowed, served_model

LOGGER = logging.getLogger("core.serving")
STATIC = Path(__file__).resolve().parent.parent / "phone"
router = APIRouter(route_class=ModelRoute, tags=["Phone app"])
Syncer = Annotated[Caller, Depends(allowed("sync"))]
_FIX = ("To fix this, send {\"predictions\": [{\"id\", \"at\", \"model\", \"version\", "
        "\"probabilities\", \"latency_ms\", \"image\": {\"b64\"}}]} (docs/phone.md).")


def device_models(request: Request) -> DeviceModels:
    models: DeviceModels = request.app.state.device_models
    return models


@router.get("/v1/device")
async def default_device_metadata(request: Request, caller: Predictor, session: Session
                                  ) -> Response:
    """The default model's device model (``/v1/models/{name}/device`` for another)."""
    return await _device_metadata(request, session, None)


@router.get("/v1/models/{name}/device")
async def device_metadata(name: str, request: Request, caller: Predictor, session: Session
                          ) -> Response:
    """The champion's device model: version, classes, input and where its file is."""
    return await _device_metadata(request, session, name)


async def _device_metadata(request: Request, session: ServingSession, name: str | None
                           ) -> Response:
    model = served_model(request, session, name)
    built = await run_in_threadpool(device_models(request).of, model.champion)
    answered_by(request, built.version.version, "champion")
    url = f"/v1/models/{model.name}/versions/{built.version.version}/device.tflite"
    response = json_response(built.metadata(url))
    response.headers["Cache-Control"] = "no-cache"  # the champion changes with a promotion
    return response


@router.get("/v1/models/{name}/versions/{version}/device.tflite")
async def device_file(name: str, version: str, request: Request, caller: Predictor,
                      session: Session) -> Response:
    """The champion's device file (TFLite, batch 1): never changes, so cached for good.
    Only the champion's: other versions' weights are exports (operators, audited)."""
    model = served_model(request, session, name)
    chosen = model.version(version)
    if chosen.version != model.champion.version:
        raise VersionNotFound(f"version {chosen.version} is not the champion, and only the "
                              "champion's device file is served. To fix this, ask "
                              f"GET /v1/models/{model.name}/device for the current one.")
    built = await run_in_threadpool(device_models(request).of, chosen)
    answered_by(request, built.version.version, "direct")
    return Response(built.data, media_type="application/octet-stream", headers={
        "Cache-Control": "private, max-age=31536000, immutable", "ETag": built.sha256})


@router.post("/v1/predictions:sync", openapi_extra={"requestBody": {"content": {
    "application/json": {"example": {"predictions": [{
        "id": "6f1c0b7e-3d0a-4f6e-9c51-2a9d8e7b1c44", "at": "2026-12-05T10:00:00.000Z",
        "model": "classifier", "version": 1, "probabilities": [0.9, 0.1],
        "latency_ms": 3.2, "image": {"b64": "<PNG at the model's input size>"}}]}}}}})
async def sync(request: Request, caller: Syncer, session: Session) -> Response:
    """Stores a device's offline answers as logged predictions (source ``device``), once
    each by their id: ``acknowledged`` lists the ids the device may drop from its queue
    (stored now or before); ``rejected`` the ones that will never be stored, and why."""
    answers = parse_sync_body(await request.body())
    result = await run_in_threadpool(sync_device_answers, session, caller.client,
                                     answers, datetime.now(UTC))
    metrics.DEVICE_SYNCED.labels("stored").inc(len(result.stored))
    metrics.DEVICE_SYNCED.labels("already_stored").inc(len(result.known))
    metrics.DEVICE_SYNCED.labels("rejected").inc(len(result.rejected))
    metrics.DEVICE_SYNCED.labels("disagreed").inc(result.disagreed)
    return json_response(result.as_dict())


def parse_sync_body(body: bytes) -> list[DeviceAnswer]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidInput(f"the body is not valid JSON. {_FIX}") from None
    rows = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise InvalidInput(f"the body has no list of predictions. {_FIX}")
    return [_answer(row) for row in rows]


def _answer(row: dict) -> DeviceAnswer:
    try:
        image = row["image"]["b64"]
        size = row.get("size")
        return DeviceAnswer(
            id=str(row["id"]), at=parse_time(row["at"]), model=row.get("model"),
            version=int(row["version"]),
            probabilities=[float(p) for p in row["probabilities"]],
            latency_ms=float(row["latency_ms"]),
            image=base64.b64decode(image, validate=True),
            size=(int(size[0]), int(size[1])) if size else None)
    except (KeyError, TypeError, ValueError, IndexError, binascii.Error) as error:
        raise InvalidInput(f"a prediction is missing a field or has one of the wrong type "
                           f"({type(error).__name__}: {error}). {_FIX}") from None


class AppFiles(StaticFiles):
    """The app shell: revalidated on every load (the service worker keeps the offline
    copy), so an updated server's app reaches phones the next time they are online."""

    def file_response(self, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        if str(args[0]).endswith(".webmanifest"):
            response.headers["Content-Type"] = "application/manifest+json"
        return response


def mount_app(app: FastAPI) -> None:
    """Serves the phone app at ``/app/`` (its files: core/serving/phone)."""
    if not (STATIC / "vendor" / "VERSIONS").is_file():
        LOGGER.warning("the phone app's runtime (LiteRT.js) is missing, so /app/ cannot "
                       "start. To fix this, run 'make install' (or 'python -m "
                       "core.serving.phone_runtime').")
    app.state.device_models = DeviceModels(app.state.session)
    app.add_api_route("/app", lambda: RedirectResponse("/app/"), include_in_schema=False)
    app.mount("/app", AppFiles(directory=STATIC, html=True), name="app")
