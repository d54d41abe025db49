"""Use cases that watch traffic: simulate it, report drift, keep reference profiles."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.app.backends import Backends
from core.app.routing import Instance, Origin, log_records, predict_routed
from core.errors import CoreError, InvalidInput, RegistryError
from core.governance.traffic import active_candidate, assign
from core.ml.data import load_version_dataset, traffic_pool
from core.ml.images import DecodedImage
from core.ml.ood import OOD_FILE
from core.ml.scenarios import check_severity, get_scenario, sample_indices
from core.monitoring.drift import Thresholds
from core.monitoring.log_records import PredictionRecord, Window
from core.monitoring.report import (
    MIN_WINDOW,
    REFERENCE_FILE,
    DriftReport,
    DriftSummary,
    ReferenceProfile,
    build_reference_profile,
    drift_report,
    pca_2d,
)
from core.registry.records import ModelVersion

SIMULATION_LOG_BATCH = 100
MAX_SIMULATION = 100_000


@dataclass(frozen=True)
class SimulationResult:
    scenario: str
    severity: float
    n: int
    version: int
    accuracy: float  # realized, against the test labels


def simulate(backends: Backends, *, actor: str, scenario: str, n: int,
             severity: float | None = None, seed: int = 0, clock: Callable[[], datetime],
             on_progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Streams ``n`` transformed test images through the champion as logged traffic.

    Each image is transformed (before the shared preprocessing, as a camera
    would), predicted one at a time through the serving path, and logged with
    its true label and source ``simulation:<scenario>``. Like API traffic, it
    follows the traffic policy: a candidate in shadow also predicts every image
    (logged as its shadow), one in canary answers its share (``accuracy`` is of
    the answers).
    """
    backends.access.authorize(actor, "simulate", clock())
    chosen = get_scenario(scenario)
    severity = check_severity(chosen, severity)
    if not 1 <= n <= MAX_SIMULATION:
        raise InvalidInput(f"--n must be between 1 and {MAX_SIMULATION:,}, got {n}. "
                           "To fix this, pass e.g. --n 500.")
    champion = backends.registry.get_champion()
    test = traffic_pool(load_version_dataset(champion.metadata,
                                             backends.config.fashion_mnist_dir).test)
    statuses = {v.version: v.status for v in backends.registry.list_versions()}
    policy = backends.traffic.get()
    candidate = active_candidate(policy, champion.version, statuses)
    predictors = {version: backends.models.predictor(backends.registry.get_version(version))
                  for version in [champion.version] + ([] if candidate is None else [candidate])}
    rng = np.random.default_rng(seed)
    indices = sample_indices(chosen, severity, test.labels, n, rng)
    source, routed_traffic = f"simulation:{scenario}", len(predictors) > 1
    pending: list[PredictionRecord] = []
    correct = 0
    for done, index in enumerate(indices, start=1):
        started = time.perf_counter()
        pixels = chosen.transform(test.images[index], severity, rng)
        instances = [Instance(image=DecodedImage(pixels, (pixels.shape[1], pixels.shape[0]),
                                                 "simulation"))]
        request = f"sim-{uuid.uuid4().hex}" if routed_traffic else None
        at, label = clock(), int(test.labels[index])
        routed = predict_routed(lambda version: predictors[version], instances,
                                assign(policy, champion.version, statuses, request or ""),
                                started)
        correct += routed.answers[0].class_index == label
        pending += log_records(routed, instances, backends.model, Origin(
            source, at, request_id=request, server_request_id=request,
            true_labels=[label]))
        if len(pending) >= SIMULATION_LOG_BATCH or done == n:
            backends.prediction_log.append(pending)
            pending = []
            if on_progress:
                on_progress(done, n)
    return SimulationResult(scenario, severity, n, champion.version, correct / n)


def observed_scenarios(backends: Backends, version: int, *, actor: str,
                       now: datetime) -> list[str]:
    """Simulation scenarios seen in a version's logged traffic."""
    backends.access.authorize(actor, "view", now, target="predictions")
    return scenarios_seen(backends, version)


def scenarios_seen(backends: Backends, version: int) -> list[str]:
    """``observed_scenarios`` for use cases that have authorized their actor already."""
    return [source.split(":", 1)[1]
            for source in backends.prediction_log.sources(backends.model, version)
            if source.startswith("simulation:") and source != "simulation:none"]


def load_reference(backends: Backends, version: ModelVersion) -> ReferenceProfile:
    if not backends.artifacts.has_file(version.model, version.version, REFERENCE_FILE):
        raise RegistryError(
            f"version {version.version} has no reference profile (it was registered before "
            "monitoring existed). To fix this, run "
            f"'python -m core profile --version {version.version}'.")
    return ReferenceProfile.load(backends.registry.files(version.version))


def drift_for_version(backends: Backends, *, actor: str, now: datetime,
                      version: int | None = None, window: int | None = 500,
                      since: str | None = None, until: str | None = None,
                      thresholds: Thresholds = Thresholds(),
                      sources: Sequence[str] | None = None) -> DriftReport:
    """The drift report of a version (default: the champion) over a window of its traffic
    (of the given source kinds only, e.g. ``["api"]``; default all)."""
    backends.access.authorize(actor, "view", now, target="drift")
    return report_for_version(backends, version=version, window=window, since=since,
                              until=until, thresholds=thresholds, sources=sources)


def report_for_version(backends: Backends, *, version: int | None, window: int | None,
                       since: str | None = None, until: str | None = None,
                       thresholds: Thresholds = Thresholds(),
                       sources: Sequence[str] | None = None) -> DriftReport:
    """``drift_for_version`` for system use cases with no person acting (the monitor, the
    evidence kept with a decision already authorized)."""
    return window_report(backends, version=version, window=window, since=since, until=until,
                         thresholds=thresholds, sources=sources).report


@dataclass(frozen=True)
class WindowReport:
    """A drift report with what it compared: the version, its reference, the window."""

    version: ModelVersion
    reference: ReferenceProfile
    current: Window
    report: DriftReport


def window_report(backends: Backends, *, version: int | None, window: int | None,
                  since: str | None = None, until: str | None = None,
                  thresholds: Thresholds = Thresholds(),
                  sources: Sequence[str] | None = None) -> WindowReport:
    """``report_for_version``, keeping the reference and the window (the HTML report
    draws them)."""
    if window is not None and window < MIN_WINDOW:
        raise InvalidInput(f"--window must be at least {MIN_WINDOW}, got {window}. "
                           "To fix this, pass e.g. --window 500.")
    model_version = backends.registry.resolve(version)
    reference = load_reference(backends, model_version)
    logged = backends.prediction_log.window(backends.model, model_version.version, last=window,
                                            since=since, until=until, sources=sources)
    return WindowReport(model_version, reference, logged,
                        drift_report(reference, logged, model_version.version,
                                     thresholds=thresholds))


@dataclass(frozen=True)
class DriftView:
    """Everything the Drift page draws for one version."""

    report: DriftReport
    reference: ReferenceProfile
    current: Window
    reference_2d: np.ndarray  # float [n, 2]: PCA of reference embeddings
    current_2d: np.ndarray  # float [m, 2]: the current window's, same axes


def drift_view(backends: Backends, version: int, *, actor: str, now: datetime,
               window: int, sources: Sequence[str] | None = None) -> DriftView:
    """The report of the last ``window`` predictions (of ``sources`` only), with what the
    page draws beside it. Drift over time comes from snapshots (``core.app.snapshots``)."""
    backends.access.authorize(actor, "view", now, target="drift")
    model_version = backends.registry.get_version(version)
    reference = load_reference(backends, model_version)
    current = backends.prediction_log.window(backends.model, version, last=window,
                                             sources=sources)
    report = drift_report(reference, current, version)
    reference_2d, current_2d = pca_2d(reference.embeddings, current.embeddings)
    return DriftView(report, reference, current, reference_2d, current_2d)


def last_prediction_id(backends: Backends, *, actor: str, now: datetime) -> int:
    """The newest logged prediction's id (0: none): changes whenever traffic is logged, and
    costs one index lookup where counting 10 million rows takes a second."""
    backends.access.authorize(actor, "view", now, target="predictions")
    return backends.prediction_log.last_id()


def drift_snapshot(backends: Backends) -> DriftSummary:
    """The champion's drift status now, small enough to keep in an audit entry."""
    try:
        return DriftSummary.of(report_for_version(backends, version=None, window=500))
    except CoreError as error:
        return DriftSummary.unavailable(str(error))


def create_reference_profile(backends: Backends, version: int, *, actor: str,
                             now: datetime) -> list[str]:
    """Computes the parts of a reference profile an older version lacks (the whole
    profile, or its OOD detector); returns the files written (none: it was complete)."""
    from core.ml.evaluation import model_outputs, sample_embeddings
    from core.ml.exports import load_keras_model

    backends.access.authorize(actor, "profile", now, target=f"version {version}",
                              version=version)
    model_version = backends.registry.get_version(version)
    model_version.metadata.require_layers("a profile computed after registration is")
    missing = [name for name in (REFERENCE_FILE, OOD_FILE)
               if not backends.artifacts.has_file(backends.model, version, name)]
    if not missing:
        return []
    meta = model_version.metadata
    dataset = load_version_dataset(meta, backends.config.fashion_mnist_dir)
    validation = dataset.validation.take(meta.dataset.sizes["validation"])
    model = load_keras_model(backends.registry.files(version))
    probabilities, embeddings = model_outputs(model, validation.images, dataset.input_spec)
    # A retrained version's own added images are not in its dataset record: its
    # detector's neighbours come from the original training split.
    reference = build_reference_profile(
        probabilities, embeddings, validation.images, validation.labels, meta.seed,
        train_embeddings=sample_embeddings(model, dataset.train.images, dataset.input_spec,
                                           meta.seed))
    files = reference.files()
    for name in missing:  # a file once published never changes: its hash is recorded
        backends.registry.add_file(version, name, files[name])
    return missing
