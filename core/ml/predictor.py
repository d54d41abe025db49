"""The serving predictor: preprocess and infer one image with TFLite, no TensorFlow import
(but for an imported model whose TFLite conversion changed its answers: its SavedModel,
with TensorFlow, ``VersionMetadata.serving_runtime``).

Models are loaded once per (model, version) and cached; a version's files never
change after registration, so the cache never goes stale.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from core.ml.exports import SAVED_MODEL_DIR, TFLITE_FILE, load_keras_model
from core.ml.gradcam import GradCam
from core.ml.images import DecodedImage, image_statistics, preprocess, resize_to_spec
from core.ml.ood import OOD_FILE, OodDetector
from core.registry.artifacts import ArtifactStore
from core.registry.records import ModelVersion


@dataclass(frozen=True)
class Prediction:
    """One image's answer. ``embedding`` is kept for monitoring, not shown.

    ``ood_score`` (higher: less like the training images) and ``unfamiliar`` (the score is
    above the version's calibrated threshold) are None for a version without an OOD
    detector (registered before there was one; ``python -m core profile`` adds it).
    """

    label: str
    class_index: int
    confidence: float
    probabilities: dict[str, float]
    version: int
    latency_ms: float
    embedding: np.ndarray = field(repr=False, compare=False)
    image_statistics: dict[str, float] = field(default_factory=dict, compare=False)
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)  # model input, uint8
    log_id: int | None = None  # its row in the prediction log, once logged
    ood_score: float | None = None
    unfamiliar: bool | None = None

    def as_dict(self) -> dict:
        """The JSON shape of ``python -m core predict --json`` (without ``file``)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "version": self.version,
            "latency_ms": round(self.latency_ms, 3),
            "ood_score": self.ood_score,
            "unfamiliar": self.unfamiliar,
        }


class Predictor:
    """A version's model behind a lock (interpreters are not thread-safe): TFLite, or
    the SavedModel for a version registered to be served by TensorFlow."""

    def __init__(self, version: ModelVersion, folder: Path):
        self.version = version
        self.class_names: tuple[str, ...] = tuple(version.class_names)
        self.input_spec = version.metadata.spec
        self.runtime = version.metadata.serving_runtime
        self._runner = (_tensorflow_runner(version, Path(folder))
                        if self.runtime == "tensorflow" else _tflite_runner(version, Path(folder)))
        self._lock = threading.Lock()
        ood = Path(folder) / OOD_FILE
        self.ood: OodDetector | None = OodDetector.load(ood) if ood.is_file() else None
        # The first invoke sets up XNNPACK (~15 ms); pay it at load, not on a user's photo.
        spec = self.input_spec
        _, embedding = self.predict_batch(np.zeros((1, spec.height, spec.width, spec.channels),
                                                   np.float32))
        self.embedding_size = int(embedding.shape[1])
        self._batching_pays: bool | None = None

    @property
    def batching_pays(self) -> bool:
        """Whether a batch of 8 costs less per image than one image alone (by a fifth),
        measured once: true for a small CNN, whose fixed costs per call (the OOD score's
        pass over its bank, the statistics) dominate; false for a network whose every
        image costs milliseconds on one thread (MobileNetV2 at 224x224), where a batch
        only holds the others up."""
        if self._batching_pays is None:
            spec = self.input_spec
            shape = (spec.height, spec.width, spec.channels)

            def per_image(n: int) -> float:
                inputs = np.zeros((n, *shape), np.float32)
                pixels = np.zeros((n, *shape), np.uint8)
                times = []
                for _ in range(5):  # the fastest: the least disturbed by other work
                    started = time.perf_counter()
                    self.predict_inputs(inputs, pixels, started)
                    times.append((time.perf_counter() - started) / n)
                return min(times)

            self._batching_pays = per_image(8) < 0.8 * per_image(1)
        return self._batching_pays

    def predict_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 [N, h, w, c] preprocessed images -> (probabilities [N, K], embeddings [N, E])."""
        with self._lock:
            outputs = self._runner(image=np.ascontiguousarray(images, dtype=np.float32))
            return outputs["probabilities"].copy(), outputs["embedding"].copy()

    def predict_decoded(self, decoded: DecodedImage, started: float) -> Prediction:
        """Predicts one decoded image; ``started`` is when its bytes arrived (perf_counter)."""
        resized = resize_to_spec(decoded.pixels, self.input_spec)
        return self.predict_inputs(preprocess(resized, self.input_spec)[None], resized[None],
                                   started)[0]

    def predict_inputs(self, inputs: np.ndarray, pixels: np.ndarray,
                       started: float) -> list[Prediction]:
        """Predicts a batch: ``inputs`` float32 [N, h, w, c] as the model takes them,
        ``pixels`` the same images as uint8 (what monitoring and retraining keep)."""
        probabilities, embeddings = self.predict_batch(inputs)
        scores = flags = None
        if self.ood is not None:
            scores = self.ood.scores(embeddings)
            flags = self.ood.unfamiliar(scores)
        latency_ms = (time.perf_counter() - started) * 1000
        statistics = image_statistics(pixels)
        predictions = []
        for i, row in enumerate(probabilities):
            best = int(row.argmax())
            predictions.append(Prediction(
                label=self.class_names[best],
                class_index=best,
                confidence=float(row[best]),
                probabilities={name: float(p) for name, p in zip(self.class_names, row)},
                version=self.version.version,
                latency_ms=latency_ms,
                embedding=embeddings[i],
                image_statistics={name: float(values[i]) for name, values in statistics.items()},
                pixels=pixels[i],
                ood_score=None if scores is None else float(scores[i]),
                unfamiliar=None if flags is None else bool(flags[i]),
            ))
        return predictions


def _tflite_runner(version: ModelVersion, folder: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    path = folder / TFLITE_FILE
    if not path.is_file():
        raise ModelError(f"version {version.version} has no {TFLITE_FILE} in {folder}. "
                         "To fix this, register the version again.")
    # One thread: for single images thread start-up costs more than it saves.
    return Interpreter(model_path=str(path), num_threads=1).get_signature_runner(
        "serving_default")


def _tensorflow_runner(version: ModelVersion, folder: Path) -> Any:
    """The version's SavedModel signature, called like the TFLite signature runner (a
    model whose TFLite conversion disagreed with it; TensorFlow is imported for it)."""
    import tensorflow as tf

    path = folder / SAVED_MODEL_DIR
    if not path.is_dir():
        raise ModelError(f"version {version.version} has no {SAVED_MODEL_DIR} in {folder}. "
                         "To fix this, register the version again.")
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(image: np.ndarray) -> dict:
        return {name: np.asarray(value) for name, value in signature(image=image).items()}

    return run


class ModelCache:
    """Loads predictors, Keras models and compiled Grad-CAMs once per version."""

    def __init__(self, artifacts: ArtifactStore):
        self.artifacts = artifacts
        self._predictors: dict[tuple, Predictor] = {}
        self._keras_models: dict[tuple, object] = {}
        self._gradcams: dict[tuple, GradCam] = {}
        self._lock = threading.Lock()

    def _files(self, version: ModelVersion) -> Path:
        return self.artifacts.local_path(version.model, version.version,
                                         version.metadata.files)

    def has_predictor(self, version: ModelVersion) -> bool:
        return (version.model, version.version) in self._predictors

    def predictor(self, version: ModelVersion) -> Predictor:
        key = (version.model, version.version)
        with self._lock:
            if key not in self._predictors:
                self._predictors[key] = Predictor(version, self._files(version))
            return self._predictors[key]

    def keras_model(self, version: ModelVersion) -> Any:
        key = (version.model, version.version)
        with self._lock:
            if key not in self._keras_models:
                self._keras_models[key] = load_keras_model(self._files(version))
            return self._keras_models[key]

    def gradcam(self, version: ModelVersion) -> GradCam:
        version.metadata.require_layers("heatmaps are")
        model = self.keras_model(version)
        key = (version.model, version.version)
        with self._lock:
            if key not in self._gradcams:
                self._gradcams[key] = GradCam(model)
            return self._gradcams[key]
