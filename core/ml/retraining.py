"""Fine-tuning a copy of the champion: the retraining recipe's training step.

The seed notebook retrained with ``keras.models.clone_model``, which copies the
architecture but re-initialises every weight (its v2 scored 0.25). We load the
champion's weights and continue from them; ``reinitialize=True`` reproduces the
seed's mistake on purpose, so tests can prove the promotion gate catches it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import keras
import numpy as np

from core.ml.image_sets import Images
from core.ml.images import InputSpec
from core.ml.params import ProgressCallback, RetrainParams
from core.ml.training import TrainingResult, fit_model


def fine_tune(base_model: Any, images: Images, labels: np.ndarray, validation_images: Images,
              validation_labels: np.ndarray, spec: InputSpec, params: RetrainParams,
              on_progress: ProgressCallback | None = None, callbacks: tuple = ()
              ) -> TrainingResult:
    """Continues training a copy of ``base_model`` on uint8 [N, h, w, c] images.

    A backbone nested as a sub-model (the notebook's ``Sequential([MobileNetV2, pooling,
    Dense])``, our own ``mobilenet_v2``) stays frozen: the layers after it are trained.
    On a CPU a training step through a 224-pixel MobileNetV2 costs about 2.5x its forward
    pass, and the few hundred labelled drift images a retraining adds would pull its
    2.2 M backbone weights away from what they learned on far more images; re-fitting the
    head on its features is the standard transfer-learning step (``TrainingResult.frozen``
    names what stayed fixed; the version's recipe says so).
    """
    keras.utils.set_random_seed(params.seed)
    model = keras.models.clone_model(base_model)  # same architecture, fresh weights...
    if not params.reinitialize:
        model.set_weights(base_model.get_weights())  # ...then the champion's weights
    frozen = tuple(layer.name for layer in model.layers if isinstance(layer, keras.Model))
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    result = fit_model(model, images, labels, validation_images, validation_labels, spec,
                       epochs=params.epochs, batch_size=params.batch_size,
                       learning_rate=params.learning_rate, on_progress=on_progress,
                       callbacks=callbacks, seed=params.seed)
    return replace(result, frozen=frozen)
