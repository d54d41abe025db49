import keras
import numpy as np
import pytest

from core.ml.gradcam import GradCam, colorize, fit_for_display, overlay
from core.ml.images import InputSpec
from core.ml.models import build_model

pytestmark = pytest.mark.slow

SIZE = 28


def synthetic_images(n, rng):
    """Black 28x28 images with one bright 8x8 shape at a random place.

    Class 0: a filled square. Class 1: a hollow square (a ring). Returns images
    [n, 28, 28, 1] float32, labels [n] and the shapes' top-left corners [n, 2].
    """
    images = np.zeros((n, SIZE, SIZE, 1), np.float32)
    labels = rng.integers(0, 2, n)
    corners = rng.integers(0, SIZE - 8, (n, 2))
    for image, label, (row, col) in zip(images, labels, corners):
        image[row:row + 8, col:col + 8] = 1.0
        if label == 1:
            image[row + 2:row + 6, col + 2:col + 6] = 0.0
    return images, labels, corners


@pytest.fixture(scope="module")
def shape_model():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images, labels, _ = synthetic_images(3000, rng)
    model = build_model("small_cnn", InputSpec(SIZE, SIZE, 1), 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=3, batch_size=64, verbose=0)
    return model


def test_gradcam_puts_most_heat_on_the_object(shape_model):
    gradcam = GradCam(shape_model)
    assert gradcam.feature_layer == "conv3"
    images, labels, corners = synthetic_images(30, np.random.default_rng(1))
    fractions = []
    for image, (row, col) in zip(images, corners):
        heatmap, _ = gradcam.heatmap(image)
        assert heatmap.shape == (SIZE, SIZE)
        assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
        # Heat inside the shape's box, grown by 3 px for the 7x7 map's coarseness.
        box = np.zeros_like(heatmap, bool)
        box[max(row - 3, 0):row + 11, max(col - 3, 0):col + 11] = True
        fractions.append(heatmap[box].sum() / max(heatmap.sum(), 1e-9))
    # The box is at most 14x14 = 25% of the image; most heat must fall inside it.
    assert np.median(fractions) > 0.6


def branched_model() -> keras.Model:
    """A functional model that is not a chain: two conv branches merged, then a head
    whose softmax is a layer of its own."""
    image = keras.Input((SIZE, SIZE, 1), name="image")
    narrow = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="narrow")(image)
    wide = keras.layers.Conv2D(16, 5, padding="same", activation="relu", name="wide")(image)
    merged = keras.layers.Concatenate(name="merged")([narrow, wide])
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="mix")(merged))
    logits = keras.layers.Dense(2, name="logits")(pooled)
    return keras.Model(image, keras.layers.Activation("softmax", name="softmax")(logits))


def test_gradcam_on_a_functional_model_with_branches_finds_the_object():
    keras.utils.set_random_seed(0)
    images, labels, _ = synthetic_images(3000, np.random.default_rng(0))
    model = branched_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=3, batch_size=64, verbose=0)
    gradcam = GradCam(model)
    assert gradcam.feature_layer == "mix"  # after the merge: both branches explained
    test, labels, corners = synthetic_images(30, np.random.default_rng(1))
    fractions = []
    for image, label, (row, col) in zip(test, labels, corners):
        heatmap, explained = gradcam.heatmap(image)
        assert explained == int(np.argmax(model(image[None], training=False)[0]))
        assert heatmap.max() == 1.0  # never empty
        if label == 0:
            box = np.zeros_like(heatmap, bool)
            box[max(row - 2, 0):row + 10, max(col - 2, 0):col + 10] = True
            fractions.append(heatmap[box].sum() / heatmap.sum())
    # A filled square is found where it is. (This model learned "ring" as "no filled
    # square anywhere", so a ring's evidence is the background: the map says so.)
    assert len(fractions) >= 5 and np.median(fractions) > 0.9


def test_no_empty_map_for_the_predicted_class_on_real_test_images(trained_config):
    """The class logit, not the softmax probability, is explained: a confident answer
    saturates the softmax and its gradient (and the map) vanished."""
    from core.ml.images import preprocess
    from tests.conftest import backends_of, fashion_test_images

    backends = backends_of(trained_config)
    champion = backends.registry.get_champion()
    gradcam = backends.models.gradcam(champion)
    spec = backends.models.predictor(champion).input_spec
    images, _ = fashion_test_images(300)
    empty = [i for i, image in enumerate(images)
             if not gradcam.cam(preprocess(image, spec))[0].any()]
    assert empty == []


def test_gradcam_explains_the_predicted_or_a_chosen_class(shape_model):
    gradcam = GradCam(shape_model)
    images, _, _ = synthetic_images(1, np.random.default_rng(2))
    predicted = int(np.argmax(shape_model(images, training=False)[0]))
    _, explained = gradcam.heatmap(images[0])
    assert explained == predicted
    _, chosen = gradcam.heatmap(images[0], class_index=1 - predicted)
    assert chosen == 1 - predicted


def test_zero_gradient_gives_an_empty_heatmap_not_nan():
    model = build_model("small_cnn", InputSpec(SIZE, SIZE, 1), 3)
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    heatmap, _ = GradCam(model).heatmap(np.ones((SIZE, SIZE, 1), np.float32))
    assert not np.isnan(heatmap).any()
    assert (heatmap == 0).all()


def test_gradcam_through_a_nested_mobilenet_backbone():
    model = build_model("mobilenet_v2", InputSpec(96, 96, 3), 4, weights=None)
    gradcam = GradCam(model)
    assert gradcam.feature_layer == "backbone"
    image = np.random.default_rng(3).random((96, 96, 3), dtype=np.float32)
    heatmap, explained = gradcam.heatmap(image)
    assert heatmap.shape == (96, 96)
    assert np.isfinite(heatmap).all() and 0 <= explained < 4


def test_overlay_enlarges_small_images_and_colours_the_heat():
    pixels = np.zeros((28, 28, 1), np.uint8)
    heatmap = np.zeros((28, 28), np.float32)
    heatmap[10:14, 10:14] = 1.0
    blended = overlay(pixels, heatmap)
    assert blended.shape == (224, 224, 3) and blended.dtype == np.uint8
    assert blended[96, 96, 0] > 100  # hot: red
    assert blended[5, 5].tolist() == [0, 0, 0]  # cold: the image unchanged
    assert colorize(np.array([[0.0, 1.0]])).tolist() == [[[0, 0, 255], [255, 0, 0]]]


@pytest.mark.parametrize("height, width, expected", [
    (28, 28, (224, 224)),  # enlarged by a whole factor: crisp
    (12, 4000, (3, 1024)),  # a strip: shrunk to the longest side, never enlarged past it
    (4032, 3024, (1024, 768)),  # a phone photo: shrunk
    (1, 1, (224, 224)),
    (600, 700, (600, 700)),  # already fine
])
def test_images_are_sized_for_the_screen(height, width, expected):
    shown = fit_for_display(np.zeros((height, width, 1), np.uint8))
    assert shown.shape == (*expected, 3) and shown.dtype == np.uint8
