"""TF Serving's REST protocol: ``/v1/models/NAME[/versions/N|/labels/L][/metadata|:predict]``.

Bodies and replies are shaped by ``core.serving.protocol``; here is only which version
a path names and who may ask.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.app import ModelState, ModelVersion, ServingSession
from core.serving import protocol
from core.serving.bookkeeping import ModelRoute, answered_by, json_response
from core.serving.dependencies import (
    Predictor,
    Session,
    Viewer,
    on_the_way,
    predict_and_log,
    served_model,
)

router = APIRouter(route_class=ModelRoute, tags=["TF Serving"])

PREDICT_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "example": {"instances": [{"b64": "<base64 of a PNG or JPEG file>"}]}}}}}


def _named(request: Request, session: ServingSession, name: str, version: str | None = None,
           label: str | None = None) -> tuple[ModelState, ModelVersion | None]:
    """The model a path names, and its version (None: the path names only the model)."""
    model = served_model(request, session, name)
    if version is not None:
        return model, model.version(version)
    if label is not None:
        return model, model.label(label)
    return model, None


def _status(named: tuple[ModelState, ModelVersion | None]) -> Response:
    model, chosen = named
    versions = [chosen] if chosen is not None else list(model.versions.values())
    return json_response(protocol.version_status(versions))


@router.get("/v1/models")
async def list_models(request: Request, caller: Viewer, session: Session) -> Response:
    """Every model this server serves, with its champion and versions (not part of TF
    Serving's protocol, whose server reads the list from a configuration file)."""
    return json_response({"models": [
        {"name": name, "champion": model.champion.version,
         "versions": [{"version": v.version, "status": v.status,
                       "class_names": list(v.class_names)}
                      for v in sorted(model.versions.values(), key=lambda v: v.version)]}
        for name, model in session.state.models.items()]})


@router.get("/v1/models/{name}")
async def model_status(name: str, request: Request, caller: Viewer, session: Session
                       ) -> Response:
    """Every version of the model, each AVAILABLE."""
    return _status(_named(request, session, name))


@router.get("/v1/models/{name}/versions/{version}")
async def version_status(name: str, version: str, request: Request, caller: Viewer,
                         session: Session) -> Response:
    return _status(_named(request, session, name, version=version))


@router.get("/v1/models/{name}/labels/{label}")
async def label_status(name: str, label: str, request: Request, caller: Viewer,
                       session: Session) -> Response:
    return _status(_named(request, session, name, label=label))


def _metadata(request: Request, session: ServingSession,
              named: tuple[ModelState, ModelVersion | None]) -> Response:
    model, chosen = named
    chosen = chosen or model.champion
    size = session.predictor(chosen).embedding_size
    answered_by(request, chosen.version, None)
    return json_response(protocol.metadata(model.name, chosen, size))


@router.get("/v1/models/{name}/metadata")
async def model_metadata(name: str, request: Request, caller: Viewer, session: Session
                         ) -> Response:
    """The champion's signature: input shape and dtype, outputs, class names."""
    return _metadata(request, session, _named(request, session, name))


@router.get("/v1/models/{name}/versions/{version}/metadata")
async def version_metadata(name: str, version: str, request: Request, caller: Viewer,
                           session: Session) -> Response:
    return _metadata(request, session, _named(request, session, name, version=version))


@router.get("/v1/models/{name}/labels/{label}/metadata")
async def label_metadata(name: str, label: str, request: Request, caller: Viewer,
                         session: Session) -> Response:
    return _metadata(request, session, _named(request, session, name, label=label))


async def _predict(request: Request, session: ServingSession, caller: Predictor,
                   named: tuple[ModelState, ModelVersion | None]) -> Response:
    model, chosen = named
    with on_the_way(request) as ticket, session.backends.decoder.request() as pixels:
        body = await request.body()
        instances, columnar = await run_in_threadpool(protocol.instances, session, body,
                                                      pixels)
        predictions, _ = await predict_and_log(request, session, caller, model, instances,
                                               chosen, ticket)
    return json_response(protocol.predict_reply(predictions, columnar))


@router.post("/v1/models/{name}:predict", openapi_extra=PREDICT_DOC)
async def model_predict(name: str, request: Request, caller: Predictor, session: Session
                        ) -> Response:
    """Answered by the champion, or by the candidate under the traffic policy."""
    return await _predict(request, session, caller, _named(request, session, name))


@router.post("/v1/models/{name}/versions/{version}:predict", openapi_extra=PREDICT_DOC)
async def version_predict(name: str, version: str, request: Request, caller: Predictor,
                          session: Session) -> Response:
    return await _predict(request, session, caller,
                          _named(request, session, name, version=version))


@router.post("/v1/models/{name}/labels/{label}:predict", openapi_extra=PREDICT_DOC)
async def label_predict(name: str, label: str, request: Request, caller: Predictor,
                        session: Session) -> Response:
    """``champion``, or ``candidate`` (the traffic policy's, else the newest)."""
    return await _predict(request, session, caller,
                          _named(request, session, name, label=label))
