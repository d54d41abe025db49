"""Use cases that make versions: the first model, retraining jobs, and the worker's handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.app import tracing
from core.app.access import acting_in_setup
from core.app.backends import Backends
from core.app.monitor import scenarios_seen
from core.app.review import compare_versions
from core.jobs.records import Job
from core.jobs.worker import JobHandler, ProgressCallback, run_worker
from core.ml.data import (
    Dataset,
    Images,
    Split,
    limit_dataset,
    load_dataset,
    load_version_dataset,
    natural_input_spec,
)
from core.ml.images import InputSpec, decode_logged
from core.ml.params import RetrainParams, RetrainRequest, TrainingParams
from core.ml.retraining_data import (
    FEEDBACK_SOURCES,
    RetrainingData,
    mix_retraining_data,
    split_feedback,
)
from core.ml.scenarios import get_scenario
from core.monitoring.report import ReferenceProfile, build_reference_profile
from core.registry.provenance import environment_info
from core.registry.records import Comparison, DatasetRecord, ModelVersion, Recipe, VersionMetadata
from core.text import N_

RETRAIN_JOB = "retrain"


@dataclass(frozen=True)
class BootstrapResult:
    version: ModelVersion
    created: bool  # False when the registry already had a version


def bootstrap(backends: Backends, *, actor: str, now: datetime,
              dataset_spec: str | None = None, architecture: str = "small_cnn",
              epochs: int | None = None, train_limit: int | None = None,
              eval_limit: int | None = None, weights: str | None = "imagenet",
              on_progress: ProgressCallback | None = None) -> BootstrapResult:
    """Trains and registers the first version, unless the registry already has one."""
    # TensorFlow takes seconds to import; only commands that train pay for it.
    from core.ml.exports import save_artifacts
    from core.ml.models import check_architecture, input_spec_for
    from core.ml.tensorboard import write_run
    from core.ml.training import train_model

    registry, config = backends.registry, backends.config
    existing = registry.list_versions()
    if existing:
        return BootstrapResult(registry.find_champion() or existing[-1], created=False)
    # Training the first model is part of setting up; once users exist, it is an
    # operator's action like any retraining.
    acting = acting_in_setup(backends, actor, "retrain", now, target="version 1")
    check_architecture(architecture)
    params = TrainingParams(architecture=architecture, seed=config.seed, weights=weights,
                            epochs=RetrainRequest.check_epochs(
                                TrainingParams.epochs if epochs is None else epochs))
    spec = dataset_spec or config.dataset
    input_spec = input_spec_for(architecture, natural_input_spec(spec))
    dataset = limit_dataset(load_dataset(spec, input_spec,
                                         fashion_mnist_dir=config.fashion_mnist_dir,
                                         seed=config.seed), train_limit, eval_limit)
    result = train_model(dataset, params, on_progress)
    metrics, reference = evaluate_model(result.model, dataset, dataset.train.images,
                                        config.seed)
    metadata = VersionMetadata(
        created_by=acting.name, dataset=DatasetRecord(**dataset.describe()),
        class_names=list(dataset.class_names), input_spec=dataset.input_spec.as_dict(),
        architecture=architecture,
        hyperparameters=params.as_dict() | {"batch_size": result.batch_size},
        epochs=params.epochs,
        training_seconds=round(result.seconds, 2), history=result.history, metrics=metrics,
        environment=environment_info())

    def write_artifacts(folder: Path) -> None:
        save_artifacts(result.model, folder)
        reference.save(folder)
        write_run(folder, result.model, result.history, metrics, metadata.class_names)

    version = registry.register_version(write_artifacts, metadata, actor=acting, now=now)
    return BootstrapResult(version, created=True)


def evaluate_model(model: Any, dataset: Dataset, train_images: Images,
                   seed: int) -> tuple[dict, ReferenceProfile]:
    """Metrics on the validation and test splits, and the validation reference profile
    with its OOD detector (neighbours: a sample of ``train_images``, what it learned from)."""
    from core.ml.evaluation import classification_metrics, model_outputs, sample_embeddings

    metrics, outputs = {}, {}
    for name, split in (("validation", dataset.validation), ("test", dataset.test)):
        outputs[name] = model_outputs(model, split.images, dataset.input_spec)
        metrics[name] = classification_metrics(split.labels, outputs[name][0],
                                               dataset.class_names)
    probabilities, embeddings = outputs["validation"]
    reference = build_reference_profile(
        probabilities, embeddings, dataset.validation.images, dataset.validation.labels, seed,
        train_embeddings=sample_embeddings(model, train_images, dataset.input_spec, seed))
    return metrics, reference


# --- retraining ------------------------------------------------------------------------

def submit_retrain(backends: Backends, request: RetrainRequest, *, actor: str,
                   now: datetime) -> Job:
    """Queues a retraining job (``request`` stored as-is in the job row) and starts a worker."""
    request.validate()
    acting = backends.access.authorize(actor, "retrain", now, target="retraining job")
    # Nothing to fine-tune without a champion, or without its layers.
    backends.registry.get_champion().metadata.require_layers("retraining is")
    return backends.jobs.submit(RETRAIN_JOB, request.as_dict(), actor=acting, now=now)


def start_job(backends: Backends, job_id: int, *, actor: str, now: datetime) -> Job:
    """Starts a job the monitor suggested (operators; audited): it is queued and run."""
    acting = backends.access.authorize(actor, "retrain", now, target=f"job {job_id}")
    return backends.jobs.start_suggested(job_id, actor=acting, now=now)


def cancel_job(backends: Backends, job_id: int, *, actor: str, now: datetime) -> Job:
    """Cancels a queued job, or stops a running one at its next training step."""
    acting = backends.access.authorize(actor, "cancel", now, target=f"job {job_id}")
    return backends.jobs.cancel(job_id, actor=acting, now=now)


def list_jobs(backends: Backends, *, actor: str, now: datetime) -> list[Job]:
    """Every job of the model, newest first (repairing what dead workers left)."""
    backends.access.authorize(actor, "view", now, target="jobs")
    return backends.jobs.list(now)


def get_job(backends: Backends, job_id: int, *, actor: str, now: datetime) -> Job:
    backends.access.authorize(actor, "view", now, target=f"job {job_id}")
    return backends.jobs.status(job_id, now)


def retrain(backends: Backends, request: RetrainRequest, *, actor: str, now: datetime,
            on_progress: ProgressCallback | None = None,
            job: int | None = None) -> tuple[ModelVersion, Comparison]:
    """Fine-tunes the champion on original + drifted + logged data; registers a candidate.

    Args:
        request: what to learn from and how (``include`` None: every scenario seen in
            the champion's traffic).
        job: the job running this, recorded in the recipe (a killed worker's job
            record is linked to its candidate through it).

    Returns:
        (the candidate version, its comparison with the champion incl. the gate's advice).
    """
    from core.ml.exports import load_keras_model, save_artifacts
    from core.ml.retraining import fine_tune
    from core.ml.tensorboard import write_run

    request.validate()
    acting = backends.access.authorize(actor, "retrain", now)
    registry = backends.registry
    champion = registry.get_champion()
    champion.metadata.require_layers("retraining is")
    include = (scenarios_seen(backends, champion.version) if request.include is None
               else list(request.include))
    params = request.params()
    data = retraining_data(backends, champion, include, request.use_feedback, params)
    dataset, meta = data.dataset, champion.metadata
    base = load_keras_model(registry.files(champion.version))
    result = fine_tune(base, data.images, data.labels, dataset.validation.images,
                       dataset.validation.labels, dataset.input_spec, params, on_progress)
    metrics, reference = evaluate_model(result.model, dataset, data.images, params.seed)
    metadata = VersionMetadata(
        created_by=acting.name, parent=champion.version,
        dataset=DatasetRecord(**dataset.describe(), retraining_data=data.composition),
        class_names=meta.class_names, input_spec=meta.input_spec,
        architecture=meta.architecture,
        hyperparameters=meta.hyperparameters | {"epochs": params.epochs,
                                                "learning_rate": params.learning_rate,
                                                "batch_size": result.batch_size,
                                                "frozen": list(result.frozen)},
        epochs=params.epochs, training_seconds=round(result.seconds, 2),
        history=result.history, metrics=metrics, environment=environment_info(),
        recipe=Recipe(kind=_recipe_kind(params.reinitialize, result.frozen),
                      parent=champion.version, params=params.as_dict(), include=list(include),
                      use_feedback=request.use_feedback, job=job))

    def write_artifacts(folder: Path) -> None:
        save_artifacts(result.model, folder)
        reference.save(folder)
        write_run(folder, result.model, result.history, metrics, metadata.class_names)

    candidate = registry.register_version(write_artifacts, metadata, actor=acting,
                                          now=now, parent=champion.version)
    comparison = compare_versions(backends, champion.version, candidate.version,
                                  actor=actor, scenarios=list(include), now=now,
                                  feedback=data.feedback_holdout)
    return candidate, comparison


def _recipe_kind(reinitialize: bool, frozen: tuple[str, ...]) -> str:
    if reinitialize:
        return N_("reinitialized (the seed notebook's clone_model)")
    if frozen:
        return N_("fine-tune the layers after the champion's backbone (frozen)")
    return N_("fine-tune from the champion's weights")


def feedback_split(backends: Backends, spec: InputSpec) -> tuple[Split, Split]:
    """User-labelled uploads: (training part, comparison holdout)."""
    pngs, labels, _ = backends.prediction_log.labelled_images(backends.model, FEEDBACK_SOURCES)
    return split_feedback(decode_logged(pngs, spec), labels)


def retraining_data(backends: Backends, champion: ModelVersion, include: list[str],
                    use_feedback: bool, params: RetrainParams) -> RetrainingData:
    """The champion's dataset, the drift samples logged for ``include`` and the feedback,
    mixed by ``core.ml.retraining_data.mix_retraining_data``."""
    for name in include:
        get_scenario(name)
    dataset = limit_dataset(load_version_dataset(champion.metadata,
                                                 backends.config.fashion_mnist_dir),
                            None, champion.metadata.dataset.sizes["test"])
    spec = dataset.input_spec
    pngs, labels, sources = backends.prediction_log.labelled_images(
        backends.model, tuple(f"simulation:{name}" for name in include))
    logged = Split(decode_logged(pngs, spec), labels)
    feedback = feedback_split(backends, spec) if use_feedback else None
    return mix_retraining_data(dataset, include, logged, sources, feedback, params)


def run_jobs(backends: Backends, clock: Callable[[], datetime]) -> int:
    """Runs queued jobs one after another until none is left; returns how many ran."""
    return run_worker(backends.jobs.store, job_handlers(backends, clock), clock,
                      backends.config.job_runner or None)


def job_handlers(backends: Backends, clock: Callable[[], datetime]) -> dict[str, JobHandler]:
    """The job kinds this application runs: ``{kind: handler}`` for the worker."""

    def run_retrain(job: Job, on_progress: ProgressCallback) -> int:
        with tracing.span(f"job {RETRAIN_JOB}", {
                "vision.job.id": job.id, "vision.job.kind": RETRAIN_JOB,
                "vision.model": backends.model, "vision.job.submitted_by": job.submitted_by}):
            version, _ = retrain(backends, RetrainRequest.from_dict(job.params),
                                 actor=job.submitted_by, now=clock(), on_progress=on_progress,
                                 job=job.id)
            tracing.set_attributes({"vision.version": version.version})
            return version.version

    return {RETRAIN_JOB: run_retrain}
