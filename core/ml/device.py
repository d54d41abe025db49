"""The model file a phone runs: a version's TFLite file with a fixed batch of one.

LiteRT.js (the phone app's runtime, in WebAssembly) cannot resize a tensor: it refuses
the batch dimension our files keep open (``[-1, h, w, c]``, so the server predicts
batches). The device file is the same flatbuffer with every tensor's shape signature
removed, which leaves the static shapes (batch 1): same weights, same operators, the
same answers. No TensorFlow import: the schema ships with the LiteRT runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from core.errors import ModelError


def fixed_batch(tflite: bytes) -> bytes:
    """The TFLite flatbuffer with batch 1 fixed (what LiteRT.js can run)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.shapeSignature = None
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@dataclass(frozen=True)
class TensorInfo:
    """What the app needs to feed or read a tensor: its name, type and quantization
    (``scale`` 0: a float tensor; else real = scale * (q - zero_point))."""

    name: str
    dtype: str
    shape: list[int]
    scale: float
    zero_point: int

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape,
                "scale": self.scale, "zero_point": self.zero_point}


def tensors_of(tflite: bytes) -> tuple[TensorInfo, list[TensorInfo]]:
    """The device file's input and outputs, in the order LiteRT.js returns them."""
    try:
        interpreter = Interpreter(model_content=tflite)
    except ValueError as error:
        raise ModelError(f"the device model cannot be read: {error}") from error
    runner = interpreter.get_signature_runner()

    def info(name: str, detail: dict) -> TensorInfo:
        scale, zero = detail["quantization"]
        return TensorInfo(name, np.dtype(detail["dtype"]).name,
                          [int(n) for n in detail["shape"]], float(scale), int(zero))

    inputs = [info(n, d) for n, d in runner.get_input_details().items()]
    outputs = sorted((info(n, d) for n, d in runner.get_output_details().items()),
                     key=lambda t: t.name)
    if len(inputs) != 1 or {t.name for t in outputs} != {"probabilities", "embedding"}:
        raise ModelError("the device model does not take one image and give probabilities "
                         "and an embedding; it cannot run in the phone app.")
    return inputs[0], outputs
