"""Writing and loading a version's model files: Keras, SavedModel and TFLite.

Keras is imported inside the functions: serving reads only the TFLite file and
must not pay TensorFlow's import time.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import ModelError

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
EMBEDDING_LAYER = "embedding"


def serving_outputs(model):
    """The model with two named outputs: ``probabilities`` and the ``embedding``."""
    import keras

    return keras.Model(model.inputs[0], {
        "probabilities": model.outputs[0],
        "embedding": model.get_layer(EMBEDDING_LAYER).output,
    })


def save_artifacts(model, folder: Path) -> None:
    """Writes model.keras, a SavedModel for TF Serving and model.tflite into ``folder``."""
    import tensorflow as tf

    folder = Path(folder)
    model.save(folder / KERAS_FILE)
    serving_outputs(model).export(str(folder / SAVED_MODEL_DIR), format="tf_saved_model",
                                  verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / SAVED_MODEL_DIR))
    (folder / TFLITE_FILE).write_bytes(converter.convert())


def load_keras_model(folder: Path):
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
