"""TF Serving's REST protocol: request bodies in, replies out (no HTTP here).

The shapes follow https://www.tensorflow.org/tfx/serving/api_rest for the
signature our versions export (``serving_default``: input ``image`` float32
[-1, h, w, c]; outputs ``probabilities`` [-1, K] and ``embedding`` [-1, E]):

- row format ``{"instances": [...]}`` -> ``{"predictions": [...]}``; with more than
  one output each prediction is an object keyed by output name, as TF Serving does;
- columnar ``{"inputs": ...}`` -> ``{"outputs": {name: [...]}}``.

Besides the signature's outputs, a reply carries ``ood_score`` and ``unfamiliar``
(``core.ml.ood``; null for a version without an OOD detector): our extension,
where TF Serving clients that read only the outputs they know see no difference.

An instance is the input tensor (nested lists), that tensor keyed by the input's
name, or ``{"b64": "<image file>"}``. The last is our extension: TF Serving
decodes ``b64`` only into string tensors, so it would refuse it for a float
input; we decode the image and preprocess it exactly as the dashboard does.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from core.app import (
    Instance,
    ModelVersion,
    Prediction,
    RequestPixels,
    ServingSession,
    decode_instances,
)
from core.errors import InvalidInput

INPUT_NAME = "image"
SIGNATURE = "serving_default"
_SHAPE_FIX = ("To fix this, send {\"instances\": [<[height][width][channels] floats>, ...]} "
              "or {\"instances\": [{\"b64\": \"<base64 image file>\"}]}.")


@dataclass(frozen=True)
class PredictBody:
    values: list  # one raw value per instance: nested lists, or {"b64": ...}
    columnar: bool


def parse_predict_body(body: bytes, max_instances: int) -> PredictBody:
    """Checks a ``:predict`` body's shape; the values are decoded by ``instances``."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the body is not valid JSON ({error}). {_SHAPE_FIX}") from None
    except RecursionError:
        raise InvalidInput("the body's JSON is nested too deeply to read. To fix this, send "
                           "each instance as [height][width][channels] numbers (three "
                           "levels), or as {\"b64\": \"<base64 image file>\"}.") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"the body is a JSON {type(document).__name__}, not an object. "
                           f"{_SHAPE_FIX}")
    signature = document.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise InvalidInput(f"unknown signature_name {signature!r}. To fix this, use "
                           f"{SIGNATURE!r} or leave it out.")
    if ("instances" in document) == ("inputs" in document):
        raise InvalidInput("the body needs exactly one of \"instances\" (row format) or "
                           f"\"inputs\" (columnar format). {_SHAPE_FIX}")
    columnar = "inputs" in document
    values = document["inputs" if columnar else "instances"]
    if isinstance(values, dict) and not _is_b64(values):
        values = _named_input(values)
    if _is_b64(values):  # columnar with a single b64 image
        values = [values]
    if not isinstance(values, list) or not values:
        raise InvalidInput(f"\"{'inputs' if columnar else 'instances'}\" must be a non-empty "
                           f"list. {_SHAPE_FIX}")
    if len(values) > max_instances:
        raise InvalidInput(f"the request has {len(values)} instances. To fix this, send at "
                           f"most {max_instances} per request (or raise MAX_INSTANCES).")
    if not columnar:
        values = [_named_input(v) if isinstance(v, dict) and not _is_b64(v) else v
                  for v in values]
    return PredictBody(values, columnar)


def _is_b64(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _named_input(value: dict) -> object:
    if set(value) != {INPUT_NAME}:
        raise InvalidInput(f"unknown input name(s) {sorted(value)}; the signature's only "
                           f"input is {INPUT_NAME!r}. {_SHAPE_FIX}")
    return value[INPUT_NAME]


def instances(session: ServingSession, body: bytes, pixels: RequestPixels
              ) -> tuple[list[Instance], bool]:
    """A ``:predict`` body's instances, images decoded within ``pixels``, and whether it
    was columnar. Runs off the event loop: parsing and decoding take CPU time."""
    # Parsed JSON takes several bytes of memory per byte of text: counted like pixels.
    pixels.take(len(body), "the JSON body (one pixel per byte until parsed)")
    parsed = parse_predict_body(body, session.backends.config.max_instances)
    return decode_instances(session.backends.decoder, [_input(value) for value in parsed.values],
                            pixels), \
        parsed.columnar


def _input(value: object) -> bytes | object:
    """An instance's image file (from ``{"b64": ...}``), or its tensor as sent."""
    if not isinstance(value, dict) or not _is_b64(value):
        return value
    encoded = value["b64"]
    if not isinstance(encoded, str):
        raise InvalidInput("\"b64\" must be a string of base64. " + _SHAPE_FIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("\"b64\" is not valid base64. To fix this, encode the image "
                           "file's bytes with standard base64 (RFC 4648).") from None


def predict_reply(predictions: list[Prediction], columnar: bool) -> dict:
    """The reply TF Serving gives for our signature's two outputs."""
    outputs = {"probabilities": [list(p.probabilities.values()) for p in predictions],
               "embedding": [p.embedding.astype(float).tolist() for p in predictions],
               "ood_score": [p.ood_score for p in predictions],
               "unfamiliar": [p.unfamiliar for p in predictions]}
    if columnar:
        return {"outputs": outputs}
    return {"predictions": [{name: values[i] for name, values in outputs.items()}
                            for i in range(len(predictions))]}


def version_status(versions: list[ModelVersion]) -> dict:
    """``GET /v1/models/{model}[/versions/N]``: every registered version can be addressed."""
    return {"model_version_status": [
        {"version": str(v.version), "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}
        for v in sorted(versions, key=lambda v: -v.version)]}


def metadata(model: str, version: ModelVersion, embedding_size: int) -> dict:
    """``GET /v1/models/{model}/metadata``: the signature, in TF Serving's shape."""
    spec = version.metadata.input_spec

    def tensor(name: str, dims: list[int]) -> dict:
        return {"dtype": "DT_FLOAT", "name": name, "tensor_shape": {
            "dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}}

    classes = len(version.class_names)
    return {
        "model_spec": {"name": model, "signature_name": "", "version": str(version.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: {
            "inputs": {INPUT_NAME: tensor(f"{SIGNATURE}_{INPUT_NAME}:0", [
                -1, spec["height"], spec["width"], spec["channels"]])},
            "outputs": {"probabilities": tensor("StatefulPartitionedCall:0", [-1, classes]),
                        "embedding": tensor("StatefulPartitionedCall:1",
                                            [-1, embedding_size])},
            "method_name": "tensorflow/serving/predict",
        }}, "class_names": list(version.class_names)}},
    }
