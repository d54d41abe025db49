"""The Open Inference Protocol (KServe's V2, spoken by Triton and Seldon's MLServer):
request bodies in, replies out (no HTTP here). https://github.com/kserve/open-inference-protocol

The model's one input is ``image``, by its datatype either

- ``FP32``, shape ``[N, height, width, channels]``: pixels in [0, 1], as the model takes
  them (``data`` flat in row-major order, or nested);
- ``BYTES``, shape ``[N]``: encoded image files (PNG, JPEG, ...), decoded and preprocessed
  exactly as the dashboard does; in JSON each element is the file in standard base64.

Outputs: ``probabilities`` FP32 [N, classes], ``label`` BYTES [N], ``embedding`` FP32
[N, E], and, for a version with an OOD detector, ``ood_score`` FP32 [N] and
``unfamiliar`` BOOL [N]. A request's ``outputs`` chooses among them (default: all).

Triton's binary tensor data extension is understood both ways, since ``tritonclient``
uses it by default: with the ``Inference-Header-Content-Length`` header the body is
that many bytes of JSON followed by the tensors' raw bytes (little-endian; a BYTES
element is a 4-byte length then its bytes), each input saying its
``parameters.binary_data_size``; outputs come back the same way when the request asks
(``parameters.binary_data_output``, or an output's ``parameters.binary_data``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from core.app import ModelVersion, Prediction
from core.errors import InvalidInput

INPUT_NAME = "image"
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]
_FIX = ("To fix this, send {\"inputs\": [{\"name\": \"image\", \"datatype\": \"FP32\", "
        "\"shape\": [1, height, width, channels], \"data\": [...]}]}, or datatype \"BYTES\" "
        "with shape [1] and the image file in base64 (GET /v2/models/NAME says the shape).")
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list  # one per instance: float32 [h, w, c] arrays, or encoded image files
    outputs: list[str] | None  # the outputs asked for, in order (None: all)
    binary: set[str] = field(default_factory=set)  # outputs to send as binary data


def output_names(embedding_size: int, classes: int, has_ood: bool) -> list[dict]:
    """The outputs' metadata (name, datatype, shape)."""
    outputs = [tensor("probabilities", "FP32", [-1, classes]),
               tensor("label", "BYTES", [-1]),
               tensor("embedding", "FP32", [-1, embedding_size])]
    if has_ood:
        outputs += [tensor("ood_score", "FP32", [-1]), tensor("unfamiliar", "BOOL", [-1])]
    return outputs


def tensor(name: str, datatype: str, shape: list[int]) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape}


def model_metadata(model: str, versions: list[ModelVersion], chosen: ModelVersion,
                   embedding_size: int, has_ood: bool) -> dict:
    """``GET /v2/models/{name}[/versions/{v}]``: the input and outputs of ``chosen``."""
    spec = chosen.metadata.input_spec
    return {
        "name": model,
        "versions": [str(v.version) for v in sorted(versions, key=lambda v: v.version)],
        "platform": "tflite" if chosen.metadata.serving_runtime == "tflite"
        else "tensorflow_savedmodel",
        "inputs": [tensor(INPUT_NAME, "FP32",
                          [-1, spec["height"], spec["width"], spec["channels"]])],
        "outputs": output_names(embedding_size, len(chosen.class_names), has_ood),
        "parameters": {"version": str(chosen.version), "class_names": list(chosen.class_names),
                       "image_bytes": "input 'image' also takes datatype BYTES, shape [N]: "
                                      "encoded image files"},
    }


def parse_infer(body: bytes, header_length: str | None, max_instances: int) -> InferRequest:
    """An ``/infer`` body's inputs (checked, not yet decoded) and the outputs it asks for."""
    document, binary = _split(body, header_length)
    if not isinstance(document, dict):
        raise InvalidInput(f"the body is a JSON {type(document).__name__}, not an object. {_FIX}")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInput(f"\"inputs\" must be a list of one tensor, named {INPUT_NAME!r}. "
                           f"{_FIX}")
    given = inputs[0]
    if given.get("name") != INPUT_NAME:
        raise InvalidInput(f"unknown input {given.get('name')!r}; the model's only input is "
                           f"{INPUT_NAME!r}. {_FIX}")
    shape = given.get("shape")
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(d, int) and d >= 0 for d in shape)):
        raise InvalidInput(f"the input's \"shape\" must be a list of sizes, e.g. [1, 28, 28, "
                           f"1]. {_FIX}")
    if not 1 <= shape[0] <= max_instances:
        raise InvalidInput(f"the request has {shape[0]} instances. To fix this, send "
                           f"between 1 and {max_instances} (or raise MAX_INSTANCES).")
    raw = _binary_part(given, binary)
    datatype = given.get("datatype")
    values: list[np.ndarray] | list[bytes]
    if datatype == "FP32":
        values = _fp32(given, shape, raw)
    elif datatype == "BYTES":
        values = _files(given, shape, raw)
    else:
        raise InvalidInput(f"unsupported datatype {datatype!r} for {INPUT_NAME!r}. {_FIX}")
    outputs, binary_outputs = _requested(document)
    request_id = document.get("id")
    return InferRequest(request_id if isinstance(request_id, str) else None, values,
                        outputs, binary_outputs)


def _split(body: bytes, header_length: str | None) -> tuple[object, bytes]:
    """The JSON document and the binary data after it."""
    length = len(body)
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            length = -1
        if not 0 <= length <= len(body):
            raise InvalidInput(f"Inference-Header-Content-Length is {header_length!r}, but "
                               f"the body has {len(body)} bytes. To fix this, send the "
                               f"JSON part's length in bytes.")
    try:
        return json.loads(body[:length]), body[length:]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the body is not valid JSON ({error}). {_FIX}") from None
    except RecursionError:
        raise InvalidInput(f"the body's JSON is nested too deeply to read. {_FIX}") from None


def _binary_part(given: dict, binary: bytes) -> bytes | None:
    parameters = given.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        if binary:
            raise InvalidInput("the body has binary data after its JSON, but the input "
                               "does not say its parameters.binary_data_size. To fix this, "
                               "give it, or send the data in JSON.")
        return None
    if not isinstance(size, int) or size != len(binary):
        raise InvalidInput(f"the input's binary_data_size is {size!r}, but {len(binary)} "
                           "bytes follow the JSON. To fix this, send the tensor's size.")
    return binary


def _fp32(given: dict, shape: list[int], raw: bytes | None) -> list[np.ndarray]:
    if len(shape) != 4:
        raise InvalidInput(f"an FP32 input has shape {shape}; it must be [N, height, width, "
                           f"channels]. {_FIX}")
    count = math.prod(shape)  # Python's integers: a client's huge shape cannot wrap around
    if raw is not None:
        if len(raw) != 4 * count:
            raise InvalidInput(f"shape {shape} takes {4 * count} bytes of FP32, but "
                               f"{len(raw)} were sent. {_FIX}")
        array = np.frombuffer(raw, dtype="<f4")
    else:
        try:
            array = np.asarray(given.get("data"), dtype=np.float32).reshape(-1)
        except (ValueError, TypeError):
            raise InvalidInput(f"the input's \"data\" is not a list of numbers. {_FIX}") \
                from None
        if array.size != count:
            raise InvalidInput(f"shape {shape} holds {count} numbers, but \"data\" has "
                               f"{array.size}. {_FIX}")
    return list(array.reshape(shape))


def _files(given: dict, shape: list[int], raw: bytes | None) -> list[bytes]:
    if len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
        raise InvalidInput(f"a BYTES input has shape {shape}; it must be [N], one image "
                           f"file each. {_FIX}")
    files = (_unpack_bytes(raw, shape[0]) if raw is not None
             else _base64_elements(given.get("data")))
    if len(files) != shape[0]:
        raise InvalidInput(f"shape {shape} holds {shape[0]} image files, but {len(files)} "
                           f"were sent. {_FIX}")
    return files


def _base64_elements(data: object) -> list[bytes]:
    if not isinstance(data, list) or not all(isinstance(e, str) for e in data):
        raise InvalidInput(f"a BYTES input's \"data\" must be a list of base64 strings. {_FIX}")
    try:
        return [base64.b64decode(element, validate=True) for element in data]
    except (binascii.Error, ValueError):
        raise InvalidInput("an element of \"data\" is not valid base64. To fix this, encode "
                           "the image file's bytes with standard base64 (RFC 4648).") from None


def _unpack_bytes(raw: bytes, count: int) -> list[bytes]:
    """Triton's BYTES serialization: each element a 4-byte little-endian length, then it.
    Stops past ``count`` elements: a body of empty elements (4 bytes each) would otherwise
    be millions of objects before the shape is checked."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw) and len(elements) <= count:
        if offset + 4 > len(raw):
            raise InvalidInput("the BYTES tensor's binary data ends inside a length. To fix "
                               "this, send each element as a 4-byte length and its bytes.")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput("a BYTES element is longer than the binary data left. To fix "
                               "this, send each element as a 4-byte length and its bytes.")
        elements.append(raw[offset:offset + size])
        offset += size
    return elements


def _requested(document: dict) -> tuple[list[str] | None, set[str]]:
    """The outputs asked for (None: all) and those to send as binary data."""
    parameters = document.get("parameters") or {}
    everything_binary = isinstance(parameters, dict) and parameters.get("binary_data_output") \
        is True
    asked = document.get("outputs")
    if asked is None:
        return None, {"*"} if everything_binary else set()
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(
            o.get("name"), str) for o in asked):
        raise InvalidInput("\"outputs\" must be a list of {\"name\": ...}. To fix this, name "
                           "outputs from GET /v2/models/NAME, or leave it out for all.")
    known = {"probabilities", "label", "embedding", "ood_score", "unfamiliar"}
    unknown = [o["name"] for o in asked if o["name"] not in known]
    if unknown:
        raise InvalidInput(f"unknown output(s) {unknown}. To fix this, ask for some of "
                           f"{sorted(known)}.")
    if any("classification" in (o.get("parameters") or {}) for o in asked):
        raise InvalidInput("the classification extension is not offered. To fix this, ask "
                           "for the \"label\" output (the top class) and \"probabilities\".")
    binary = {o["name"] for o in asked if everything_binary
              or (o.get("parameters") or {}).get("binary_data") is True}
    return [o["name"] for o in asked], binary


def infer_reply(model: str, request: InferRequest, predictions: list[Prediction],
                extra: dict) -> tuple[dict, bytes]:
    """The reply's JSON and the binary data after it (empty: all outputs in JSON)."""
    tensors = _outputs(predictions)
    names = request.outputs or list(tensors)
    outputs, binary = [], []
    for name in names:
        if name not in tensors:  # ood_score, unfamiliar: this version has no detector
            continue
        datatype, shape, array = tensors[name]
        entry = tensor(name, datatype, shape)
        if name in request.binary or "*" in request.binary:
            data = _pack(datatype, array)
            entry["parameters"] = {"binary_data_size": len(data)}
            binary.append(data)
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    reply = {"model_name": model, "model_version": str(predictions[0].version),
             "outputs": outputs, "parameters": extra}
    if request.id is not None:
        reply["id"] = request.id
    return reply, b"".join(binary)


def _outputs(predictions: list[Prediction]) -> dict[str, tuple[str, list[int], np.ndarray]]:
    n = len(predictions)
    probabilities = np.array([list(p.probabilities.values()) for p in predictions],
                             dtype=np.float32)
    embedding = np.stack([p.embedding.astype(np.float32) for p in predictions])
    tensors = {
        "probabilities": ("FP32", list(probabilities.shape), probabilities),
        "label": ("BYTES", [n], np.array([p.label for p in predictions], dtype=object)),
        "embedding": ("FP32", list(embedding.shape), embedding),
    }
    if all(p.ood_score is not None for p in predictions):
        tensors["ood_score"] = ("FP32", [n], np.array([p.ood_score for p in predictions],
                                                      dtype=np.float32))
        tensors["unfamiliar"] = ("BOOL", [n], np.array([bool(p.unfamiliar)
                                                        for p in predictions]))
    return tensors


def _pack(datatype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(b)) + b
                        for b in (str(e).encode() for e in array.reshape(-1)))
    if datatype == "BOOL":
        return array.astype(np.bool_).tobytes()
    return array.astype("<f4").tobytes()
