"""The OOD score: k-th nearest-neighbour distance on unit-length embeddings."""

import io

import numpy as np
import pytest

from core.ml.ood import OodDetector, fit_ood_detector, unit_length

AXES = np.eye(4, dtype=np.float32)  # four training embeddings: the unit axes


def detector(neighbours: int, threshold: float = 0.5) -> OodDetector:
    return OodDetector(AXES, neighbours, threshold, np.zeros(0, np.float32))


def test_scores_are_distances_to_the_kth_nearest_training_embedding():
    queries = np.array([[5, 0, 0, 0],  # on an axis: its own direction, distance 0
                        [1, 1, 0, 0],  # halfway between two axes
                        [0, 0, 0, 0]], np.float32)  # no direction: 1 from every axis
    nearest = detector(1).scores(queries)
    np.testing.assert_allclose(nearest, [0.0, np.sqrt(2 - np.sqrt(2)), 1.0], atol=1e-6)
    second = detector(2).scores(queries)
    np.testing.assert_allclose(second, [np.sqrt(2), np.sqrt(2 - np.sqrt(2)), 1.0], atol=1e-6)
    # Length does not matter, only direction.
    np.testing.assert_allclose(detector(1).scores(queries[:1] * 0.01), [0.0], atol=1e-6)


def test_scores_in_chunks_equal_scores_one_by_one():
    rng = np.random.default_rng(0)
    bank = unit_length(rng.normal(size=(300, 8)))
    many = OodDetector(bank, 5, 1.0, np.zeros(0, np.float32))
    queries = rng.normal(size=(1100, 8)).astype(np.float32)  # more than one chunk
    together = many.scores(queries)
    alone = np.concatenate([many.scores(q[None]) for q in queries[::100]])
    np.testing.assert_allclose(together[::100], alone, rtol=1e-5)
    brute = np.sort(np.linalg.norm(unit_length(queries)[:, None] - bank[None], axis=2),
                    axis=1)[:, 4]
    np.testing.assert_allclose(together, brute, atol=1e-5)


def test_unfamiliar_means_above_the_threshold():
    flags = detector(1, threshold=0.5).unfamiliar(np.array([0.2, 0.5, 0.51]))
    assert flags.tolist() == [False, False, True]


def test_fit_calibrates_the_threshold_on_validation_and_flags_far_embeddings():
    rng = np.random.default_rng(1)
    centre = np.zeros(16, np.float32)
    centre[0] = 3
    train = centre + rng.normal(size=(3000, 16)).astype(np.float32)
    validation = centre + rng.normal(size=(1000, 16)).astype(np.float32)
    fitted = fit_ood_detector(train, validation, seed=0, bank_size=2000, neighbours=10)
    assert fitted.bank.shape == (2000, 16) and fitted.neighbours == 10
    np.testing.assert_allclose(np.linalg.norm(fitted.bank, axis=1), 1, atol=1e-3)
    assert fitted.threshold == pytest.approx(np.quantile(fitted.validation_scores, 0.99))
    assert fitted.validation_rate == pytest.approx(0.01, abs=0.002)
    familiar = centre + rng.normal(size=(1000, 16)).astype(np.float32)
    opposite = -centre + rng.normal(size=(1000, 16)).astype(np.float32)
    assert fitted.unfamiliar(fitted.scores(familiar)).mean() < 0.03
    assert fitted.unfamiliar(fitted.scores(opposite)).mean() > 0.95
    # The same seed picks the same neighbours.
    again = fit_ood_detector(train, validation, seed=0, bank_size=2000, neighbours=10)
    np.testing.assert_array_equal(again.bank, fitted.bank)


def test_fit_with_fewer_training_embeddings_than_neighbours_uses_them_all():
    fitted = fit_ood_detector(AXES[:3], AXES, seed=0)
    assert fitted.neighbours == 3 and len(fitted.bank) == 3


def test_save_and_load_give_the_same_scores():
    rng = np.random.default_rng(2)
    fitted = fit_ood_detector(rng.normal(size=(500, 8)), rng.normal(size=(200, 8)), seed=0)
    buffer = io.BytesIO()
    fitted.save(buffer)
    buffer.seek(0)
    loaded = OodDetector.load(buffer)
    queries = rng.normal(size=(50, 8))
    np.testing.assert_allclose(loaded.scores(queries), fitted.scores(queries), atol=1e-6)
    assert (loaded.threshold, loaded.neighbours) == (fitted.threshold, fitted.neighbours)
