"""Classification metrics computed with NumPy from labels and probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import DatasetError
from core.ml.image_sets import Images, batches
from core.ml.images import InputSpec, preprocess_batch
from core.ml.ood import BANK_SIZE

ECE_BINS = 15


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class] -> int64 [K, K]."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


@dataclass(frozen=True)
class ConfidenceBin:
    """Bin ``(low, high]`` of top-class confidence (confidence 0 joins the first bin)."""

    low: float
    high: float
    count: int
    mean_confidence: float | None  # None: an empty bin
    accuracy: float | None


def reliability(labels: np.ndarray, probabilities: np.ndarray,
                bins: int = ECE_BINS) -> list[ConfidenceBin]:
    """Accuracy against mean confidence in equal-width confidence bins (what a
    reliability diagram draws and the ECE weighs)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    bin_index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    result = []
    for b in range(bins):
        in_bin = bin_index == b
        empty = not in_bin.any()
        result.append(ConfidenceBin(
            b / bins, (b + 1) / bins, int(in_bin.sum()),
            None if empty else float(confidence[in_bin].mean()),
            None if empty else float(correct[in_bin].mean())))
    return result


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins."""
    return float(sum(b.count / len(labels) * abs(b.accuracy - b.mean_confidence)
                     for b in reliability(labels, probabilities, bins)
                     if b.accuracy is not None and b.mean_confidence is not None))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           class_names: list[str] | tuple[str, ...]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix and ECE.

    Args:
        labels: int [N] true classes.
        probabilities: float [N, K] predicted probabilities.
        class_names: K names, in label order.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, len(class_names))
    true_positive = np.diag(matrix).astype(np.float64)
    predicted_count = matrix.sum(axis=0)
    actual_count = matrix.sum(axis=1)
    # A class never predicted (or never present) gets precision (recall) 0, not NaN.
    precision = np.divide(true_positive, predicted_count,
                          out=np.zeros_like(true_positive), where=predicted_count > 0)
    recall = np.divide(true_positive, actual_count,
                       out=np.zeros_like(true_positive), where=actual_count > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator,
                   out=np.zeros_like(true_positive), where=denominator > 0)
    return {
        "n": int(len(labels)),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1.mean()),
        "ece": expected_calibration_error(labels, probabilities),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(actual_count[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
    }


def sample_embeddings(model: Any, images: Images, input_spec: InputSpec, seed: int,
                      size: int = BANK_SIZE) -> np.ndarray:
    """Embeddings of a seeded sample of ``size`` of the uint8 ``images`` (the training
    images an OOD detector compares with)."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(images), size=min(size, len(images)), replace=False))
    return model_outputs(model, images[sample], input_spec)[1]


# Input values one model call may take: 16 images at 224x224 RGB. A 224-pixel
# MobileNetV2's forward pass peaks at about 90 MB per image on a CPU (measured: one
# call on 32 images took the process from 0.8 to 3.5 GB, on 16 to 2.2 GB).
BATCH_VALUES = 16 * 224 * 224 * 3


def inference_batch(spec: InputSpec) -> int:
    """Images per model call when evaluating: 1,024 at 28x28, 16 at 224x224 RGB."""
    return batch_within(spec, 1024)


def batch_within(spec: InputSpec, wanted: int) -> int:
    """``wanted`` images per step, or fewer when their inputs would pass BATCH_VALUES
    (training a large backbone on large images); at least 1."""
    return max(1, min(wanted, BATCH_VALUES // (spec.height * spec.width * spec.channels)))


def model_outputs(model: Any, images: Images, spec: InputSpec
                  ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, h, w, c] images (a folder's: read a batch at a time) -> (probabilities
    [N, K], embeddings [N, E]), each batch preprocessed on its own."""
    from core.ml.exports import serving_outputs

    both = serving_outputs(model)
    chunks = [both(preprocess_batch(batch, spec), training=False)
              for batch in batches(images, inference_batch(spec))]
    if not chunks:
        raise DatasetError("a split has no images to evaluate. To fix this, give every "
                           "class images for validation and test.")
    return (np.concatenate([np.asarray(c["probabilities"]) for c in chunks]),
            np.concatenate([np.asarray(c["embedding"]) for c in chunks]))
