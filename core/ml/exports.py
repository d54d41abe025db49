"""Writing and loading a version's model files: Keras, SavedModel and TFLite, and the
portable exports built later (quantized TFLite, ONNX) with their measured trade-offs.

Keras is imported inside the functions: serving reads only the TFLite file and
must not pay TensorFlow's import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from core.ml.image_sets import Images, batches
from core.ml.images import InputSpec, preprocess_batch

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
EMBEDDING_LAYER = "embedding"


def serving_outputs(model: Any) -> Any:
    """The model with two named outputs: ``probabilities`` and the ``embedding``. (A
    SavedModel without layers, ``core.ml.saved_models.SignatureModel``, already is.)"""
    import keras

    if not hasattr(model, "get_layer"):
        return model
    return keras.Model(model.inputs[0], {
        "probabilities": model.outputs[0],
        "embedding": model.get_layer(EMBEDDING_LAYER).output,
    })


def save_artifacts(model: Any, folder: Path) -> None:
    """Writes model.keras, a SavedModel for TF Serving and model.tflite into ``folder``."""
    import tensorflow as tf

    folder = Path(folder)
    model.save(folder / KERAS_FILE)
    serving_outputs(model).export(str(folder / SAVED_MODEL_DIR), format="tf_saved_model",
                                  verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / SAVED_MODEL_DIR))
    (folder / TFLITE_FILE).write_bytes(converter.convert())


def load_keras_model(folder: Path) -> Any:
    """Loads model.keras with Keras' safe mode (no arbitrary code, never pickle).

    Raises:
        ModelError: the file is missing, damaged, or holds code (a Lambda layer's
            Python function) that safe mode refuses to load.
    """
    import keras

    path = Path(folder) / KERAS_FILE
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, OSError, zip errors, ...
        raise ModelError(
            f"{path} could not be loaded in Keras' safe mode ({type(error).__name__}: "
            f"{str(error).split('. ')[0] or 'no detail'}). To fix this, "
            "register the version again from a model without Lambda layers or custom "
            "code; models are never loaded with arbitrary code enabled.") from None


# --- portable exports: quantized TFLite and ONNX, each measured against the float model ---

# Format -> file, for the exports built after registration (``build_portable``).
PORTABLE_FILES = {"tflite_dynamic": "model_dynamic.tflite",
                  "tflite_float16": "model_float16.tflite",
                  "tflite_int8": "model_int8.tflite", "onnx": "model.onnx"}
EXPORT_FORMATS = ("keras", "saved_model", "tflite", *PORTABLE_FILES)
EXPORTS_TABLE = "exports.json"  # written last: its presence means every export is there
ONNX_OPSET = 17
LATENCY_RUNS = 50


def build_portable(saved_model: Path, calibration: np.ndarray, out: Path) -> dict[str, Path]:
    """Writes the quantized TFLite models and the ONNX model into ``out``.

    Args:
        calibration: float32 [N, h, w, c] preprocessed training images: the int8 model's
            activation ranges are measured on them (never on random arrays, whose ranges
            are not the model's).
    """
    import tensorflow as tf

    paths = {name: Path(out) / file for name, file in PORTABLE_FILES.items()}
    for name in ("tflite_dynamic", "tflite_float16", "tflite_int8"):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range alone
        if name == "tflite_float16":
            converter.target_spec.supported_types = [tf.float16]
        elif name == "tflite_int8":
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        with _stdout_to_stderr():
            paths[name].write_bytes(converter.convert())
    # tf2onnx in its own process: it rewrites TensorFlow graphs with global state, and a
    # failure (an unsupported op on a newer TensorFlow) must not take this process down.
    result = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
         "--output", str(paths["onnx"]), "--opset", str(ONNX_OPSET)],
        capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not paths["onnx"].is_file():
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelError(f"tf2onnx could not convert the SavedModel to ONNX ({last}). To "
                         "fix this, check that tf2onnx supports this TensorFlow version.")
    return paths


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """TFLite's quantizer prints to the process's standard output from C++; keep it off
    stdout, where ``exports --json`` writes its JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export_runner(fmt: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from float32 [N, h, w, c] preprocessed images to probabilities [N, K],
    running the export ``fmt`` stored at ``path`` in its own runtime."""
    if fmt == "keras":
        model = load_keras_model(path.parent)
        return lambda x: np.asarray(model(x, training=False))
    if fmt == "saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda x: signature(image=tf.constant(x))["probabilities"].numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(["probabilities"], {"image": x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    runner = interpreter.get_signature_runner("serving_default")
    scale, zero = runner.get_input_details()["image"]["quantization"]
    out_scale, out_zero = runner.get_output_details()["probabilities"]["quantization"]

    def run(x: np.ndarray) -> np.ndarray:
        if scale:  # int8 in and out: quantize the input, dequantize the output
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        probabilities = runner(image=x)["probabilities"]
        return ((probabilities.astype(np.float32) - out_zero) * out_scale if out_scale
                else probabilities)

    return run


def measure_exports(paths: dict[str, Path], images: Images, spec: InputSpec,
                    labels: np.ndarray) -> list[dict]:
    """Each export's size, accuracy, agreement with the float Keras model, largest
    probability difference from it, and median latency for one image.

    Args:
        paths: format -> file (or folder, for the SavedModel), ``keras`` first.
        images: uint8 [N, h, w, c] holdout images (read and preprocessed a batch at a
            time); ``labels`` [N].
    """
    from core.ml.evaluation import inference_batch

    size = inference_batch(spec)
    timed = preprocess_batch(images[:LATENCY_RUNS + 1], spec)
    rows, reference = [], None
    for fmt, path in paths.items():
        run = export_runner(fmt, path)
        probabilities = np.concatenate([run(preprocess_batch(batch, spec))
                                        for batch in batches(images, size)])
        if reference is None:
            reference = probabilities
        latencies = []
        for i in range(LATENCY_RUNS + 1):
            started = time.perf_counter()
            run(timed[i % len(timed)][None])
            latencies.append(time.perf_counter() - started)
        predicted = probabilities.argmax(axis=1)
        rows.append({
            "format": fmt, "file": path.name,
            "size_bytes": (sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                           if path.is_dir() else path.stat().st_size),
            "accuracy": round(float(np.mean(predicted == labels)), 4),
            "agreement": round(float(np.mean(predicted == reference.argmax(axis=1))), 4),
            "max_abs_diff": float(np.max(np.abs(probabilities - reference))),
            "latency_ms": round(float(np.median(latencies[1:])) * 1000, 3),  # first: warm-up
        })
    return rows
