"""Training from scratch with fixed seeds, reporting progress through a callback."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from core.ml.data import Dataset
from core.ml.images import InputSpec, preprocess_batch
from core.ml.models import build_model
from core.ml.params import Progress, ProgressCallback, TrainingParams


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    history: list[dict]  # one dict of metrics per epoch
    seconds: float


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
                     learning_rate=params.learning_rate, on_progress=on_progress)


def fit_model(model: Any, images: np.ndarray, labels: np.ndarray, validation_images: np.ndarray,
              validation_labels: np.ndarray, spec: InputSpec, *, epochs: int, batch_size: int,
              learning_rate: float, on_progress: ProgressCallback | None = None,
              callbacks: tuple = ()) -> TrainingResult:
    """Compiles and fits ``model`` on uint8 [N, h, w, c] images (shared preprocessing).

    ``callbacks``: extra Keras callbacks (benchmarks use them to time milestones).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x_train = preprocess_batch(images, spec)
    x_val = preprocess_batch(validation_images, spec)
    steps = int(np.ceil(len(x_train) / batch_size))
    relay = [ProgressRelay(on_progress, epochs, steps)] if on_progress else []
    started = time.perf_counter()
    fit = model.fit(x_train, labels, validation_data=(x_val, validation_labels),
                    epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                    callbacks=relay + list(callbacks))
    seconds = time.perf_counter() - started
    # Callbacks may stop training early: the history has as many epochs as actually ran.
    history = [
        {key: float(values[i]) for key, values in fit.history.items()} | {"epoch": i + 1}
        for i in range(len(fit.epoch))
    ]
    return TrainingResult(model=model, history=history, seconds=seconds)
