"""Reference profiles and drift reports: is production traffic still like training data?

A version's reference profile is computed at registration on the validation
split and stored beside the model: ``reference.npz`` (what the model saw) and
``ood.npz`` (its out-of-distribution detector, ``core.ml.ood``; versions
registered before it have none until ``python -m core profile``). A drift report compares
a window of the prediction log against it with every statistic in ``core.monitoring.drift``
and estimates accuracy without labels (CBPE: calibrated confidences).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InvalidInput
from core.ml.image_sets import Images
from core.ml.images import IMAGE_STATISTICS, image_statistics
from core.ml.ood import OOD_FILE, OodDetector, fit_ood_detector
from core.monitoring import drift
from core.monitoring.log_records import NONE_OF_THESE, Window

REFERENCE_FILE = "reference.npz"
EMBEDDING_SAMPLE = 1000  # reference and window embeddings used by the MMD test
CALIBRATION_BINS = 15
MIN_WINDOW = 30
MMD_PERMUTATIONS = 199


@dataclass(frozen=True)
class ReferenceProfile:
    """What the model saw on its validation split.

    Attributes:
        probabilities: float32 [N, K] predicted probabilities.
        labels: int64 [N] true classes.
        statistics: brightness/contrast/sharpness, float32 [N] each.
        embeddings: float32 [<= EMBEDDING_SAMPLE, E], a seeded sample.
        calibration_edges: float64 [B + 1] confidence bin edges (equal mass).
        calibration_accuracy: float64 [B] validation accuracy within each bin.
        ood: the out-of-distribution detector (None: registered before there was one).
    """

    probabilities: np.ndarray
    labels: np.ndarray
    statistics: dict[str, np.ndarray]
    embeddings: np.ndarray
    calibration_edges: np.ndarray
    calibration_accuracy: np.ndarray
    ood: OodDetector | None = None

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.probabilities.argmax(axis=1) == self.labels))

    def estimate_accuracy(self, confidence: np.ndarray) -> float:
        """CBPE: the mean of calibrated confidences is the expected accuracy."""
        return float(np.mean(calibrated(confidence, self.calibration_edges,
                                         self.calibration_accuracy)))

    def files(self) -> dict[str, bytes]:
        """The profile's files by name: ``reference.npz`` and, if it has one, ``ood.npz``."""
        arrays: dict[str, np.ndarray] = {
            "probabilities": self.probabilities, "labels": self.labels,
            "embeddings": self.embeddings.astype(np.float16),
            "calibration_edges": self.calibration_edges,
            "calibration_accuracy": self.calibration_accuracy,
            **{f"statistic_{k}": v for k, v in self.statistics.items()}}
        reference = io.BytesIO()
        # numpy's stub types **kwds like its allow_pickle flag; these are arrays.
        np.savez_compressed(reference, **arrays)  # type: ignore[arg-type]
        files = {REFERENCE_FILE: reference.getvalue()}
        if self.ood is not None:
            detector = io.BytesIO()
            self.ood.save(detector)
            files[OOD_FILE] = detector.getvalue()
        return files

    def save(self, folder: Path) -> None:
        """Writes the profile's files into a version's folder being registered."""
        for name, data in self.files().items():
            (folder / name).write_bytes(data)

    @classmethod
    def load(cls, folder: Path) -> "ReferenceProfile":
        """Reads the profile from a version's folder (``ood.npz`` only if it is there)."""
        detector = (OodDetector.load(folder / OOD_FILE) if (folder / OOD_FILE).is_file()
                    else None)
        with np.load(folder / REFERENCE_FILE, allow_pickle=False) as data:
            return cls(
                probabilities=data["probabilities"], labels=data["labels"],
                statistics={k: data[f"statistic_{k}"] for k in IMAGE_STATISTICS},
                embeddings=data["embeddings"].astype(np.float32),
                calibration_edges=data["calibration_edges"],
                calibration_accuracy=data["calibration_accuracy"], ood=detector)


def build_reference_profile(probabilities: np.ndarray, embeddings: np.ndarray,
                            images: Images, labels: np.ndarray, seed: int,
                            train_embeddings: np.ndarray | None = None) -> ReferenceProfile:
    """Builds a profile from validation outputs.

    Args:
        probabilities: float32 [N, K]; embeddings: float32 [N, E];
        images: uint8 [N, H, W, C] at the model's input size; labels: int [N].
        train_embeddings: float32 [M, E] of training images: the OOD detector's
            neighbours (None: a profile without a detector).
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges, accuracy = fit_calibration(confidence, correct)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(embeddings), size=min(EMBEDDING_SAMPLE, len(embeddings)),
                                replace=False))
    detector = (None if train_embeddings is None
                else fit_ood_detector(train_embeddings, embeddings, seed))
    return ReferenceProfile(probabilities.astype(np.float32), labels.astype(np.int64),
                            image_statistics(images), embeddings[sample].astype(np.float32),
                            edges, accuracy, detector)


def fit_calibration(confidence: np.ndarray, correct: np.ndarray,
                    bins: int = CALIBRATION_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Histogram binning: equal-mass confidence bins and the accuracy inside each. The
    bins always span [0, 1], at least one of them: a model as confident on every
    validation image (a small or easy validation split) gets one bin, not none."""
    inner = np.quantile(confidence, np.linspace(0, 1, bins + 1))[1:-1]
    edges = np.unique(np.concatenate([[0.0], inner[(inner > 0) & (inner < 1)], [1.0]]))
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, len(edges) - 2)
    accuracy = np.array([correct[index == b].mean() if np.any(index == b) else
                         (edges[b] + edges[b + 1]) / 2 for b in range(len(edges) - 1)])
    return edges, accuracy


def calibrated(confidence: np.ndarray, edges: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, len(edges) - 2)
    return accuracy[index]


# --- drift report ------------------------------------------------------------------------

@dataclass(frozen=True)
class StatisticResult:
    name: str
    value: float
    threshold: float  # the alert level
    warn: float
    status: str  # ok / warn / alert
    kind: str  # distance / p_value
    meaning: str

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "threshold": self.threshold,
                "warn": self.warn, "status": self.status, "kind": self.kind,
                "meaning": self.meaning}

    def reason(self, translate: Callable[[str], str] = lambda text: text) -> str:
        """Why this statistic alerts; ``translate`` puts its meaning in the reader's
        language (the rest is the statistic's name and numbers)."""
        comparison = ">=" if self.kind == "distance" else "<"
        return (f"{translate(self.meaning)}: {self.name} = {self.value:.4g} {comparison} "
                f"{self.threshold:g}")


@dataclass(frozen=True)
class DriftReport:
    version: int
    n: int
    window_start: str
    window_end: str
    statistics: list[StatisticResult]
    reference_accuracy: float
    estimated_accuracy: float
    realized_accuracy: float | None  # over the window's rows that have true labels
    labelled: int
    last_id: int  # log id of the window's newest prediction: orders reports in time
    details: dict = field(default_factory=dict)

    @property
    def alert(self) -> bool:
        return any(s.status == "alert" for s in self.statistics)

    @property
    def reasons(self) -> list[str]:
        return self.alert_reasons()

    def alert_reasons(self, translate: Callable[[str], str] = lambda text: text) -> list[str]:
        """Why the report alerts, one reason per alerting statistic (see ``reason``)."""
        return [s.reason(translate) for s in self.statistics if s.status == "alert"]

    def as_dict(self) -> dict:
        """The JSON shape of ``python -m core drift --json``."""
        return {
            "version": self.version, "alert": self.alert, "n": self.n,
            "window": {"start": self.window_start, "end": self.window_end,
                       "last_id": self.last_id},
            "statistics": [s.as_dict() for s in self.statistics],
            "reference_accuracy": self.reference_accuracy,
            "estimated_accuracy": self.estimated_accuracy,
            "realized_accuracy": self.realized_accuracy,
            "labelled": self.labelled,
            "reasons": self.reasons,
            "details": self.details,
        }


@dataclass(frozen=True)
class DriftSummary:
    """The champion's drift status in a few fields, small enough to keep in a decision's
    audit entry: what the reviewer could see when they decided (or why nothing)."""

    available: bool
    why: str | None = None  # when not available
    version: int | None = None
    n: int = 0
    alert: bool = False
    reasons: list[str] = field(default_factory=list)
    estimated_accuracy: float | None = None
    realized_accuracy: float | None = None
    window: tuple[str, str] | None = None

    @classmethod
    def of(cls, report: DriftReport) -> "DriftSummary":
        return cls(True, None, report.version, report.n, report.alert, report.reasons,
                   float(report.estimated_accuracy),
                   None if report.realized_accuracy is None else float(report.realized_accuracy),
                   (report.window_start, report.window_end))

    @classmethod
    def unavailable(cls, why: str) -> "DriftSummary":
        return cls(False, why)

    def as_dict(self) -> dict:
        if not self.available:
            return {"available": False, "why": self.why}
        return {"available": True, "version": self.version, "n": self.n, "alert": self.alert,
                "reasons": list(self.reasons), "estimated_accuracy": self.estimated_accuracy,
                "realized_accuracy": self.realized_accuracy,
                "window": list(self.window) if self.window else None}

    @classmethod
    def from_dict(cls, values: dict) -> "DriftSummary":
        window = values.get("window")
        return cls(bool(values.get("available")), values.get("why"), values.get("version"),
                   values.get("n", 0), bool(values.get("alert")), list(values.get("reasons") or []),
                   values.get("estimated_accuracy"), values.get("realized_accuracy"),
                   (window[0], window[1]) if window else None)


def drift_report(reference: ReferenceProfile, window: Window, version: int, *,
                 thresholds: drift.Thresholds = drift.Thresholds(), seed: int = 0,
                 permutations: int = MMD_PERMUTATIONS) -> DriftReport:
    """Compares a window of logged predictions with the version's reference profile.

    Raises:
        InvalidInput: the window has fewer than ``MIN_WINDOW`` predictions.
    """
    n = len(window)
    if n < MIN_WINDOW:
        raise InvalidInput(
            f"the window holds {n} prediction(s) of version {version}; drift statistics need "
            f"at least {MIN_WINDOW}. To fix this, widen the window or log more traffic "
            "(e.g. python -m core simulate --scenario none --n 500).")
    num_classes = reference.probabilities.shape[1]
    reference_mean = reference.probabilities.mean(axis=0)
    current_mean = window.probabilities.mean(axis=0)
    reference_mix = np.bincount(reference.probabilities.argmax(axis=1), minlength=num_classes)
    reference_mix = reference_mix / reference_mix.sum()
    current_counts = np.bincount(window.predicted, minlength=num_classes)
    mmd, mmd_p = _embedding_mmd(reference, window, seed, permutations)
    estimated = reference.estimate_accuracy(window.confidence)
    bonferroni = len(IMAGE_STATISTICS)
    values = {
        "prediction_kl": drift.kl_divergence(current_mean, reference_mean),
        "prediction_psi": drift.population_stability_index(current_counts / n, reference_mix),
        "prediction_chi2": drift.chi_square_p(current_counts, reference_mix),
        "prediction_js": drift.js_distance(current_mean, reference_mean),
        "confidence_ks": drift.ks_p(window.confidence, reference.confidence),
        "confidence_drop": float(reference.confidence.mean() - window.confidence.mean()),
        **{f"input_ks_{name}": min(1.0, bonferroni * drift.ks_p(window.statistics[name],
                                                                 reference.statistics[name]))
           for name in IMAGE_STATISTICS},
        "embedding_mmd": mmd_p,
        "estimated_accuracy_drop": reference.accuracy - estimated,
    }
    details: dict = {}
    scored = window.ood_scores[~np.isnan(window.ood_scores)]
    if reference.ood is not None and len(scored) >= MIN_WINDOW:
        values["unfamiliar_rate"] = float(np.mean(reference.ood.unfamiliar(scored)))
        details["unfamiliar"] = {"scored": len(scored),
                                 "validation_rate": reference.ood.validation_rate}
    results = [_result(name, float(value), thresholds) for name, value in values.items()]
    # Labels count in the realized accuracy only when they name a class: an image a person
    # said is none of the classes has no right answer, and counts as OOD evidence instead.
    labelled = window.true_labels >= 0
    details["none_of_these"] = int(np.sum(window.true_labels == NONE_OF_THESE))
    realized = (float(np.mean(window.predicted[labelled] == window.true_labels[labelled]))
                if labelled.any() else None)
    return DriftReport(
        version=version, n=n, window_start=window.at[0], window_end=window.at[-1],
        statistics=results, reference_accuracy=reference.accuracy,
        estimated_accuracy=estimated, realized_accuracy=realized,
        labelled=int(labelled.sum()), last_id=int(window.ids[-1]),
        details=details | {"mmd2": mmd, "current_class_counts": current_counts.tolist(),
                 "reference_class_mix": reference_mix.tolist(),
                 "mean_confidence": {"reference": float(reference.confidence.mean()),
                                     "current": float(window.confidence.mean())}},
    )


def _embedding_mmd(reference: ReferenceProfile, window: Window, seed: int,
                   permutations: int) -> tuple[float, float]:
    """MMD² between the window's embeddings (a sample of EMBEDDING_SAMPLE at most) and the
    reference's, and its permutation test's p-value."""
    rng = np.random.default_rng(seed)
    current = window.embeddings
    if len(current) > EMBEDDING_SAMPLE:
        current = current[rng.choice(len(current), EMBEDDING_SAMPLE, replace=False)]
    return drift.mmd_permutation_test(current, reference.embeddings, permutations, rng)


def _result(name: str, value: float, thresholds: drift.Thresholds) -> StatisticResult:
    spec = drift.STATISTICS[name]
    warn, alert = thresholds.levels(name)
    return StatisticResult(name, value, alert, warn, drift.status(name, value, thresholds),
                           spec.kind, spec.meaning)


def pca_2d(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projects both embedding sets onto the reference's first two principal components."""
    mean = reference.mean(axis=0)
    _, _, components = np.linalg.svd(reference - mean, full_matrices=False)
    basis = components[:2].T  # [E, 2]
    return (reference - mean) @ basis, (current - mean) @ basis
