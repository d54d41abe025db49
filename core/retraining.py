"""Fine-tuning a copy of the champion: the retraining recipe's training step.

The seed notebook retrained with ``keras.models.clone_model``, which copies the
architecture but re-initialises every weight (its v2 scored 0.25). We load the
champion's weights and continue from them; ``reinitialize=True`` reproduces the
seed's mistake on purpose, so tests can prove the promotion gate catches it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np

from core.images import InputSpec
from core.training import TrainingResult, fit_model
from core.training_types import ProgressCallback


@dataclass(frozen=True)
class RetrainParams:
    """The recipe, recorded in the candidate's metadata.

    Attributes:
        epochs: passes over the combined data.
        learning_rate: lower than from scratch: we adjust, not relearn.
        batch_size: images per step.
        original_images: how many original training images to keep in the mix.
        augmented_per_scenario: training images copied with each observed drift.
        logged_repeats: how often each logged (drift or feedback) image is repeated.
        seed: for sampling, augmentation and shuffling.
        reinitialize: the seed notebook's bug (clone_model); only for tests.
    """

    epochs: int = 2
    learning_rate: float = 3e-4
    batch_size: int = 128
    original_images: int = 20_000
    augmented_per_scenario: int = 8_000
    logged_repeats: int = 4
    seed: int = 42
    reinitialize: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def fine_tune(base_model, images: np.ndarray, labels: np.ndarray, validation_images: np.ndarray,
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
