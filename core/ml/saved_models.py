"""A TF SavedModel brought into the registry: a serving signature, no layers.

A SavedModel folder is what ``model.export()`` and ``tf.saved_model.save()`` write, the
content of TF Serving's ``<model>/<N>/``. Keras 3 cannot load one as layers; its
``serving_default`` signature is all there is to call. So a version registered from one
(``VersionMetadata.has_layers`` False) gets:

- serving (TFLite converted from the adapted signature, with the same parity check),
  logging, comparison on holdouts, governance, portable exports (built from the
  SavedModel), model cards and MLflow sync, like any version;
- drift monitoring on its outputs: its embedding is its output vector (logits, or
  probabilities when that is what it gives), so "embedding drift" is drift of its class
  scores;
- no heatmaps (Grad-CAM needs a convolution layer's activations and gradients), no OOD
  score (a neighbour distance between class-score vectors measures little more than the
  confidence the monitor already watches), no fine-tuning (there are no layers to train):
  front ends say "not available for this model format".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.ml.exports import SAVED_MODEL_DIR, TFLITE_FILE
from core.ml.imported import (
    ForeignModel,
    check_is_image_classifier,
    file_digest,
    output_kind,
)
from core.registry.records import SAVED_MODEL_FORMAT

SIGNATURE = "serving_default"
SAVED_MODEL_FILE = "saved_model.pb"
# Operations a classifier's serving signature has no need of: they read or write files,
# or run Python. A SavedModel is a graph, not code, but its graph runs whatever operations
# its author put in it each time it is called (registration, every prediction): Keras'
# safe mode's counterpart is to refuse these by name before the signature is ever called.
FORBIDDEN_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "PyFunc",
    "PyFuncStateless", "EagerPyFunc", "WholeFileReader", "WholeFileReaderV2",
    "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "TFRecordDataset",
    "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
    "SaveDataset", "SaveDatasetV2", "LoadDataset", "SnapshotDataset", "SnapshotDatasetV2",
    "DatasetToTFRecord", "CreateSummaryFileWriter", "WriteSummary", "WriteScalarSummary",
    "WriteImageSummary", "WriteHistogramSummary", "WriteAudioSummary", "WriteGraphSummary",
    "WriteRawProtoSummary", "ImportEvent", "PrintV2"})


def is_saved_model(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / SAVED_MODEL_FILE).is_file()


def load_saved_model(path: Path) -> ForeignModel:
    """Loads the SavedModel folder ``path`` and checks its ``serving_default`` signature
    classifies images: one float input [H, W, C], one output [K].

    Loading a SavedModel runs no Python code of its author's: its graphs are TensorFlow
    operations, which is why TF Serving loads them too.
    """
    import tensorflow as tf

    path = Path(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TensorFlow raises many kinds for a damaged folder
        first = str(error).strip().split("\n")[0][:300]
        raise InvalidInput(f"{path.name} could not be loaded as a SavedModel "
                           f"({type(error).__name__}: {first}). To fix this, export it again "
                           "with model.export(...) or tf.saved_model.save(...).") from None
    signature = loaded.signatures.get(SIGNATURE)
    if signature is None:
        raise InvalidInput(f"{path.name} has no {SIGNATURE!r} signature (it has: "
                           f"{', '.join(loaded.signatures) or 'none'}). To fix this, export it "
                           "with model.export(...), which writes that signature.")
    graph = signature.graph.as_graph_def()
    ops = {node.op for node in graph.node} | {
        node.op for function in graph.library.function for node in function.node_def}
    if ops & FORBIDDEN_OPS:
        raise InvalidInput(f"{path.name}'s serving signature runs {', '.join(sorted(ops & FORBIDDEN_OPS))}: "
                           "operations that read or write files or run Python, which a "
                           "classifier has no need of. Nothing was registered. To fix this, "
                           "export the model without them (model.export(...) of a Keras "
                           "classifier has none).")
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    spec, classes = check_is_image_classifier(
        path.name, [tuple(s.shape[1:]) for s in inputs.values()],
        [tuple(s.shape[1:]) for s in outputs.values()])
    (dtype,) = [s.dtype for s in inputs.values()]
    if not dtype.is_floating:
        raise InvalidInput(f"{path.name} takes {dtype.name} pixels. To fix this, export a "
                           "signature that takes float pixels (the product scales them to "
                           "--input-range).")
    return ForeignModel(loaded, path, SAVED_MODEL_FORMAT, _folder_sha256(path), None, spec,
                        classes, tensorflow_version=_tensorflow_version(path))


class SignatureModel:
    """An imported SavedModel in the product's conventions: float32 pixels in [0, 1] in,
    ``probabilities`` and ``embedding`` (its own outputs) out. Called like
    ``core.ml.exports.serving_outputs(model)``; ``predict`` gives the probabilities."""

    def __init__(self, foreign: ForeignModel, input_range: tuple[float, float], logits: bool):
        import tensorflow as tf

        signature = foreign.model.signatures[SIGNATURE]
        ((input_name, input_spec),) = signature.structured_input_signature[1].items()
        ((output_name, _),) = signature.structured_outputs.items()
        low, high = input_range
        spec = foreign.input_spec
        self.input_spec = spec
        self.module = tf.Module()
        self.module.imported = foreign.model  # tracked: saved with the wrapper

        @tf.function(input_signature=[tf.TensorSpec(
            [None, spec.height, spec.width, spec.channels], tf.float32, name="image")])
        def serve(image: Any) -> dict:
            pixels = tf.cast(image * (high - low) + low, input_spec.dtype)
            scores = tf.cast(signature(**{input_name: pixels})[output_name], tf.float32)
            return {"probabilities": tf.nn.softmax(scores) if logits else scores,
                    "embedding": scores}

        self.module.serve = serve

    def __call__(self, images: np.ndarray, training: bool = False) -> dict:
        return self.module.serve(np.asarray(images, np.float32))

    def predict(self, images: np.ndarray, verbose: int = 0, batch_size: int = 256
                ) -> np.ndarray:
        return np.concatenate([np.asarray(self(images[i:i + batch_size])["probabilities"])
                               for i in range(0, len(images), batch_size)])

    def save(self, folder: Path) -> None:
        """Writes the adapted SavedModel and the serving TFLite model into ``folder`` (no
        model.keras: there are no layers to save)."""
        import tensorflow as tf

        saved = Path(folder) / SAVED_MODEL_DIR
        tf.saved_model.save(self.module, str(saved),
                            signatures={SIGNATURE: self.module.serve.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        (Path(folder) / TFLITE_FILE).write_bytes(converter.convert())


def adapt_signature(foreign: ForeignModel, input_range: tuple[float, float],
                    sample: np.ndarray, *, outputs: str | None = None,
                    embedding_layer: str | None = None) -> tuple[SignatureModel, str]:
    """The SavedModel in the product's conventions, and what its outputs were
    (``probabilities`` or ``logits``, checked on ``sample``, float32 images in [0, 1])."""
    if embedding_layer is not None:
        raise InvalidInput(f"{foreign.path.name} is a SavedModel: it has no layers, so "
                           "--embedding-layer does not apply (its outputs are monitored "
                           "instead). To fix this, leave --embedding-layer out, or register "
                           "the model's .keras file.")
    import tensorflow as tf

    low, high = input_range
    signature = foreign.model.signatures[SIGNATURE]
    ((input_name, input_spec),) = signature.structured_input_signature[1].items()
    ((output_name, _),) = signature.structured_outputs.items()
    scores = np.asarray(signature(**{input_name: tf.cast(
        sample * (high - low) + low, input_spec.dtype)})[output_name], np.float32)
    found = output_kind(foreign, scores, outputs)
    return SignatureModel(foreign, input_range, logits=found == "logits"), found


def _folder_sha256(folder: Path) -> str:
    """One digest of a folder: of each file's path and digest, in path order."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_digest(path)}\n".encode())
    return "sha256:" + digest.hexdigest()


def _tensorflow_version(folder: Path) -> str | None:
    """The TensorFlow version recorded in saved_model.pb (None: unreadable)."""
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((folder / SAVED_MODEL_FILE).read_bytes())
        return saved.meta_graphs[0].meta_info_def.tensorflow_version or None
    except Exception:  # noqa: BLE001 - provenance is best effort; the model loaded
        return None
