"""The model file a phone runs: a version's TFLite file with a fixed batch of one.

LiteRT.js (the phone app's runtime, in WebAssembly) cannot resize a tensor: it refuses
the batch dimension our files keep open (``[-1, h, w, c]``, so the server predicts
batches). The device file is the same flatbuffer with every tensor's shape signature
removed, which leaves the static shapes (batch 1): same weights, same operators, the
same answers. LiteRT.js 2.5 also has no int8 tensors in JavaScript: an int8 export (int8
in, int8 out) gets a QUANTIZE operator before its input and a DEQUANTIZE after each
output, the arithmetic a caller would do, so the phone feeds and reads float32 and the
model inside stays int8. No TensorFlow import: the schema ships with the LiteRT runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from core.errors import ModelError


def device_file(tflite: bytes) -> bytes:
    """The TFLite flatbuffer as LiteRT.js runs it: batch 1 fixed, float32 in and out."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.shapeSignature = None
    _float_boundary(model)
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _float_boundary(model: schema.ModelT) -> None:
    """int8 inputs and outputs of the main subgraph behind float32 twins: QUANTIZE from
    each float input, DEQUANTIZE to each float output (their scales are the tensors')."""
    subgraph = model.subgraphs[0]
    moved: dict[int, int] = {}  # int8 tensor -> its float twin

    def twin(index: int) -> int:
        tensor = subgraph.tensors[index]
        float_twin = schema.TensorT()
        float_twin.shape, float_twin.type = list(tensor.shape), schema.TensorType.FLOAT32
        float_twin.name, tensor.name = tensor.name, (tensor.name or b"") + b"/int8"
        model.buffers.append(schema.BufferT())
        float_twin.buffer = len(model.buffers) - 1
        subgraph.tensors.append(float_twin)
        moved[index] = len(subgraph.tensors) - 1
        return moved[index]

    before = [_operator(model, schema.BuiltinOperator.QUANTIZE, [twin(i)], [i])
              for i in subgraph.inputs if subgraph.tensors[i].type == schema.TensorType.INT8]
    after = [_operator(model, schema.BuiltinOperator.DEQUANTIZE, [i], [twin(i)])
             for i in subgraph.outputs if subgraph.tensors[i].type == schema.TensorType.INT8]
    if not moved:
        return
    subgraph.operators = before + list(subgraph.operators) + after
    subgraph.inputs = [moved.get(i, i) for i in subgraph.inputs]
    subgraph.outputs = [moved.get(i, i) for i in subgraph.outputs]
    for signature in model.signatureDefs or []:
        for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
            entry.tensorIndex = moved.get(entry.tensorIndex, entry.tensorIndex)


def _operator(model: schema.ModelT, builtin: int, inputs: list[int], outputs: list[int]
              ) -> schema.OperatorT:
    codes = model.operatorCodes
    found = [i for i, code in enumerate(codes)
             if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin]
    if not found:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, builtin, 1
        codes.append(code)
        found = [len(codes) - 1]
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = found[0], inputs, outputs
    return operator


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
