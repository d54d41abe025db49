"""Training from scratch with fixed seeds, reporting progress through a callback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from core.errors import CoreError
from core.ml.data import Dataset
from core.ml.evaluation import batch_within
from core.ml.image_sets import Images
from core.ml.images import InputSpec, preprocess_batch
from core.ml.models import build_model
from core.ml.params import Progress, ProgressCallback, TrainingParams


def preprocessed_batches(images: Images, labels: np.ndarray, spec: InputSpec, batch_size: int,
                         failures: list[CoreError], shuffle_seed: int | None = None) -> Any:
    """A ``tf.data`` pipeline of (float32 batch, labels): each batch read (a folder's
    files decoded and resized) and preprocessed by the product's own functions, the same
    as serving's (TensorFlow's image ops would decode and resize otherwise), in a Python
    generator, prefetched while the model trains on the previous one. ``shuffle_seed``:
    a new order each epoch, from that seed. An image that cannot be read is put in
    ``failures`` (TensorFlow re-raises it as its own error type)."""
    import tensorflow as tf

    rng = np.random.default_rng(shuffle_seed)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = (rng.permutation(len(labels)) if shuffle_seed is not None
                 else np.arange(len(labels)))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            try:
                batch = preprocess_batch(images[index], spec)
            except CoreError as error:
                failures.append(error)
                raise
            yield batch, labels[index]

    shape = (None, spec.height, spec.width, spec.channels)
    return tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec(shape, tf.float32), tf.TensorSpec((None,), tf.int64))).apply(
        tf.data.experimental.assert_cardinality(int(np.ceil(len(labels) / batch_size)))
    ).prefetch(2)


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    history: list[dict]  # one dict of metrics per epoch
    seconds: float
    frozen: tuple[str, ...] = ()  # nested sub-models (backbones) left untrained
    batch_size: int = 0  # images per step, as trained (fewer than asked for large images)


class ProgressRelay(keras.callbacks.Callback):
    """Forwards Keras' batch and epoch events to a plain callable."""

    def __init__(self, on_progress: ProgressCallback, epochs: int, steps: int):
        super().__init__()
        self._on_progress, self._epochs, self._steps = on_progress, epochs, steps
        self._epoch = 1

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._on_progress(Progress(self._epoch, self._epochs, batch + 1, self._steps,
                                   _floats(logs)))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._on_progress(Progress(epoch + 1, self._epochs, self._steps, self._steps,
                                   _floats(logs), epoch_done=True))


def _floats(logs: dict | None) -> dict:
    return {key: float(value) for key, value in (logs or {}).items()}


def train_model(dataset: Dataset, params: TrainingParams,
                on_progress: ProgressCallback | None = None) -> TrainingResult:
    """Trains a new model on ``dataset.train``, validating on ``dataset.validation``."""
    keras.utils.set_random_seed(params.seed)  # python, numpy and TF seeds
    model = build_model(params.architecture, dataset.input_spec, len(dataset.class_names),
                        weights=params.weights)
    return fit_model(model, dataset.train.images, dataset.train.labels,
                     dataset.validation.images, dataset.validation.labels, dataset.input_spec,
                     epochs=params.epochs, batch_size=params.batch_size,
                     learning_rate=params.learning_rate, on_progress=on_progress,
                     seed=params.seed)


def fit_model(model: Any, images: Images, labels: np.ndarray, validation_images: Images,
              validation_labels: np.ndarray, spec: InputSpec, *, epochs: int, batch_size: int,
              learning_rate: float, on_progress: ProgressCallback | None = None,
              callbacks: tuple = (), seed: int = 0) -> TrainingResult:
    """Compiles and fits ``model`` on uint8 [N, h, w, c] images (shared preprocessing),
    fed a batch at a time (``preprocessed_batches``): memory holds the uint8 images (a
    folder's: only its file list) and a few float batches, never a float copy of a split.

    ``callbacks``: extra Keras callbacks (benchmarks use them to time milestones).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    batch_size = batch_within(spec, batch_size)  # 16 at 224x224 RGB: see BATCH_VALUES
    failures: list[CoreError] = []
    train = preprocessed_batches(images, labels, spec, batch_size, failures, shuffle_seed=seed)
    validation = preprocessed_batches(validation_images, validation_labels, spec, batch_size,
                                      failures)
    steps = int(np.ceil(len(labels) / batch_size))
    relay = [ProgressRelay(on_progress, epochs, steps)] if on_progress else []
    started = time.perf_counter()
    try:
        fit = model.fit(train, validation_data=validation, epochs=epochs, verbose=0,
                        shuffle=False,  # the pipeline shuffles, from the seed
                        callbacks=relay + list(callbacks))
    except Exception:
        if failures:  # an unreadable image, raised inside TensorFlow's pipeline
            raise failures[0] from None
        raise
    seconds = time.perf_counter() - started
    # Callbacks may stop training early: the history has as many epochs as actually ran.
    history = [
        {key: float(values[i]) for key, values in fit.history.items()} | {"epoch": i + 1}
        for i in range(len(fit.epoch))
    ]
    return TrainingResult(model=model, history=history, seconds=seconds, batch_size=batch_size)
