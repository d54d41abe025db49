import dataclasses

import numpy as np
import pytest

from core.errors import InvalidInput
from core.monitoring.log_records import Window
from core.monitoring.report import (
    MIN_WINDOW,
    ReferenceProfile,
    build_reference_profile,
    calibrated,
    drift_report,
    fit_calibration,
    pca_2d,
)

K, E = 4, 6


def synthetic(n, rng, shift=0.0, brightness=0.3):
    """Probabilities, embeddings, images and labels of a toy model that is right ~80%."""
    labels = rng.integers(0, K, n)
    predicted = np.where(rng.random(n) < 0.8, labels, rng.integers(0, K, n))
    confidence = np.clip(rng.normal(0.8 - shift, 0.1, n), 0.3, 1.0)
    probabilities = np.full((n, K), 0.0, np.float32)
    probabilities[:] = ((1 - confidence) / (K - 1))[:, None]
    probabilities[np.arange(n), predicted] = confidence
    embeddings = rng.normal(shift * 3, 1, (n, E)).astype(np.float32)
    images = np.clip(rng.normal(255 * (brightness + shift), 20, (n, 8, 8, 1)), 0,
                     255).astype(np.uint8)
    return probabilities, embeddings, images, labels


def window_from(probabilities, embeddings, images, labels, ood_scores=None):
    from core.ml.images import image_statistics
    n = len(labels)
    scores = np.full(n, np.nan, np.float32) if ood_scores is None else ood_scores
    return Window(np.arange(1, n + 1), [f"t{i:05d}" for i in range(n)], ["cli"] * n,
                  probabilities.argmax(axis=1), probabilities.max(axis=1), probabilities,
                  image_statistics(images), embeddings, labels, np.ones(n, np.float32), scores)


@pytest.fixture
def reference():
    train_embeddings = synthetic(3000, np.random.default_rng(9))[1]
    return build_reference_profile(*synthetic(2000, np.random.default_rng(0)), seed=0,
                                   train_embeddings=train_embeddings)


def relu(data):
    """The synthetic outputs with non-negative embeddings, like a ReLU layer's."""
    probabilities, embeddings, images, labels = data
    return probabilities, np.abs(embeddings), images, labels


@pytest.fixture
def relu_reference():
    return build_reference_profile(*relu(synthetic(2000, np.random.default_rng(0))), seed=0,
                                   train_embeddings=relu(synthetic(3000, np.random.default_rng(9)))[1])


def scored(reference, probabilities, embeddings, images, labels):
    """A window as the log holds it: each prediction scored when it was served."""
    return window_from(probabilities, embeddings, images, labels,
                       reference.ood.scores(embeddings))


def test_calibration_maps_confidence_to_observed_accuracy():
    confidence = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    correct = np.array([0, 0, 0, 1, 1, 1, 1, 1], bool)
    edges, accuracy = fit_calibration(confidence, correct, bins=2)
    assert accuracy.tolist() == [0.25, 1.0]
    assert calibrated(np.array([0.15, 0.95]), edges, accuracy).tolist() == [0.25, 1.0]


@pytest.mark.parametrize("same", [1.0, 0.0])
def test_a_model_equally_confident_on_every_image_gets_one_bin(same):
    """A small validation split on which the model is sure of everything: one bin over
    [0, 1] with its accuracy, never an empty calibration (the monitor's rules read it)."""
    confidence, correct = np.full(18, same), np.array([1] * 15 + [0] * 3, bool)
    edges, accuracy = fit_calibration(confidence, correct)
    assert edges.tolist() == [0.0, 1.0] and accuracy.tolist() == [pytest.approx(15 / 18)]
    assert calibrated(np.array([0.2, 1.0]), edges, accuracy).tolist() == pytest.approx(
        [15 / 18, 15 / 18])


def test_reference_profile_round_trip(tmp_path, reference):
    reference.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ood.npz", "reference.npz"]
    loaded = ReferenceProfile.load(tmp_path)
    np.testing.assert_array_equal(loaded.probabilities, reference.probabilities)
    np.testing.assert_allclose(loaded.embeddings, reference.embeddings, atol=1e-2)
    assert loaded.accuracy == reference.accuracy
    assert len(loaded.embeddings) == 1000  # the seeded sample, not all 2000
    assert loaded.ood.threshold == reference.ood.threshold
    assert len(loaded.ood.bank) == 3000  # every training embedding: fewer than the bank size
    # A profile written before OOD detectors loads without one.
    (tmp_path / "ood.npz").unlink()
    assert ReferenceProfile.load(tmp_path).ood is None


def test_unfamiliar_rate_is_the_share_of_scored_images_over_the_threshold(relu_reference):
    reference, rng = relu_reference, np.random.default_rng(1)
    clean = drift_report(reference, scored(reference, *relu(synthetic(500, rng))), 1)
    (rate,) = [s for s in clean.statistics if s.name == "unfamiliar_rate"]
    assert rate.value < 0.05 and rate.status == "ok"
    assert clean.details["unfamiliar"]["scored"] == 500
    assert clean.details["unfamiliar"]["validation_rate"] == pytest.approx(0.01, abs=0.002)
    probabilities, embeddings, images, labels = relu(synthetic(500, rng))
    embeddings[:100] *= -1  # a fifth of the images: directions no training image has
    strange = drift_report(reference, scored(reference, probabilities, embeddings, images,
                                             labels), 1)
    (rate,) = [s for s in strange.statistics if s.name == "unfamiliar_rate"]
    assert 0.19 <= rate.value <= 0.23 and rate.status == "alert"
    assert any("unlike the training images" in reason for reason in strange.reasons)


def test_unfamiliar_rate_is_left_out_without_scores_or_a_detector(reference):
    window = window_from(*synthetic(500, np.random.default_rng(1)))  # logged unscored
    assert "unfamiliar_rate" not in {s.name for s in drift_report(reference, window, 1).statistics}
    without = dataclasses.replace(reference, ood=None)
    rescored = scored(reference, *synthetic(500, np.random.default_rng(1)))
    assert "unfamiliar_rate" not in {s.name for s in
                                     drift_report(without, rescored, 1).statistics}


def test_same_distribution_raises_no_alert(reference):
    report = drift_report(reference, window_from(*synthetic(500, np.random.default_rng(1))), 1)
    assert not report.alert and report.reasons == []
    assert report.n == 500
    assert abs(report.estimated_accuracy - report.realized_accuracy) < 0.05
    assert {s.name for s in report.statistics} >= {"prediction_psi", "embedding_mmd",
                                                   "input_ks_brightness"}


def test_shifted_traffic_raises_an_alert_with_reasons(reference):
    shifted = window_from(*synthetic(500, np.random.default_rng(2), shift=0.2))
    report = drift_report(reference, shifted, 1)
    assert report.alert
    fired = {s.name for s in report.statistics if s.status == "alert"}
    assert {"confidence_ks", "input_ks_brightness", "embedding_mmd"} <= fired
    assert any("brightness" in reason for reason in report.reasons)
    as_json = report.as_dict()
    assert as_json["alert"] is True and as_json["n"] == 500
    assert set(as_json["statistics"][0]) >= {"name", "value", "threshold", "status"}


def test_too_small_a_window_is_refused(reference):
    tiny = window_from(*synthetic(MIN_WINDOW - 1, np.random.default_rng(3)))
    with pytest.raises(InvalidInput, match=f"holds {MIN_WINDOW - 1} prediction.*at least"):
        drift_report(reference, tiny, 1)


def test_pca_projects_onto_two_components(reference):
    current = np.random.default_rng(5).normal(size=(40, E)).astype(np.float32)
    ref_2d, cur_2d = pca_2d(reference.embeddings, current)
    assert ref_2d.shape == (1000, 2) and cur_2d.shape == (40, 2)
    assert ref_2d[:, 0].var() >= ref_2d[:, 1].var()
