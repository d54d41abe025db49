"""Is this image like the training images? A per-image out-of-distribution score.

The score is the distance from an image's penultimate-layer embedding to its k-th
nearest neighbour among the training images' embeddings, both scaled to unit length
(Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022).
Higher means less like the training data. An image is *unfamiliar* when its score is
above the 99th percentile of the validation split's scores, so about 1 % of images
like the validation split are flagged.

Measured on the production model (``python -m bench --only ood``; docs/benchmarks.md):
AUROC 0.97–0.98 against noise, inverted images, photos and random shapes, where the
maximum softmax probability reaches 0.68–0.85 and a class-conditional Mahalanobis
distance 0.80–0.97. Pure NumPy: the serving path scores without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

OOD_FILE = "ood.npz"
BANK_SIZE = 10_000  # training embeddings kept (float16: 2.5 MB for 128 dimensions)
NEIGHBOURS = 10  # k; measured: best or within 0.004 AUROC of k = 50, 200 on every OOD set
QUANTILE = 0.99  # the unfamiliar threshold: this quantile of the validation scores
_CHUNK = 512  # queries per distance matrix (512 x 10,000 float32: 20 MB)


def unit_length(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (an all-zero row stays zero)."""
    vectors = np.asarray(embeddings, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def knn_distances(bank: np.ndarray, neighbours: int, embeddings: np.ndarray) -> np.ndarray:
    """Distance of each embedding (scaled to length 1) to its ``neighbours``-th nearest
    row of ``bank`` (rows of length 1): float32 [N]."""
    queries = unit_length(np.atleast_2d(embeddings))
    distances = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), _CHUNK):
        chunk = queries[start:start + _CHUNK]
        # |a - b|^2 = |a|^2 + |b|^2 - 2ab; the bank's rows have length 1. The bank on the
        # left: BLAS then reads it once in its own order (2x faster for a few queries).
        squared = np.sum(chunk ** 2, axis=1, keepdims=True) + 1.0 - 2.0 * (bank @ chunk.T).T
        kth = np.partition(squared, neighbours - 1, axis=1)[:, neighbours - 1]
        distances[start:start + len(chunk)] = np.sqrt(np.maximum(kth, 0.0))
    return distances


@dataclass(frozen=True)
class OodDetector:
    """k-nearest-neighbour distance to the training embeddings, and its calibration.

    Attributes:
        bank: float32 [M, E] training embeddings of unit length.
        neighbours: k (at most M).
        threshold: scores above it are unfamiliar.
        validation_scores: float32 [V] the validation split's scores (the calibration).
    """

    bank: np.ndarray
    neighbours: int
    threshold: float
    validation_scores: np.ndarray

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """float [N, E] embeddings -> float32 [N] scores in [0, 2]."""
        return knn_distances(self.bank, self.neighbours, embeddings)

    def unfamiliar(self, scores: np.ndarray) -> np.ndarray:
        """Which scores are above the threshold (NaN, a prediction never scored: none)."""
        return np.asarray(scores) > self.threshold

    @property
    def validation_rate(self) -> float:
        """The share of validation images flagged: what clean traffic should show."""
        return float(np.mean(self.unfamiliar(self.validation_scores)))

    def save(self, target: Path | BinaryIO) -> None:
        np.savez_compressed(target, bank=self.bank.astype(np.float16),
                            neighbours=np.int64(self.neighbours),
                            threshold=np.float64(self.threshold),
                            validation_scores=self.validation_scores.astype(np.float32))

    @classmethod
    def load(cls, source: Path | BinaryIO) -> "OodDetector":
        with np.load(source, allow_pickle=False) as data:
            return cls(bank=data["bank"].astype(np.float32),
                       neighbours=int(data["neighbours"]),
                       threshold=float(data["threshold"]),
                       validation_scores=data["validation_scores"])


def fit_ood_detector(train_embeddings: np.ndarray, validation_embeddings: np.ndarray,
                     seed: int, *, bank_size: int = BANK_SIZE, neighbours: int = NEIGHBOURS,
                     quantile: float = QUANTILE) -> OodDetector:
    """Keeps a seeded sample of ``bank_size`` training embeddings and sets the threshold
    at ``quantile`` of the validation scores (the validation images are not in the bank,
    so their scores are what a new image like the training data gets)."""
    if len(train_embeddings) == 0 or len(validation_embeddings) == 0:
        raise ValueError("an OOD detector needs training and validation embeddings")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(train_embeddings),
                                size=min(bank_size, len(train_embeddings)), replace=False))
    # float16 storage, so the bank is scored as it will be loaded.
    bank = unit_length(train_embeddings[sample]).astype(np.float16).astype(np.float32)
    k = min(neighbours, len(bank))
    validation_scores = knn_distances(bank, k, validation_embeddings)
    return OodDetector(bank, k, float(np.quantile(validation_scores, quantile)),
                       validation_scores)
