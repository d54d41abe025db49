"""The TensorBoard run each training writes into its version's folder, read back with
TensorBoard's own event reader."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from core.app import has_tensorboard_run
from core.config import load_config
from core.ml.tensorboard import TENSORBOARD_DIR
from tests.conftest import backends_of

pytestmark = pytest.mark.slow


def read_run(folder):
    run = event_accumulator.EventAccumulator(
        str(folder / TENSORBOARD_DIR), size_guidance={event_accumulator.TENSORS: 0})
    run.Reload()
    return run


def scalar(run, tag) -> list[tuple[int, float]]:
    return [(event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
            for event in run.Tensors(tag)]


@pytest.mark.parametrize("version", [1, 2])  # trained by bootstrap, then by a retraining
def test_training_writes_scalars_the_confusion_matrix_and_the_graph(candidate_registry,
                                                                    version):
    backends = backends_of(load_config({}).with_overrides(registry_dir=candidate_registry))
    chosen = backends.registry.get_version(version)
    assert has_tensorboard_run(chosen)
    run = read_run(backends.registry.files(version))
    history = chosen.metadata.history
    assert scalar(run, "epoch/loss") == [(row["epoch"], pytest.approx(row["loss"]))
                                         for row in history]
    assert scalar(run, "epoch/val_accuracy") == [
        (row["epoch"], pytest.approx(row["val_accuracy"])) for row in history]
    test = chosen.metadata.metrics["test"]
    assert scalar(run, "test/accuracy") == [(len(history), pytest.approx(test["accuracy"]))]
    graph = str(run.Graph())  # the forward pass, through the named layers
    assert run.Tags()["graph"] and "probabilities" in graph and "embedding" in graph
    # The confusion matrix image: a PNG, one row of cells per class.
    (image,) = run.Tensors("test/confusion_matrix")
    png = tensor_util.make_ndarray(image.tensor_proto)[2]
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    assert pixels.shape[0] > 10 * len(chosen.class_names) and pixels.shape[2] == 3
