import numpy as np
import pytest

from core.ml.evaluation import classification_metrics, confusion_matrix, expected_calibration_error


def one_hot_probabilities(predicted, num_classes, confidence):
    probabilities = np.full((len(predicted), num_classes), (1 - confidence) / (num_classes - 1))
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_metrics_on_a_hand_built_sample():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    metrics = classification_metrics(labels, one_hot_probabilities(predicted, 3, 0.9),
                                     ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # class a: precision 2/2, recall 2/3; b: 1/2, 1/2; c: 1/2, 1/1
    assert metrics["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert metrics["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert metrics["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics["per_class"]["b"]["support"] == 2


def test_never_predicted_class_has_zero_scores_not_nan():
    metrics = classification_metrics(np.array([0, 1]), one_hot_probabilities(np.array([0, 0]), 2, 0.8),
                                     ["a", "b"])
    assert metrics["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_expected_calibration_error():
    # All predictions at confidence 0.9, half right: ECE = |0.5 - 0.9| = 0.4.
    labels = np.array([0, 1, 0, 1])
    probabilities = one_hot_probabilities(np.array([0, 0, 0, 0]), 2, 0.9)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.4)
    # Perfectly calibrated: confidence 1.0 and always right.
    perfect = one_hot_probabilities(np.array([0, 1]), 2, 1.0)
    assert expected_calibration_error(np.array([0, 1]), perfect) == pytest.approx(0.0)
    # Two bins: 0.6 confident & right (gap 0.4), 1.0 confident & wrong (gap 1.0).
    mixed = np.array([[0.6, 0.4], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 0]), mixed) == pytest.approx(0.7)


def test_confusion_matrix_counts():
    assert confusion_matrix(np.array([1, 1, 0]), np.array([1, 0, 0]), 2).tolist() == [[1, 0], [1, 1]]
