import keras
import numpy as np
import pytest

from core.ml.images import InputSpec
from core.ml.models import build_model
from core.ml.params import Progress
from core.ml.training import fit_model

pytestmark = pytest.mark.slow


def tiny_data(n=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 3, n)


def test_history_and_progress_follow_the_epochs_that_ran():
    images, labels = tiny_data()

    class StopAfterFirst(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    reports: list[Progress] = []
    result = fit_model(build_model("small_cnn", InputSpec(28, 28, 1), 3), images, labels,
                       images[:16], labels[:16], InputSpec(28, 28, 1), epochs=3, batch_size=32,
                       learning_rate=1e-3, on_progress=reports.append,
                       callbacks=(StopAfterFirst(),))
    assert [row["epoch"] for row in result.history] == [1]
    assert set(result.history[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    steps = [r for r in reports if not r.epoch_done]
    assert [r.step for r in steps] == [1, 2] and steps[0].steps == 2
    assert [r.epoch for r in reports if r.epoch_done] == [1]
