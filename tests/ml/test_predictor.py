import numpy as np
import pytest

from core.app import drift_for_version, predict_image, simulate, unfamiliar_warning
from core.errors import ImageError, VersionNotFound
from core.ml.images import encode_png
from tests import images_factory as factory
from tests.conftest import EVAL_LIMIT, FIXED_NOW, backends_of, fashion_test_images, salt_noise

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
                                         "latency_ms", "ood_score", "unfamiliar"}
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


def test_unfamiliar_flags_noise_and_rarely_a_test_image(registry_copy):
    backends = backends_of(registry_copy)
    images, _ = fashion_test_images(300)
    garments = [predict_image(backends, encode_png(image), **CLI)[0] for image in images]
    noises = [predict_image(backends, encode_png(salt_noise(seed)), **CLI)[0]
              for seed in range(20)]
    # The threshold is the validation split's 99th percentile: ~1 % of garments pass it.
    assert np.mean([p.unfamiliar for p in garments]) <= 0.03
    assert np.mean([p.unfamiliar for p in noises]) >= 0.9
    assert np.median([p.ood_score for p in noises]) > np.quantile(
        [p.ood_score for p in garments], 0.95)
    # The score is the version's detector applied to the embedding the model gave.
    detector = backends.models.predictor(backends.registry.get_champion()).ood
    assert noises[0].ood_score == pytest.approx(float(detector.scores(noises[0].embedding)[0]),
                                                abs=1e-6)
    warning = unfamiliar_warning(noises[0])
    assert warning.startswith("This image is unlike the training images")
    assert f"{noises[0].ood_score:.2f}" in warning and "Ankle boot" in warning
    assert unfamiliar_warning(next(p for p in garments if not p.unfamiliar)) is None


def test_inverted_traffic_raises_the_unfamiliar_rate(registry_copy):
    backends = backends_of(registry_copy)
    simulate(backends, actor="olga", scenario="invert", n=100, clock=lambda: FIXED_NOW)
    report = drift_for_version(backends, actor="olga", now=FIXED_NOW, window=100)
    (rate,) = [s for s in report.statistics if s.name == "unfamiliar_rate"]
    assert rate.value >= 0.5 and rate.status == "alert"
