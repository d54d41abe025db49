"""The one place that wires data, models, training, registry, serving, explain and monitoring.

The CLI and the dashboard call these functions; they pass in the time, the
acting user and progress callbacks, so everything here is testable headless.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from core.config import PROJECT_ROOT, Config
from core.data import Dataset, limit_dataset, load_dataset, natural_input_spec
from core.drift import Thresholds
from core.errors import InvalidInput, RegistryError
from core.evaluation import classification_metrics
from core.explain import enlarge, overlay
from core.images import DecodedImage, InputSpec, decode_image, preprocess, preprocess_batch
from core.monitoring import (MIN_WINDOW, REFERENCE_FILE, DriftReport, ReferenceProfile,
                             build_reference_profile, drift_report)
from core.prediction_log import (PredictionLog, PredictionRecord, SQLitePredictionLog,
                                 check_source)
from core.registry import ModelVersion, Registry
from core.scenarios import check_severity, get_scenario, sample_indices
from core.serving import ModelCache, Prediction
from core.training_types import ProgressCallback, TrainingParams

MAX_EPOCHS = 200


def open_registry(config: Config) -> Registry:
    return Registry(config.registry_dir, config.model_name)


@dataclass(frozen=True)
class BootstrapResult:
    version: ModelVersion
    created: bool  # False when the registry already had a version


def bootstrap(config: Config, *, actor: str, now: datetime, dataset_spec: str | None = None,
              architecture: str = "small_cnn", epochs: int | None = None,
              train_limit: int | None = None, eval_limit: int | None = None,
              weights: str | None = "imagenet",
              on_progress: ProgressCallback | None = None) -> BootstrapResult:
    """Trains and registers the first version, unless the registry already has one."""
    # TensorFlow takes seconds to import; only commands that train pay for it.
    from core.artifacts import save_artifacts
    from core.models import check_architecture, input_spec_for
    from core.training import train_model

    registry = open_registry(config)
    existing = registry.list_versions()
    if existing:
        return BootstrapResult(registry.find_champion() or existing[-1], created=False)
    check_architecture(architecture)
    params = TrainingParams(architecture=architecture, seed=config.seed, weights=weights,
                            epochs=_check_epochs(TrainingParams.epochs if epochs is None
                                                 else epochs))
    spec = dataset_spec or config.dataset
    input_spec = input_spec_for(architecture, natural_input_spec(spec))
    dataset = limit_dataset(load_dataset(spec, input_spec,
                                         fashion_mnist_dir=config.fashion_mnist_dir,
                                         seed=config.seed), train_limit, eval_limit)
    result = train_model(dataset, params, on_progress)
    metrics, reference = evaluate_model(result.model, dataset, config.seed)
    metadata = {
        "created_by": actor,
        "parent": None,
        "dataset": dataset.describe(),
        "class_names": list(dataset.class_names),
        "input_spec": dataset.input_spec.as_dict(),
        "architecture": architecture,
        "hyperparameters": params.as_dict(),
        "epochs": params.epochs,
        "training_seconds": round(result.seconds, 2),
        "history": result.history,
        "metrics": metrics,
        "environment": environment_info(),
    }

    def write_artifacts(folder: Path) -> None:
        save_artifacts(result.model, folder)
        reference.save(folder / REFERENCE_FILE)

    version = registry.register_version(write_artifacts, metadata, created_by=actor, now=now)
    return BootstrapResult(version, created=True)


def _check_epochs(epochs: int) -> int:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise InvalidInput(f"epochs must be between 1 and {MAX_EPOCHS}, got {epochs}. "
                           "To fix this, pass e.g. --epochs 6.")
    return epochs


def evaluate_model(model, dataset: Dataset, seed: int) -> tuple[dict, ReferenceProfile]:
    """Metrics on the validation and test splits, and the validation reference profile."""
    metrics, outputs = {}, {}
    for name, split in (("validation", dataset.validation), ("test", dataset.test)):
        outputs[name] = model_outputs(model, preprocess_batch(split.images, dataset.input_spec))
        metrics[name] = classification_metrics(split.labels, outputs[name][0],
                                               dataset.class_names)
    probabilities, embeddings = outputs["validation"]
    reference = build_reference_profile(probabilities, embeddings, dataset.validation.images,
                                        dataset.validation.labels, seed)
    return metrics, reference


def model_outputs(model, images: np.ndarray, batch_size: int = 1024
                  ) -> tuple[np.ndarray, np.ndarray]:
    """float32 [N, h, w, c] -> (probabilities [N, K], embeddings [N, E]), batched."""
    from core.artifacts import serving_outputs

    both = serving_outputs(model)
    chunks = [both(images[i:i + batch_size], training=False)
              for i in range(0, len(images), batch_size)]
    return (np.concatenate([np.asarray(c["probabilities"]) for c in chunks]),
            np.concatenate([np.asarray(c["embedding"]) for c in chunks]))


def environment_info() -> dict:
    """Code and library versions recorded with every version."""
    # Module versions, not distribution names: TensorFlow ships as tensorflow,
    # tensorflow-cpu or tensorflow-macos, all importing as ``tensorflow``.
    libraries = {}
    for module in ("tensorflow", "keras", "numpy", "PIL", "ai_edge_litert"):
        try:
            libraries[module] = getattr(importlib.import_module(module), "__version__", None)
        except ImportError:
            libraries[module] = None
    return {
        "git_commit": _git_commit(PROJECT_ROOT),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libraries,
    }


def _git_commit(root: Path) -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    explained_class: str
    heatmap: np.ndarray  # float32 [h, w] in [0, 1] at the model's input size
    image: np.ndarray  # uint8 [H, W, 3]: the upload as decoded, enlarged like the overlay
    overlay: np.ndarray  # uint8 [H, W, 3]


def open_prediction_log(config: Config) -> PredictionLog:
    return SQLitePredictionLog(config.registry_dir / "registry.db")


def predict_image(config: Config, cache: ModelCache, data: bytes, *, source: str,
                  now: datetime, version: int | None = None
                  ) -> tuple[Prediction, DecodedImage]:
    """Predicts one uploaded file with ``version`` (default: the champion) and logs it."""
    started = time.perf_counter()
    check_source(source)
    registry = open_registry(config)
    model_version = registry.resolve(version)
    # Validate the upload before loading any model: a bad file costs nothing.
    decoded = decode_image(data, max_bytes=config.max_upload_bytes,
                           max_pixels=config.max_image_pixels)
    prediction = cache.predictor(registry, model_version).predict_decoded(decoded, started)
    open_prediction_log(config).append([
        _record(registry.model, prediction, source, now, decoded.original_size)])
    return prediction, decoded


def _record(model: str, prediction: Prediction, source: str, now: datetime,
            size: tuple[int, int], true_label: int | None = None) -> PredictionRecord:
    stats = prediction.image_statistics
    return PredictionRecord(
        at=now.isoformat(timespec="milliseconds"), model=model, version=prediction.version,
        source=source, predicted=prediction.class_index, label=prediction.label,
        confidence=prediction.confidence,
        probabilities=np.asarray(list(prediction.probabilities.values()), np.float32),
        latency_ms=prediction.latency_ms, brightness=stats["brightness"],
        contrast=stats["contrast"], sharpness=stats["sharpness"], width=size[0],
        height=size[1], embedding=prediction.embedding, true_label=true_label)


def explain_image(config: Config, cache: ModelCache, data: bytes, *, source: str,
                  now: datetime, version: int | None = None,
                  class_name: str | None = None) -> Explanation:
    """Predicts (and logs) one uploaded file and explains a class (default: the predicted)."""
    prediction, decoded = predict_image(config, cache, data, source=source, now=now,
                                        version=version)
    registry = open_registry(config)
    model_version = registry.get_version(prediction.version)
    class_names = list(model_version.metadata["class_names"])
    class_index = None
    if class_name is not None:
        if class_name not in class_names:
            raise InvalidInput(f"unknown class {class_name!r}. To fix this, choose one of: "
                               f"{', '.join(class_names)}.")
        class_index = class_names.index(class_name)
    gradcam = cache.gradcam(registry, model_version)
    predictor = cache.predictor(registry, model_version)
    heatmap, explained = gradcam.heatmap(preprocess(decoded.pixels, predictor.input_spec),
                                         class_index)
    return Explanation(prediction, class_names[explained], heatmap,
                       enlarge(decoded.pixels), overlay(decoded.pixels, heatmap))


# --- monitoring --------------------------------------------------------------------------

SIMULATION_LOG_BATCH = 100
MAX_SIMULATION = 100_000


@dataclass(frozen=True)
class SimulationResult:
    scenario: str
    severity: float
    n: int
    version: int
    accuracy: float  # realized, against the test labels


def simulate(config: Config, cache: ModelCache, *, scenario: str, n: int,
             severity: float | None = None, seed: int = 0, clock: Callable[[], datetime],
             on_progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Streams ``n`` transformed test images through the champion as logged traffic.

    Each image is transformed (before the shared preprocessing, as a camera
    would), predicted one at a time through the serving path, and logged with
    its true label and source ``simulation:<scenario>``.
    """
    chosen = get_scenario(scenario)
    severity = check_severity(chosen, severity)
    if not 1 <= n <= MAX_SIMULATION:
        raise InvalidInput(f"--n must be between 1 and {MAX_SIMULATION:,}, got {n}. "
                           "To fix this, pass e.g. --n 500.")
    registry = open_registry(config)
    champion = registry.get_champion()
    test = _test_split(config, champion)
    predictor = cache.predictor(registry, champion)
    log = open_prediction_log(config)
    rng = np.random.default_rng(seed)
    indices = sample_indices(chosen, severity, test.labels, n, rng)
    pending, correct = [], 0
    for done, index in enumerate(indices, start=1):
        started = time.perf_counter()
        pixels = chosen.transform(test.images[index], severity, rng)
        decoded = DecodedImage(pixels, (pixels.shape[1], pixels.shape[0]), "simulation")
        prediction = predictor.predict_decoded(decoded, started)
        correct += prediction.class_index == test.labels[index]
        pending.append(_record(registry.model, prediction, f"simulation:{scenario}", clock(),
                               decoded.original_size, int(test.labels[index])))
        if len(pending) == SIMULATION_LOG_BATCH or done == n:
            log.append(pending)
            pending = []
            if on_progress:
                on_progress(done, n)
    return SimulationResult(scenario, severity, n, champion.version, correct / n)


def _test_split(config: Config, version: ModelVersion):
    """The version's test split, as recorded in its metadata (same data, same size)."""
    meta = version.metadata
    dataset = load_dataset(meta["dataset"]["name"], InputSpec.from_dict(meta["input_spec"]),
                           fashion_mnist_dir=config.fashion_mnist_dir,
                           seed=meta["hyperparameters"]["seed"])
    return dataset.test


def load_reference(config: Config, version: ModelVersion) -> ReferenceProfile:
    path = open_registry(config).version_dir(version.version) / REFERENCE_FILE
    if not path.is_file():
        raise RegistryError(
            f"version {version.version} has no reference profile (it was registered before "
            "monitoring existed). To fix this, run "
            f"'python -m core profile --version {version.version}'.")
    return ReferenceProfile.load(path)


def drift_for_version(config: Config, *, version: int | None = None, window: int | None = 500,
                      since: str | None = None, until: str | None = None,
                      thresholds: Thresholds = Thresholds()) -> DriftReport:
    """The drift report of a version (default: the champion) over a window of its traffic."""
    if window is not None and window < MIN_WINDOW:
        raise InvalidInput(f"--window must be at least {MIN_WINDOW}, got {window}. "
                           "To fix this, pass e.g. --window 500.")
    model_version = open_registry(config).resolve(version)
    reference = load_reference(config, model_version)
    logged = open_prediction_log(config).window(config.model_name, model_version.version,
                                                last=window, since=since, until=until)
    return drift_report(reference, logged, model_version.version, thresholds=thresholds)


def create_reference_profile(config: Config, version: int) -> bool:
    """Computes a missing reference profile for an older version; False if it had one."""
    from core.artifacts import load_keras_model

    registry = open_registry(config)
    model_version = registry.get_version(version)
    folder = registry.version_dir(model_version.version)
    if (folder / REFERENCE_FILE).is_file():
        return False
    meta = model_version.metadata
    dataset = load_dataset(meta["dataset"]["name"], InputSpec.from_dict(meta["input_spec"]),
                           fashion_mnist_dir=config.fashion_mnist_dir,
                           seed=meta["hyperparameters"]["seed"])
    validation = dataset.validation.take(meta["dataset"]["sizes"]["validation"])
    probabilities, embeddings = model_outputs(
        load_keras_model(folder), preprocess_batch(validation.images, dataset.input_spec))
    reference = build_reference_profile(probabilities, embeddings, validation.images,
                                        validation.labels, meta["hyperparameters"]["seed"])
    temporary = folder / (REFERENCE_FILE + ".tmp")
    reference.save(temporary)
    os.replace(temporary, folder / REFERENCE_FILE)  # appears whole or not at all
    return True
