"""Models trained elsewhere, as a team would bring them: built and trained here (no
weights can be downloaded), on a generated folder of colour photos.

- ``mobilenet``: the course notebook's shape, a MobileNetV2 backbone (``weights=None``)
  nested in a ``Sequential`` with pooling and a softmax Dense; it takes pixels in [-1, 1]
  (MobileNetV2's own convention), saved as ``.keras``.
- ``rescaling``: a small CNN with a ``Rescaling`` layer inside that takes 0-255 and a
  Dense without activation (logits), saved as ``.keras`` and as a legacy ``.h5``.
- ``saved_model``: ``rescaling`` exported as a TF SavedModel folder (no layers to load).
- refused ones: a ``Lambda`` layer (code), and a model whose input is not an image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = ("circle", "square", "stripes")  # folder names: the dataset's class order
SIZE = 32
PER_CLASS = 40


def colour_folder(root: Path, seed: int = 0) -> Path:
    """``PER_CLASS`` PNG photos per class at 48x40 (resized to the model's size on
    loading), each class a shape on a random colour with noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            background = tuple(int(v) for v in rng.integers(0, 120, 3))
            ink = tuple(int(v) for v in rng.integers(150, 256, 3))
            image = Image.new("RGB", (48, 40), background)
            draw = ImageDraw.Draw(image)
            x, y = (int(v) for v in rng.integers(4, 14, 2))
            if name == "circle":
                draw.ellipse((x, y, x + 24, y + 22), fill=ink)
            elif name == "square":
                draw.rectangle((x, y, x + 22, y + 22), fill=ink)
            else:
                for row in range(0, 40, 8):
                    draw.rectangle((0, row, 47, row + 3), fill=ink)
            pixels = np.asarray(image).astype(np.int16) + rng.integers(-20, 21, (40, 48, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                root / name / f"{i:03d}.png")
    return root


def folder_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every photo of the folder at SIZE x SIZE, uint8 [N, SIZE, SIZE, 3], and its class."""
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(CLASSES):
        for path in sorted((root / name).glob("*.png")):
            images.append(np.asarray(Image.open(path).convert("RGB").resize(
                (SIZE, SIZE), Image.Resampling.BILINEAR)))
            labels.append(label)
    return np.stack(images), np.asarray(labels)


def _train(model, images: np.ndarray, labels: np.ndarray, scale, logits: bool,
           epochs: int, eagerly: bool = False) -> None:
    """``eagerly``: a few steps of a big network run faster eagerly than TensorFlow
    takes to trace its training graph (MobileNetV2: 5 s against 16 s)."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=eagerly,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.fit(scale(images.astype(np.float32)), labels, epochs=epochs, batch_size=16,
              verbose=0)


def mobilenet(folder: Path, out: Path) -> Path:
    import keras

    keras.utils.set_random_seed(1)
    backbone = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False,
                                              weights=None, alpha=0.35)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), backbone,
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(CLASSES), activation="softmax")])
    images, labels = folder_arrays(folder)
    _train(model, images, labels, lambda x: x / 127.5 - 1.0, logits=False, epochs=1,
           eagerly=True)
    model.save(out)
    return out


def rescaling(folder: Path, out: Path) -> Path:
    """Saved as ``out`` (a ``.keras`` file) and beside it as a legacy ``.h5``."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(2)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(16, activation="relu", name="features")(x)
    model = keras.Model(inputs, layers.Dense(len(CLASSES))(x))
    images, labels = folder_arrays(folder)
    _train(model, images, labels, lambda x: x, logits=True, epochs=25)
    model.save(out)
    model.save(out.with_suffix(".h5"))
    return out


def saved_model(keras_file: Path, out: Path) -> Path:
    """``keras_file``'s model exported as a TF SavedModel folder (``model.export``: what
    TF Serving loads from ``<model>/<N>/``)."""
    import keras

    keras.saving.load_model(keras_file).export(str(out), verbose=False)
    return out


def with_lambda(out: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)),
                              keras.layers.Lambda(lambda x: x * 2.0),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(CLASSES), activation="softmax")])
    model.save(out)
    return out


def not_an_image(out: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(len(CLASSES), activation="softmax")])
    model.save(out)
    return out


def fashion(fashion_mnist_dir: Path, out: Path) -> Path:
    """A team's own Fashion-MNIST classifier: 28x28 grayscale, a ``Rescaling`` layer that
    takes 0-255, logits out; trained briefly on 2,000 training images."""
    import keras
    from keras import layers

    from core.ml.data import FASHION_MNIST_FILES, read_idx

    keras.utils.set_random_seed(3)
    images = read_idx(fashion_mnist_dir / FASHION_MNIST_FILES["train_images"])[:2000, ..., None]
    labels = read_idx(fashion_mnist_dir / FASHION_MNIST_FILES["train_labels"])[:2000]
    inputs = keras.Input((28, 28, 1))
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    model = keras.Model(inputs, layers.Dense(10)(x))
    _train(model, images, labels.astype(np.int64), lambda x: x, logits=True, epochs=2)
    model.save(out)
    return out
