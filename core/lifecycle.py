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
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from core.config import PROJECT_ROOT, Config
from core.data import Dataset, Split, limit_dataset, load_dataset, natural_input_spec
from core.drift import Thresholds
from core.audit import Actor, AuditEntry
from core.errors import CoreError, InvalidInput, RegistryError
from core.evaluation import classification_metrics
from core.explain import fit_for_display, overlay
from core.comparison import PIXEL_SCENARIOS, build_holdouts, compare
from core.gate import GatePolicy, recommend
from core.governance import authorize, decide, user_store
from core.images import (DecodedImage, InputSpec, decode_image, encode_png, preprocess,
                         preprocess_batch, resize_to_spec)
from core.monitoring import (MIN_WINDOW, REFERENCE_FILE, DriftReport, ReferenceProfile,
                             build_reference_profile, drift_report)
from core.prediction_log import (PredictionLog, PredictionRecord, SQLitePredictionLog,
                                 check_source)
from core.registry import ModelVersion, Registry
from core.scenarios import SCENARIOS, check_severity, get_scenario, sample_indices
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
    # Training the first model is part of setting up; once users exist, it is an
    # operator's action like any retraining.
    acting = (authorize(config, actor, "retrain", now, target="version 1")
              if user_store(config).has_users() else Actor(actor, "setup"))
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
        "created_by": acting.name,
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

    version = registry.register_version(write_artifacts, metadata, actor=acting, now=now)
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
    image: np.ndarray  # uint8 [H, W, 3]: the upload as decoded, sized like the overlay
    overlay: np.ndarray  # uint8 [H, W, 3]


def open_prediction_log(config: Config) -> PredictionLog:
    return SQLitePredictionLog(config.database)


def predict_image(config: Config, cache: ModelCache, data: bytes, *, actor: str, source: str,
                  now: datetime, version: int | None = None
                  ) -> tuple[Prediction, DecodedImage]:
    """Predicts one uploaded file with ``version`` (default: the champion) and logs it."""
    started = time.perf_counter()
    check_source(source)
    authorize(config, actor, "predict", now)
    registry = open_registry(config)
    model_version = registry.resolve(version)
    # Validate the upload before loading any model: a bad file costs nothing.
    decoded = decode_image(data, max_bytes=config.max_upload_bytes,
                           max_pixels=config.max_image_pixels)
    prediction = cache.predictor(registry, model_version).predict_decoded(decoded, started)
    (log_id,) = open_prediction_log(config).append([
        _record(registry.model, prediction, source, now, decoded.original_size)])
    return replace(prediction, log_id=log_id), decoded


def record_feedback(config: Config, prediction: Prediction, true_class: str, *, actor: str,
                    now: datetime) -> None:
    """Records the true class a user gave for a logged prediction.

    The image then counts in the realized accuracy and joins the feedback pool
    that the next retraining learns from.
    """
    authorize(config, actor, "feedback", now)
    class_names = open_registry(config).get_version(prediction.version).metadata["class_names"]
    if true_class not in class_names:
        raise InvalidInput(f"unknown class {true_class!r}. To fix this, choose one of: "
                           f"{', '.join(class_names)}.")
    if prediction.log_id is None:
        raise InvalidInput("this prediction was not logged, so it cannot take feedback. "
                           "To fix this, predict the image again.")
    open_prediction_log(config).set_true_label(config.model_name, prediction.log_id,
                                               class_names.index(true_class))


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
        height=size[1], embedding=prediction.embedding, pixels=encode_png(prediction.pixels),
        true_label=true_label)


def explain_image(config: Config, cache: ModelCache, data: bytes, *, actor: str,
                  source: str, now: datetime, version: int | None = None,
                  class_name: str | None = None) -> Explanation:
    """Predicts (and logs) one uploaded file and explains a class (default: the predicted)."""
    prediction, decoded = predict_image(config, cache, data, actor=actor, source=source,
                                        now=now, version=version)
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
                       fit_for_display(decoded.pixels), overlay(decoded.pixels, heatmap))


@dataclass(frozen=True)
class SideBySide:
    """One image explained by several versions (the Governance page's heatmaps)."""

    true_class: str
    image: np.ndarray  # uint8 [H, W, 3], sized like the overlays
    predicted: dict[int, str]  # version -> predicted class
    overlays: dict[int, np.ndarray]  # version -> uint8 [H, W, 3] Grad-CAM overlay


def explain_side_by_side(config: Config, cache: ModelCache, versions: list[int], *, n: int = 4,
                         scenario: str | None = None, seed: int = 0) -> list[SideBySide]:
    """Grad-CAM of each version on the same ``n`` comparison-holdout images.

    The images come from the holdout comparisons use (never traffic), drifted by
    ``scenario`` at its default severity if given, so heatmaps show what each version
    looks at on the data the decision is about.
    """
    registry = open_registry(config)
    chosen = [registry.get_version(v) for v in versions]
    holdout = comparison_holdout(version_test_split(config, chosen[0]))
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(holdout), min(n, len(holdout)), replace=False)
    images = holdout.images[picks]
    if scenario is not None:
        transform = get_scenario(scenario)
        images = np.stack([transform.transform(image, transform.default_severity, rng)
                           for image in images])
    class_names = chosen[0].metadata["class_names"]
    results = [SideBySide(class_names[holdout.labels[i]], fit_for_display(image), {}, {})
               for i, image in zip(picks, images)]
    for version in chosen:
        gradcam = cache.gradcam(registry, version)
        spec = InputSpec.from_dict(version.metadata["input_spec"])
        for result, image in zip(results, images):
            heatmap, predicted = gradcam.heatmap(preprocess(image, spec))
            result.predicted[version.version] = class_names[predicted]
            result.overlays[version.version] = overlay(image, heatmap)
    return results


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


def simulate(config: Config, cache: ModelCache, *, actor: str, scenario: str, n: int,
             severity: float | None = None, seed: int = 0, clock: Callable[[], datetime],
             on_progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Streams ``n`` transformed test images through the champion as logged traffic.

    Each image is transformed (before the shared preprocessing, as a camera
    would), predicted one at a time through the serving path, and logged with
    its true label and source ``simulation:<scenario>``.
    """
    authorize(config, actor, "simulate", clock())
    chosen = get_scenario(scenario)
    severity = check_severity(chosen, severity)
    if not 1 <= n <= MAX_SIMULATION:
        raise InvalidInput(f"--n must be between 1 and {MAX_SIMULATION:,}, got {n}. "
                           "To fix this, pass e.g. --n 500.")
    registry = open_registry(config)
    champion = registry.get_champion()
    test = traffic_pool(version_test_split(config, champion))
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


def traffic_pool(test: Split) -> Split:
    """The first half of the test split: the only images simulations stream as traffic.

    The second half (``comparison_holdout``) is never sent, so a model retrained on
    logged traffic is compared on images it has not seen.
    """
    return Split(test.images[:len(test) // 2], test.labels[:len(test) // 2])


def comparison_holdout(test: Split) -> Split:
    return Split(test.images[len(test) // 2:], test.labels[len(test) // 2:])


def load_version_dataset(config: Config, version: ModelVersion) -> Dataset:
    """The dataset a version was trained on: its spec, input size and split seed, reloaded
    (without any size limits; callers that need the recorded sizes apply them)."""
    meta = version.metadata
    return load_dataset(meta["dataset"]["name"], InputSpec.from_dict(meta["input_spec"]),
                        fashion_mnist_dir=config.fashion_mnist_dir,
                        seed=meta["hyperparameters"]["seed"])


def version_test_split(config: Config, version: ModelVersion) -> Split:
    """The version's full test split (traffic pool and comparison holdout come from it)."""
    return load_version_dataset(config, version).test


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


def create_reference_profile(config: Config, version: int, *, actor: str,
                             now: datetime) -> bool:
    """Computes a missing reference profile for an older version; False if it had one."""
    from core.artifacts import load_keras_model

    authorize(config, actor, "profile", now, target=f"version {version}", version=version)
    registry = open_registry(config)
    model_version = registry.get_version(version)
    folder = registry.version_dir(model_version.version)
    if (folder / REFERENCE_FILE).is_file():
        return False
    meta = model_version.metadata
    dataset = load_version_dataset(config, model_version)
    validation = dataset.validation.take(meta["dataset"]["sizes"]["validation"])
    probabilities, embeddings = model_outputs(
        load_keras_model(folder), preprocess_batch(validation.images, dataset.input_spec))
    reference = build_reference_profile(probabilities, embeddings, validation.images,
                                        validation.labels, meta["hyperparameters"]["seed"])
    temporary = folder / (REFERENCE_FILE + ".tmp")
    reference.save(temporary)
    os.replace(temporary, folder / REFERENCE_FILE)  # appears whole or not at all
    return True


# --- retraining and comparison -----------------------------------------------------------

FEEDBACK_SOURCES = ("upload", "camera", "cli")
FEEDBACK_HOLDOUT_EVERY = 5  # every 5th feedback image is held out for comparison...
FEEDBACK_HOLDOUT_MINIMUM = 20  # ...once there are enough to say something


def observed_scenarios(config: Config, version: int) -> list[str]:
    """Simulation scenarios seen in a version's logged traffic."""
    return [source.split(":", 1)[1]
            for source in open_prediction_log(config).sources(config.model_name, version)
            if source.startswith("simulation:") and source != "simulation:none"]


def _decode_logged(pngs: list[bytes], spec: InputSpec) -> np.ndarray:
    if not pngs:
        return np.zeros((0, spec.height, spec.width, spec.channels), np.uint8)
    return np.stack([resize_to_spec(decode_image(png, max_bytes=1 << 24,
                                                 max_pixels=1 << 24).pixels, spec)
                     for png in pngs])


def _feedback_split(config: Config, spec: InputSpec) -> tuple[Split, Split]:
    """User-labelled uploads: (training part, comparison holdout)."""
    pngs, labels, _ = open_prediction_log(config).labelled_images(config.model_name,
                                                                 FEEDBACK_SOURCES)
    images = _decode_logged(pngs, spec)
    held = np.zeros(len(labels), bool)
    if len(labels) >= FEEDBACK_HOLDOUT_MINIMUM:
        held[::FEEDBACK_HOLDOUT_EVERY] = True
    return Split(images[~held], labels[~held]), Split(images[held], labels[held])


def retrain(config: Config, cache: ModelCache, *, actor: str, now: datetime,
            include: list[str] | None = None, use_feedback: bool = True,
            params: "RetrainParams | None" = None,
            on_progress: ProgressCallback | None = None,
            job: int | None = None) -> tuple[ModelVersion, dict]:
    """Fine-tunes the champion on original + drifted + logged data; registers a candidate.

    Args:
        include: drift scenarios whose logged samples (and matching augmentation) to
            use; None uses every scenario seen in the champion's traffic.
        use_feedback: also learn from user-labelled uploads.
        job: the job running this, recorded in the recipe (a killed worker's job
            record is linked to its candidate through it).

    Returns:
        (the candidate version, its comparison with the champion incl. the gate's advice).
    """
    from core.artifacts import load_keras_model, save_artifacts
    from core.retraining import RetrainParams, fine_tune

    acting = authorize(config, actor, "retrain", now)
    params = params or RetrainParams()
    _check_epochs(params.epochs)
    registry = open_registry(config)
    champion = registry.get_champion()
    include = observed_scenarios(config, champion.version) if include is None else include
    data = retraining_data(config, champion, include, use_feedback, params)
    dataset, spec, meta = data.dataset, data.dataset.input_spec, champion.metadata
    base = load_keras_model(registry.version_dir(champion.version))
    result = fine_tune(base, data.images, data.labels, dataset.validation.images,
                       dataset.validation.labels, spec, params, on_progress)
    metrics, reference = evaluate_model(result.model, dataset, params.seed)
    metadata = {
        "created_by": acting.name,
        "parent": champion.version,
        "dataset": dataset.describe() | {"retraining_data": data.composition},
        "class_names": meta["class_names"],
        "input_spec": meta["input_spec"],
        "architecture": meta["architecture"],
        "hyperparameters": meta["hyperparameters"] | {"epochs": params.epochs,
                                                       "learning_rate": params.learning_rate,
                                                       "batch_size": params.batch_size},
        "epochs": params.epochs,
        "training_seconds": round(result.seconds, 2),
        "history": result.history,
        "metrics": metrics,
        "environment": environment_info(),
        "recipe": {"kind": "reinitialized (the seed notebook's clone_model)"
                   if params.reinitialize else "fine-tune from the champion's weights",
                   "parent": champion.version, "params": params.as_dict(),
                   "include": list(include), "use_feedback": use_feedback, "job": job},
    }

    def write_artifacts(folder: Path) -> None:
        save_artifacts(result.model, folder)
        reference.save(folder / REFERENCE_FILE)

    candidate = registry.register_version(write_artifacts, metadata, actor=acting,
                                          now=now, parent=champion.version)
    comparison = compare_versions(config, cache, champion.version, candidate.version,
                                  actor=actor, scenarios=list(include), now=now,
                                  feedback=data.feedback_holdout)
    return candidate, comparison


@dataclass(frozen=True)
class RetrainingData:
    dataset: Dataset  # the champion's dataset (validation and test at its sizes)
    images: np.ndarray  # uint8 [N, h, w, c]: what the candidate learns from
    labels: np.ndarray
    composition: dict  # counts per part, recorded in the candidate's metadata
    feedback_holdout: Split


def retraining_data(config: Config, champion: ModelVersion, include: list[str],
                    use_feedback: bool, params: "RetrainParams") -> RetrainingData:
    """Original images + drift-augmented copies + logged drift samples + corrections."""
    for name in include:
        get_scenario(name)
    dataset = limit_dataset(load_version_dataset(config, champion), None,
                            champion.metadata["dataset"]["sizes"]["test"])
    spec = dataset.input_spec
    rng = np.random.default_rng(params.seed)
    train = dataset.train
    chosen = rng.choice(len(train), min(params.original_images, len(train)), replace=False)
    parts = [(train.images[chosen], train.labels[chosen])]
    composition = {"original": int(len(chosen)), "augmented": {}, "logged": {}}
    for name in include:
        if name not in PIXEL_SCENARIOS:
            continue
        scenario = SCENARIOS[name]
        picks = rng.choice(len(train), params.augmented_per_scenario)
        # Severities around the observed default, so the model sees a range, not one value.
        augmented = np.stack([
            scenario.transform(train.images[i], float(np.clip(
                scenario.default_severity * rng.uniform(0.5, 1.5), scenario.min_severity,
                scenario.max_severity)), rng) for i in picks])
        parts.append((augmented, train.labels[picks]))
        composition["augmented"][name] = int(len(picks))
    pngs, labels, sources = open_prediction_log(config).labelled_images(
        config.model_name, tuple(f"simulation:{name}" for name in include))
    logged = _decode_logged(pngs, spec)
    for source in sorted(set(sources)):
        composition["logged"][source] = sources.count(source)
    feedback_train, feedback_holdout = (_feedback_split(config, spec) if use_feedback else
                                        (Split(logged[:0], labels[:0]),) * 2)
    composition["feedback"] = {"train": len(feedback_train), "holdout": len(feedback_holdout)}
    for images, image_labels in ((logged, labels),
                                 (feedback_train.images, feedback_train.labels)):
        if len(image_labels):
            parts.append((np.repeat(images, params.logged_repeats, axis=0),
                          np.repeat(image_labels, params.logged_repeats)))
    return RetrainingData(dataset, np.concatenate([p[0] for p in parts]),
                          np.concatenate([p[1] for p in parts]), composition, feedback_holdout)


def compare_versions(config: Config, cache: ModelCache, baseline: int, candidate: int, *,
                     actor: str, now: datetime, scenarios: list[str] | None = None,
                     feedback: Split | None = None, policy: GatePolicy = GatePolicy()) -> dict:
    """Compares two versions on the same holdouts, adds the gate's advice, stores it.

    Holdouts: the clean comparison half of the test split, a drifted copy of it per
    scenario (default: those seen in the baseline's traffic), and feedback if given.
    """
    authorize(config, actor, "compare", now, target=f"version {candidate}", version=candidate)
    registry = open_registry(config)
    versions = {v: registry.get_version(v) for v in (baseline, candidate)}
    if versions[baseline].metadata["class_names"] != versions[candidate].metadata["class_names"]:
        raise InvalidInput(f"versions {baseline} and {candidate} predict different classes. "
                           "To fix this, compare versions trained on the same dataset.")
    scenarios = observed_scenarios(config, baseline) if scenarios is None else scenarios
    for name in scenarios:
        get_scenario(name)
    holdouts = build_holdouts(comparison_holdout(version_test_split(config, versions[baseline])),
                              scenarios, seed=0, feedback=feedback)
    probabilities = {}
    for number, version in versions.items():
        predictor = cache.predictor(registry, version)
        probabilities[number] = {
            h.name: np.concatenate([
                predictor.predict_batch(preprocess_batch(h.images[i:i + 256],
                                                         predictor.input_spec))[0]
                for i in range(0, len(h.images), 256)]) for h in holdouts}
    result = compare(baseline, candidate, holdouts, probabilities,
                     versions[baseline].metadata["class_names"])
    result |= recommend(result, policy) | {"at": now.isoformat(timespec="seconds")}
    registry.catalog.save_comparison(registry.model, baseline, candidate,
                                     now.isoformat(timespec="seconds"), result)
    return result


def find_comparison(config: Config, baseline: int, candidate: int) -> dict | None:
    registry = open_registry(config)
    return registry.catalog.find_comparison(registry.model, baseline, candidate)


# --- jobs ----------------------------------------------------------------------------------

RETRAIN_JOB = "retrain"
RETRAIN_JOB_PARAMS = ("include", "use_feedback", "epochs", "learning_rate", "original_images",
                      "augmented_per_scenario")


def submit_retrain(config: Config, *, actor: str, now: datetime, **params) -> "Job":
    """Queues a retraining job (see ``retrain`` for the parameters) and starts a worker."""
    from core.jobs import LocalProcessRunner

    unknown = set(params) - set(RETRAIN_JOB_PARAMS)
    if unknown:
        raise InvalidInput(f"unknown retraining parameter(s) {sorted(unknown)}. To fix this, "
                           f"use: {', '.join(RETRAIN_JOB_PARAMS)}.")
    for name in params.get("include") or []:
        get_scenario(name)
    if "epochs" in params:
        _check_epochs(params["epochs"])
    if not 0 < params.get("learning_rate", 1e-3) <= 1:
        raise InvalidInput(f"learning rate must be in (0, 1], got {params['learning_rate']}. "
                           "To fix this, pass e.g. --learning-rate 0.0003.")
    acting = authorize(config, actor, "retrain", now, target="retraining job")
    open_registry(config).get_champion()  # nothing to fine-tune without a champion
    return LocalProcessRunner(config).submit(RETRAIN_JOB, params, actor=acting, now=now)


def cancel_job(config: Config, job_id: int, *, actor: str, now: datetime) -> "Job":
    """Cancels a queued job, or stops a running one at its next training step."""
    from core.jobs import LocalProcessRunner

    acting = authorize(config, actor, "cancel", now, target=f"job {job_id}")
    return LocalProcessRunner(config).cancel(job_id, actor=acting, now=now)


# --- decisions -----------------------------------------------------------------------------

def decide_version(config: Config, action: str, version: int, *, actor: str, reason: str,
                   now: datetime, override_gate: bool = False,
                   expected_champion: int | None = None) -> AuditEntry:
    """Promote, reject or roll back (see ``governance.decide``), with the drift status of
    the champion at this moment kept as evidence in the audit entry."""
    return decide(config, action, version, actor=actor, reason=reason, now=now,
                  override_gate=override_gate, expected_champion=expected_champion,
                  drift=drift_snapshot(config))


def drift_snapshot(config: Config) -> dict:
    """The champion's drift status now, small enough to keep in an audit entry."""
    try:
        report = drift_for_version(config)
    except CoreError as error:
        return {"available": False, "why": str(error)}
    return {"available": True, "version": report.version, "n": report.n,
            "alert": report.alert, "reasons": report.reasons,
            "estimated_accuracy": float(report.estimated_accuracy),
            "realized_accuracy": (None if report.realized_accuracy is None
                                  else float(report.realized_accuracy)),
            "window": [report.window_start, report.window_end]}


def run_worker(config: Config, clock: Callable[[], datetime]) -> int:
    """Runs queued jobs one after another until none is left; returns how many ran."""
    from core.jobs import JobCancelled, JobStore, progress_tracker

    store = JobStore(config.database, config.model_name)
    cache = ModelCache()
    finished, ran = None, 0
    while (job := store.finish_and_claim_next(os.getpid(), clock(), finished)) is not None:
        # Keras is imported after the claim: a worker started when nothing is queued
        # (see LocalProcessRunner's recovery) then exits in a second, not five.
        from core.retraining import RetrainParams

        ran += 1
        params = dict(job.params)
        recipe = {k: params.pop(k) for k in ("epochs", "learning_rate", "original_images",
                                             "augmented_per_scenario") if k in params}
        try:
            if job.cancel_requested:
                raise JobCancelled()
            version, _ = retrain(config, cache, actor=job.submitted_by, now=clock(),
                                 include=params.get("include"),
                                 use_feedback=params.get("use_feedback", True),
                                 params=RetrainParams(**recipe),
                                 on_progress=progress_tracker(store, job.id, clock),
                                 job=job.id)
            finished = (job.id, "succeeded", {"version": version.version})
        except JobCancelled:
            finished = (job.id, "cancelled", {})
        except CoreError as error:
            finished = (job.id, "failed", {"error": str(error)})
        except Exception as error:  # a worker must record every failure, not die silently
            finished = (job.id, "failed", {"error": f"{type(error).__name__}: {error}"})
    return ran
