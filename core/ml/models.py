"""Model architectures: a small CNN from scratch and MobileNetV2 transfer learning.

Both are linear chains of layers ending in a Dense layer named ``embedding``
(the penultimate representation) and a softmax ``probabilities`` layer, which
Grad-CAM and monitoring rely on.
"""

from __future__ import annotations

import keras
from keras import layers

from core.errors import InvalidInput, ModelError
from core.ml.images import InputSpec
from core.ml.params import ARCHITECTURES

MOBILENET_SIZES = (96, 128, 160, 192, 224)  # sizes with published ImageNet weights


def input_spec_for(architecture: str, natural: InputSpec) -> InputSpec:
    """The input size an architecture takes, given the size a dataset suggests."""
    check_architecture(architecture)
    if architecture == "small_cnn":
        return natural
    # MobileNetV2's ImageNet weights exist only for RGB at a few square sizes.
    side = next((s for s in MOBILENET_SIZES if s >= max(natural.height, natural.width)), 224)
    return InputSpec(side, side, 3)


def check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise InvalidInput(f"unknown model {architecture!r}. "
                           f"To fix this, choose one of: {', '.join(ARCHITECTURES)}.")


def build_model(architecture: str, spec: InputSpec, num_classes: int, *,
                weights: str | None = "imagenet") -> keras.Model:
    """Builds an uncompiled classifier.

    Args:
        architecture: ``small_cnn`` or ``mobilenet_v2``.
        spec: input height, width and channels.
        num_classes: size of the softmax output.
        weights: for ``mobilenet_v2``: ``"imagenet"`` (downloaded by Keras) or None.
    """
    check_architecture(architecture)
    if architecture == "small_cnn":
        return _small_cnn(spec, num_classes)
    return _mobilenet_v2(spec, num_classes, weights)


def _small_cnn(spec: InputSpec, num_classes: int) -> keras.Model:
    # Two conv blocks (28 -> 14 -> 7 for Fashion-MNIST); the last conv layer keeps
    # a 7x7 map so that Grad-CAM has some spatial resolution.
    return keras.Sequential(
        [
            keras.Input((spec.height, spec.width, spec.channels), name="image"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(name="pool2"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3"),
            layers.Flatten(name="flatten"),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(128, activation="relu", name="embedding"),
            layers.Dense(num_classes, activation="softmax", name="probabilities"),
        ],
        name="small_cnn",
    )


def _mobilenet_v2(spec: InputSpec, num_classes: int, weights: str | None) -> keras.Model:
    if spec.channels != 3 or spec.height < 32 or spec.width < 32:
        raise InvalidInput(f"mobilenet_v2 needs RGB input of at least 32x32, got {spec}. "
                           "To fix this, use input_spec_for('mobilenet_v2', ...).")
    try:
        backbone = keras.applications.MobileNetV2(
            input_shape=(spec.height, spec.width, 3), include_top=False, weights=weights)
    except Exception as error:  # Keras raises several types when the download fails
        raise ModelError(
            f"could not get ImageNet weights for mobilenet_v2 ({type(error).__name__}: {error}). "
            "To fix this, connect to the network once (Keras caches the file in "
            "~/.keras/models/), or train small_cnn instead."
        ) from None
    backbone.trainable = False  # frozen base, as in the seed notebook
    backbone.name = "backbone"
    return keras.Sequential(
        [
            keras.Input((spec.height, spec.width, 3), name="image"),
            # Our preprocessing scales to [0, 1]; MobileNetV2 expects [-1, 1].
            layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range"),
            backbone,
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dropout(0.2, name="dropout"),
            layers.Dense(128, activation="relu", name="embedding"),
            layers.Dense(num_classes, activation="softmax", name="probabilities"),
        ],
        name="mobilenet_v2",
    )
