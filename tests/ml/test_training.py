import keras
import numpy as np
import pytest

from core.ml.image_sets import FolderImages
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


def noise_photos(folder, count, size, rng):
    """``count`` PNG files of random colour noise, ``size`` (height, width) each."""
    from PIL import Image

    files = [folder / f"{i:03d}.png" for i in range(count)]
    for path in files:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return files


class CountedImages(FolderImages):
    """A folder's images that remember the most they were asked to read at once."""

    largest = 0

    def __getitem__(self, key):
        chosen = super().__getitem__(key)
        if isinstance(chosen, FolderImages):
            return CountedImages(chosen.files, chosen.spec)
        return chosen

    def __array__(self, dtype=None, copy=None):
        CountedImages.largest = max(CountedImages.largest, len(self))
        return super().__array__(dtype, copy)


def test_a_folder_trains_and_evaluates_a_batch_at_a_time(tmp_path):
    """The pipeline never holds a split: training reads batch_size images at once,
    evaluation a model call's worth; an unreadable photo is named, not a TensorFlow error."""
    from core.errors import DatasetError
    from core.ml.evaluation import inference_batch, model_outputs

    spec = InputSpec(16, 16, 3)
    rng = np.random.default_rng(0)
    files = noise_photos(tmp_path, 96, (20, 24), rng)
    images, labels = CountedImages(files, spec), rng.integers(0, 2, 96)
    model = build_model("small_cnn", spec, 2)
    result = fit_model(model, images, labels, images[:40], labels[:40], spec, epochs=2,
                       batch_size=16, learning_rate=1e-3)
    assert len(result.history) == 2 and CountedImages.largest == 16
    CountedImages.largest = 0
    large = InputSpec(128, 128, 3)  # 85 images per model call (inference_batch)
    probabilities, _ = model_outputs(build_model("small_cnn", large, 2),
                                     CountedImages(files, large), large)
    assert probabilities.shape == (96, 2) and CountedImages.largest == inference_batch(large)
    (tmp_path / "050.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="050.png"):
        fit_model(build_model("small_cnn", spec, 2), images, labels, images[:40], labels[:40],
                  spec, epochs=1, batch_size=16, learning_rate=1e-3)


def test_the_retraining_mix_reads_and_augments_only_what_training_asks_for(tmp_path):
    """Originals from a folder and drifted copies are made when read, the same each time;
    building the mix decodes nothing."""
    from core.ml.data import Dataset, Split
    from core.ml.params import RetrainParams
    from core.ml.retraining_data import mix_retraining_data

    spec = InputSpec(16, 16, 3)
    rng = np.random.default_rng(1)
    train = Split(CountedImages(noise_photos(tmp_path, 30, (16, 16), rng), spec),
                  rng.integers(0, 2, 30))
    dataset = Dataset("folder:x", ("a", "b"), spec, train, train, train, "test")
    logged = Split(np.zeros((2, 16, 16, 3), np.uint8), np.array([0, 1]))
    CountedImages.largest = 0
    data = mix_retraining_data(dataset, ["brightness"], logged, ["api", "api"], None,
                               RetrainParams(original_images=20, augmented_per_scenario=12,
                                             logged_repeats=2))
    assert CountedImages.largest == 0  # nothing decoded yet
    assert len(data.images) == len(data.labels) == 20 + 12 + 4
    first, again = np.asarray(data.images[20:24]), np.asarray(data.images[20:24])
    assert first.shape == (4, 16, 16, 3) and np.array_equal(first, again)
    assert any(np.array_equal(data.images[0], image) for image in np.asarray(train.images))


def test_fine_tuning_keeps_a_nested_backbone_frozen_and_trains_the_layers_after_it():
    """The notebook's shape, Sequential([backbone, pooling, Dense]): the backbone (a
    sub-model) keeps its weights, the head learns; a flat model is fine-tuned whole."""
    from core.ml.params import RetrainParams
    from core.ml.retraining import fine_tune

    spec = InputSpec(16, 16, 3)
    backbone = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3)],
                                name="backbone")
    nested = keras.Sequential([keras.Input((16, 16, 3)), backbone,
                               keras.layers.GlobalAveragePooling2D(),
                               keras.layers.Dense(2, activation="softmax", name="head")])
    rng = np.random.default_rng(2)
    images, labels = rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8), rng.integers(0, 2, 32)
    params = RetrainParams(epochs=1, batch_size=16, learning_rate=1e-2)
    result = fine_tune(nested, images, labels, images[:8], labels[:8], spec, params)
    assert result.frozen == ("backbone",)
    for name, unchanged in (("backbone", True), ("head", False)):
        before, after = nested.get_layer(name).get_weights(), result.model.get_layer(
            name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(before, after)) is unchanged
    flat = build_model("small_cnn", spec, 2)
    assert fine_tune(flat, images, labels, images[:8], labels[:8], spec, params).frozen == ()
