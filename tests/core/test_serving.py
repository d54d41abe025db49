import numpy as np
import pytest

from core.errors import ImageError, VersionNotFound
from core.images import encode_png
from core.lifecycle import open_registry, predict_image
from core.serving import ModelCache
from tests import images_factory as factory
from tests.conftest import EVAL_LIMIT, fashion_test_images

pytestmark = pytest.mark.slow


def test_predictor_on_real_test_images_matches_the_evaluated_accuracy(trained_config):
    """Uploaded PNGs through decode + preprocess + TFLite score what evaluation recorded."""
    cache = ModelCache()
    images, labels = fashion_test_images(EVAL_LIMIT)
    predicted = [predict_image(trained_config, cache, encode_png(image))[0].class_index
                 for image in images]
    accuracy = float(np.mean(np.array(predicted) == labels))
    recorded = open_registry(trained_config).get_champion().metadata["metrics"]["test"]
    assert accuracy == pytest.approx(recorded["accuracy"], abs=0.002)


def test_prediction_fields(trained_config):
    images, _ = fashion_test_images(1)
    prediction, decoded = predict_image(trained_config, ModelCache(), encode_png(images[0]))
    assert prediction.version == 1
    assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    assert prediction.confidence == prediction.probabilities[prediction.label]
    assert prediction.latency_ms > 0
    assert prediction.embedding.shape == (128,)
    assert decoded.original_size == (28, 28)
    assert set(prediction.as_dict()) == {"label", "confidence", "probabilities", "version",
                                         "latency_ms"}


def test_colour_photo_of_any_size_is_accepted(trained_config):
    photo = factory.save(factory.gradient_rgb(640, 480), "JPEG")
    prediction, decoded = predict_image(trained_config, ModelCache(), photo)
    assert decoded.pixels.shape == (480, 640, 3)
    assert prediction.label in prediction.probabilities


def test_models_are_loaded_once(trained_config):
    cache = ModelCache()
    registry = open_registry(trained_config)
    version = registry.get_champion()
    assert cache.predictor(registry, version) is cache.predictor(registry, version)
    assert cache.keras_model(registry, version) is cache.keras_model(registry, version)


def test_batch_prediction_matches_single(trained_config):
    registry = open_registry(trained_config)
    predictor = ModelCache().predictor(registry, registry.get_champion())
    images, _ = fashion_test_images(8)
    batch = images.astype(np.float32) / 255
    probabilities, embeddings = predictor.predict_batch(batch)
    single, _ = predictor.predict_batch(batch[3:4])
    assert probabilities.shape == (8, 10) and embeddings.shape == (8, 128)
    np.testing.assert_allclose(probabilities[3], single[0], atol=1e-5)


def test_bad_uploads_and_versions(trained_config):
    with pytest.raises(ImageError, match="not an image"):
        predict_image(trained_config, ModelCache(), b"GIF89a but not really")
    with pytest.raises(VersionNotFound, match="no version 9"):
        predict_image(trained_config, ModelCache(), b"whatever", version=9)
