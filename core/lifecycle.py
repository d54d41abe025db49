"""The one place that wires data, models, training, registry, serving and explain.

The CLI and the dashboard call these functions; they pass in the time, the
acting user and progress callbacks, so everything here is testable headless.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
import importlib
from pathlib import Path

import numpy as np

from core.config import PROJECT_ROOT, Config
from core.data import Dataset, limit_dataset, load_dataset, natural_input_spec
from core.errors import InvalidInput
from core.evaluation import classification_metrics
from core.explain import enlarge, overlay
from core.images import DecodedImage, decode_image, preprocess, preprocess_batch
from core.registry import ModelVersion, Registry
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
                            epochs=_check_epochs(TrainingParams.epochs if epochs is None else epochs))
    spec = dataset_spec or config.dataset
    input_spec = input_spec_for(architecture, natural_input_spec(spec))
    dataset = limit_dataset(load_dataset(spec, input_spec, fashion_mnist_dir=config.fashion_mnist_dir,
                                         seed=config.seed), train_limit, eval_limit)
    result = train_model(dataset, params, on_progress)
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
        "metrics": evaluate_model(result.model, dataset),
        "environment": environment_info(),
    }
    version = registry.register_version(lambda folder: save_artifacts(result.model, folder),
                                        metadata, created_by=actor, now=now)
    return BootstrapResult(version, created=True)


def _check_epochs(epochs: int) -> int:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise InvalidInput(f"epochs must be between 1 and {MAX_EPOCHS}, got {epochs}. "
                           "To fix this, pass e.g. --epochs 6.")
    return epochs


def evaluate_model(model, dataset: Dataset) -> dict:
    """Metrics on the validation and test splits."""
    metrics = {}
    for name, split in (("validation", dataset.validation), ("test", dataset.test)):
        probabilities = predict_probabilities(model, preprocess_batch(split.images,
                                                                      dataset.input_spec))
        metrics[name] = classification_metrics(split.labels, probabilities, dataset.class_names)
    return metrics


def predict_probabilities(model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """float32 [N, h, w, c] -> probabilities [N, K], batched to bound memory."""
    outputs = [np.asarray(model(images[i:i + batch_size], training=False))
               for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


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


def predict_image(config: Config, cache: ModelCache, data: bytes,
                  version: int | None = None) -> tuple[Prediction, DecodedImage]:
    """Predicts one uploaded file with ``version`` (default: the champion)."""
    started = time.perf_counter()
    registry = open_registry(config)
    model_version = registry.resolve(version)
    # Validate the upload before loading any model: a bad file costs nothing.
    decoded = decode_image(data, max_bytes=config.max_upload_bytes,
                           max_pixels=config.max_image_pixels)
    predictor = cache.predictor(registry, model_version)
    return predictor.predict_decoded(decoded, started), decoded


def explain_image(config: Config, cache: ModelCache, data: bytes, version: int | None = None,
                  class_name: str | None = None) -> Explanation:
    """Predicts one uploaded file and explains a class (default: the predicted one)."""
    prediction, decoded = predict_image(config, cache, data, version)
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
