import numpy as np
import pytest

from core.app import predict_image
from core.errors import ImageError, VersionNotFound
from core.ml.images import encode_png
from tests import images_factory as factory
from tests.conftest import EVAL_LIMIT, FIXED_NOW, backends_of, fashion_test_images

pytestmark = pytest.mark.slow
CLI = dict(actor="anonymous", source="cli", now=FIXED_NOW)


def test_predictor_on_real_test_images_matches_the_evaluated_accuracy(registry_copy):
    """Uploaded PNGs through decode + preprocess + TFLite score what evaluation recorded."""
    backends = backends_of(registry_copy)
    images, labels = fashion_test_images(EVAL_LIMIT)
    predicted = [predict_image(backends, encode_png(image), **CLI)[0].class_index
                 for image in images]
    accuracy = float(np.mean(np.array(predicted) == labels))
    recorded = backends.registry.get_champion().metadata.metrics["test"]
    assert accuracy == pytest.approx(recorded["accuracy"], abs=0.002)


def test_prediction_fields(registry_copy):
    images, _ = fashion_test_images(1)
    prediction, decoded = predict_image(backends_of(registry_copy), encode_png(images[0]), **CLI)
    assert prediction.version == 1
    assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    assert prediction.confidence == prediction.probabilities[prediction.label]
    assert prediction.latency_ms > 0
    assert prediction.embedding.shape == (128,)
    assert decoded.original_size == (28, 28)
    assert set(prediction.as_dict()) == {"label", "confidence", "probabilities", "version",
                                         "latency_ms"}
    assert set(prediction.image_statistics) == {"brightness", "contrast", "sharpness"}


def test_every_prediction_is_logged_once_and_bad_input_never(registry_copy):
    backends = backends_of(registry_copy)

    log = backends.prediction_log
    images, _ = fashion_test_images(2)
    first, _ = predict_image(backends, encode_png(images[0]), **CLI)
    predict_image(backends, encode_png(images[1]), actor="vic",
                  source="upload", now=FIXED_NOW)
    with pytest.raises(ImageError):
        predict_image(backends, b"not an image", **CLI)
    window = log.window("classifier", 1)
    assert len(window) == 2 and window.sources == ["cli", "upload"]
    assert window.at[0] == "2026-01-02T03:04:05.000+00:00"
    assert window.predicted[0] == first.class_index
    np.testing.assert_allclose(window.probabilities[0],
                               list(first.probabilities.values()), rtol=1e-6)
    np.testing.assert_allclose(window.embeddings[0], first.embedding, rtol=1e-2, atol=1e-2)
    assert window.statistics["brightness"][0] == pytest.approx(
        first.image_statistics["brightness"])
    assert (window.true_labels == -1).all()


def test_colour_photo_of_any_size_is_accepted(registry_copy):
    photo = factory.save(factory.gradient_rgb(640, 480), "JPEG")
    prediction, decoded = predict_image(backends_of(registry_copy), photo, **CLI)
    assert decoded.pixels.shape == (480, 640, 3)
    assert prediction.label in prediction.probabilities


def test_models_are_loaded_once(trained_config):
    backends = backends_of(trained_config)
    cache, version = backends.models, backends.registry.get_champion()
    assert cache.predictor(version) is cache.predictor(version)
    assert cache.keras_model(version) is cache.keras_model(version)


def test_batch_prediction_matches_single(trained_config):
    backends = backends_of(trained_config)
    predictor = backends.models.predictor(backends.registry.get_champion())
    images, _ = fashion_test_images(8)
    batch = images.astype(np.float32) / 255
    probabilities, embeddings = predictor.predict_batch(batch)
    single, _ = predictor.predict_batch(batch[3:4])
    assert probabilities.shape == (8, 10) and embeddings.shape == (8, 128)
    np.testing.assert_allclose(probabilities[3], single[0], atol=1e-5)


def test_bad_uploads_and_versions(registry_copy):
    backends = backends_of(registry_copy)
    with pytest.raises(ImageError, match="not an image"):
        predict_image(backends, b"GIF89a but not really", **CLI)
    with pytest.raises(VersionNotFound, match="no version 9"):
        predict_image(backends, b"whatever", version=9, **CLI)
