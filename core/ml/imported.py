"""A model trained elsewhere, brought into the registry.

It is loaded safely (Keras' safe mode: no Lambda code, never pickle), checked against
its labels, and adapted to the conventions every path of the product relies on: pixels
in [0, 1] in, class probabilities and a named ``embedding`` out. The adapted model reuses
the imported model's layers (its weights are shared, not copied or changed): a
``Rescaling`` layer in front when the model expects another pixel range, an identity layer
named ``embedding`` on the vector its classifier reads, a ``Softmax`` behind when it
outputs logits. Serving, Grad-CAM, drift, OOD, retraining and exports then treat it as a
model the product trained itself, and ``adapt`` proves on sample images that the adapted
model computes what the original does.

A TF SavedModel folder has no layers to adapt: ``core.ml.saved_models`` wraps its serving
signature instead. Keras is imported inside the functions, as in ``core.ml.exports``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.ml.images import InputSpec
from core.registry.records import SAVED_MODEL_FORMAT

# How the model expects pixel values (--input-range) -> (low, high).
INPUT_RANGES = {"0,1": (0.0, 1.0), "0,255": (0.0, 255.0), "-1,1": (-1.0, 1.0)}
OUTPUT_KINDS = ("probabilities", "logits")
FORMATS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}
PARITY_TOLERANCE = 1e-4  # largest difference of the adapted model's outputs from the original's


@dataclass(frozen=True)
class ForeignModel:
    """A loaded model, before adaptation.

    Attributes:
        model: the Keras model; for a SavedModel, TensorFlow's loaded object.
        format: ``keras``, ``h5`` or ``saved_model``.
        sha256: of the file as given, or of a folder's files and their paths (provenance).
        keras_version: the Keras version that wrote the file, read from it (None: unknown).
        tensorflow_version: the TensorFlow version that wrote a SavedModel.
    """

    model: Any
    path: Path
    format: str
    sha256: str
    keras_version: str | None
    input_spec: InputSpec
    num_outputs: int
    tensorflow_version: str | None = None


def parse_input_range(text: str) -> tuple[float, float]:
    """``0,1``, ``0,255`` or ``-1,1`` -> (low, high)."""
    key = text.replace(" ", "")
    if key not in INPUT_RANGES:
        raise InvalidInput(f"unknown input range {text!r}. To fix this, pass one of: "
                           f"{', '.join(INPUT_RANGES)} (how the model expects pixel values).")
    return INPUT_RANGES[key]


def load_foreign_model(path: Path) -> ForeignModel:
    """Loads a ``.keras`` or legacy ``.h5`` Keras model in safe mode and checks that it
    classifies images: one input [H, W, C] with 1 or 3 channels, one output [K], K >= 2.

    Raises:
        InvalidInput: the file is missing, of another format, not loadable in safe mode
            (a custom layer or Lambda code: named), or not an image classifier.
    """
    import keras

    from core.ml.saved_models import is_saved_model, load_saved_model

    path = Path(path)
    if is_saved_model(path):
        return load_saved_model(path)
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder without saved_model.pb. To fix this, give "
                           "a TF SavedModel folder (what model.export() writes, TF Serving's "
                           "<model>/<N>/), or a .keras or .h5 file.")
    if not path.is_file():
        raise InvalidInput(f"there is no file {path}. To fix this, give the path of a "
                           ".keras or .h5 model file, or a SavedModel folder.")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{path.name} is not a .keras or .h5 file. To fix this, save the "
                           "model with model.save('model.keras') and register that file.")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError, zip errors
        raise InvalidInput(f"{path.name} could not be loaded in Keras' safe mode: "
                           f"{_first_sentence(error)}. To fix this, save the model without "
                           "custom layers or Lambda code (use built-in Keras layers); models "
                           "are never loaded with arbitrary code enabled.") from None
    spec, classes = check_is_image_classifier(
        path.name, [tuple(i.shape[1:]) for i in model.inputs],
        [tuple(o.shape[1:]) for o in model.outputs])
    return ForeignModel(model, path, fmt, _sha256(path), _keras_version(path, fmt), spec,
                        classes)


def check_is_image_classifier(name: str, inputs: list[tuple], outputs: list[tuple]
                              ) -> tuple[InputSpec, int]:
    """The input spec and number of classes of a model with these input and output
    shapes (without the batch dimension); refused unless it is one fixed-size image in,
    one score per class out."""
    if len(inputs) != 1 or len(outputs) != 1:
        raise InvalidInput(f"{name} has {len(inputs)} input(s) and {len(outputs)} "
                           "output(s). To fix this, register a classifier with one image "
                           "input and one output of class scores.")
    shape = inputs[0]
    if len(shape) != 3 or None in shape or shape[2] not in (1, 3):
        raise InvalidInput(f"{name} takes inputs of shape {shape}, not an image of a fixed "
                           "size (height, width, 1 or 3 channels). To fix this, register an "
                           "image classifier built with a fixed input shape, e.g. "
                           "keras.Input((224, 224, 3)).")
    out = outputs[0]
    if len(out) != 1 or out[0] is None or out[0] < 2:
        raise InvalidInput(f"{name} outputs shape {out}, not one score per class. To fix "
                           "this, register a classifier whose output is [number of classes].")
    return InputSpec(int(shape[0]), int(shape[1]), int(shape[2])), int(out[0])


def check_labels(foreign: ForeignModel, labels: list[str]) -> None:
    """The model's outputs must be one per label, in order."""
    if len(labels) != foreign.num_outputs:
        raise InvalidInput(f"{foreign.path.name} outputs {foreign.num_outputs} class scores "
                           f"but {len(labels)} labels were given ({', '.join(labels[:5])}"
                           f"{', ...' if len(labels) > 5 else ''}). To fix this, pass "
                           "--labels with one label per output, in output order.")
    if len(set(labels)) != len(labels) or any(not label.strip() for label in labels):
        raise InvalidInput("the labels must be distinct and non-empty. To fix this, give "
                           "one label per line, each once.")


def adapt(foreign: ForeignModel, input_range: tuple[float, float], sample: np.ndarray, *,
          outputs: str | None = None, embedding_layer: str | None = None) -> tuple[Any, str]:
    """The imported model in the product's conventions, and what its outputs were
    (``probabilities`` or ``logits``: checked on ``sample``, float32 images in [0, 1]).

    Raises:
        InvalidInput: ``outputs`` disagrees with what the model computes, the embedding
            layer is unknown or not a vector, or the layers do not form a chain (a model
            whose layers branch outside a nested backbone) so that the adapted model would
            not compute what the original does.
    """
    import keras
    from keras import layers

    if foreign.format == SAVED_MODEL_FORMAT:
        from core.ml.saved_models import adapt_signature

        return adapt_signature(foreign, input_range, sample, outputs=outputs,
                               embedding_layer=embedding_layer)
    model = foreign.model
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    cut = _embedding_index(foreign, chain, embedding_layer)
    spec = foreign.input_spec
    pixels = inputs = keras.Input((spec.height, spec.width, spec.channels), name="image")
    low, high = input_range
    x = (layers.Rescaling(high - low, offset=low, name="to_model_range")(pixels)
         if (low, high) != (0.0, 1.0) else pixels)
    for layer in chain[:cut + 1]:
        x = layer(x)
    if chain[cut].name != "embedding":
        x = layers.Identity(name="embedding")(x)
    for layer in chain[cut + 1:]:
        x = layer(x)
    scores = keras.Model(inputs, x)
    original = np.asarray(model(sample * (high - low) + low, training=False))
    adapted = np.asarray(scores(sample, training=False))
    if original.shape != adapted.shape or not np.allclose(original, adapted,
                                                          atol=PARITY_TOLERANCE):
        raise InvalidInput(f"{foreign.path.name}'s layers do not form a chain (a branch "
                           "outside a nested backbone): its adapted copy does not compute "
                           "what it computes. To fix this, wrap the branching part in a "
                           "sub-model, e.g. Sequential([backbone, pooling, Dense]).")
    found = output_kind(foreign, original, outputs)
    if found == "logits":
        x = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, x, name="imported"), found


def _embedding_index(foreign: ForeignModel, chain: list, name: str | None) -> int:
    """The index in ``chain`` of the layer whose output is the embedding: ``name``, or
    the layer before the last Dense layer (the vector the classifier reads)."""
    from keras import layers

    if name is not None:
        names = [layer.name for layer in chain]
        if name not in names:
            raise InvalidInput(f"{foreign.path.name} has no layer {name!r}. To fix this, "
                               f"pass --embedding-layer with one of: {', '.join(names)}.")
        index = names.index(name)
    else:
        dense = [i for i, layer in enumerate(chain) if isinstance(layer, layers.Dense)]
        if not dense or dense[-1] == 0:
            raise InvalidInput(f"{foreign.path.name} has no layer before a last Dense layer "
                               "to take embeddings from. To fix this, pass --embedding-layer "
                               "NAME (a layer whose output is a vector).")
        index = dense[-1] - 1
    shape = tuple(chain[index].output.shape[1:])
    if len(shape) != 1:
        raise InvalidInput(f"layer {chain[index].name!r} of {foreign.path.name} outputs "
                           f"shape {shape}, not a vector. To fix this, pass --embedding-layer "
                           "with a layer after the pooling or flattening (e.g. the input of "
                           "the classifier).")
    return index


def output_kind(foreign: ForeignModel, scores: np.ndarray, outputs: str | None) -> str:
    """What the model's ``scores`` on sample images are: probabilities (every row in
    [0, 1] and summing to 1) or logits; refused when it disagrees with ``outputs``."""
    rows_sum_to_one = np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    in_unit_range = bool(np.all((scores >= 0) & (scores <= 1)))
    found = "probabilities" if rows_sum_to_one and in_unit_range else "logits"
    if outputs is not None and outputs not in OUTPUT_KINDS:
        raise InvalidInput(f"unknown --outputs {outputs!r}. To fix this, pass one of: "
                           f"{', '.join(OUTPUT_KINDS)}.")
    if outputs is not None and outputs != found:
        raise InvalidInput(f"{foreign.path.name} outputs {found} (checked on "
                           f"{len(scores)} images: rows {'do' if found == 'probabilities' else 'do not'} "
                           f"sum to 1), not {outputs}. To fix this, pass --outputs {found} "
                           "or leave it out.")
    return found


def _sha256(path: Path) -> str:
    return "sha256:" + file_digest(path)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _keras_version(path: Path, fmt: str) -> str | None:
    """The Keras version recorded in the file (metadata.json of a .keras zip, the
    ``keras_version`` attribute of an .h5)."""
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("metadata.json")).get("keras_version")
        import h5py

        with h5py.File(path, "r") as handle:
            version = handle.attrs.get("keras_version")
            return version.decode() if isinstance(version, bytes) else version
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip().split("\n")[0]
    return f"{type(error).__name__}: {text[:300] or 'no detail'}"

