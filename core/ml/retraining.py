"""Fine-tuning a copy of the champion: the retraining recipe's training step.

The seed notebook retrained with ``keras.models.clone_model``, which copies the
architecture but re-initialises every weight (its v2 scored 0.25). We load the
champion's weights and continue from them; ``reinitialize=True`` reproduces the
seed's mistake on purpose, so tests can prove the promotion gate catches it.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from core.ml.images import InputSpec
from core.ml.params import ProgressCallback, RetrainParams
from core.ml.training import TrainingResult, fit_model


def fine_tune(base_model: Any, images: np.ndarray, labels: np.ndarray, validation_images: np.ndarray,
              validation_labels: np.ndarray, spec: InputSpec, params: RetrainParams,
              on_progress: ProgressCallback | None = None, callbacks: tuple = ()
              ) -> TrainingResult:
    """Continues training a copy of ``base_model`` on uint8 [N, h, w, c] images."""
    keras.utils.set_random_seed(params.seed)
    model = keras.models.clone_model(base_model)  # same architecture, fresh weights...
    if not params.reinitialize:
        model.set_weights(base_model.get_weights())  # ...then the champion's weights
    return fit_model(model, images, labels, validation_images, validation_labels, spec,
                     epochs=params.epochs, batch_size=params.batch_size,
                     learning_rate=params.learning_rate, on_progress=on_progress,
                     callbacks=callbacks)
