"""The review queue: the images most worth a person's look, and the labels people give.

Two lists. ``top_losses``: a version's most confident mistakes on the comparison
holdout, with Grad-CAM, to tell a mislabelled image from a model error. ``label_queue``:
recent live images nobody has labelled yet that are unfamiliar (the OOD flag), answered
with low confidence, or answered differently by a candidate in shadow. ``label_prediction``
stores what a person says: a class (it then counts in realized accuracy and the next
retraining, like a correction on the Predict page) or "none of these classes" (kept out
of both, counted as out-of-distribution evidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.app.backends import Backends
from core.app.predict import is_empty
from core.app.review import holdout_probabilities
from core.audit import stamp
from core.errors import InvalidInput
from core.governance.users import ANONYMOUS
from core.ml.comparison import Holdout, comparison_holdout
from core.ml.data import load_version_dataset
from core.ml.gradcam import fit_for_display, overlay
from core.ml.images import decode_logged, preprocess
from core.monitoring.log_records import NONE_OF_THESE, SOURCES, Label
from core.text import N_

NONE_OF_THESE_CLASSES = N_("none of these classes")
# Below this confidence an answer is worth a second look: the production model answers
# 6 % of the test images below it and is right on 52 % of those (94 % of the rest).
LOW_CONFIDENCE = 0.6
# Why an image is in the queue, most telling first (the queue is ordered by these).
REASONS = (N_("unfamiliar"), N_("disagreement"), N_("low confidence"))
QUEUE_SCAN = 2000  # the queue looks at the version's newest unlabelled live predictions


@dataclass(frozen=True)
class TopLoss:
    """One confident mistake on the holdout (loss: cross-entropy of the true class)."""

    index: int  # position in the comparison holdout
    true_class: str
    predicted_class: str
    confidence: float  # of the predicted class
    true_probability: float
    loss: float
    image: np.ndarray  # uint8 [H, W, 3], sized for display
    overlay: np.ndarray | None  # uint8 [H, W, 3]: Grad-CAM of the predicted class (None:
    # the version's format has no heatmaps)
    heatmap_empty: bool

    @property
    def side_by_side(self) -> np.ndarray:
        """The image beside its Grad-CAM overlay (uint8 [H, 2W, 3]), or the image alone."""
        if self.overlay is None:
            return self.image
        return np.concatenate([self.image, self.overlay], axis=1)


@dataclass(frozen=True)
class TopLosses:
    version: int
    holdout: int  # images in the holdout
    mistakes: int  # of which the version got wrong
    losses: list[TopLoss]  # the most confident mistakes, highest loss first
    heatmaps: bool = True  # False: the version's format has none (a SavedModel)


def top_losses(backends: Backends, version: int | None, *, actor: str, now: datetime,
               n: int = 12) -> TopLosses:
    """The ``n`` mistakes of ``version`` (default: the champion) on the comparison
    holdout with the highest loss, each with a Grad-CAM of the class it chose."""
    backends.access.authorize(actor, "view", now, target="holdout")
    _check_count(n)
    chosen = backends.registry.resolve(version)
    holdout = comparison_holdout(load_version_dataset(
        chosen.metadata, backends.config.fashion_mnist_dir).test)
    probabilities = holdout_probabilities(backends.models.predictor(chosen), [
        Holdout("clean", holdout.images, holdout.labels)])["clean"]
    true_probability = probabilities[np.arange(len(holdout)), holdout.labels]
    losses = -np.log(np.maximum(true_probability, 1e-12))
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != holdout.labels)
    worst = wrong[np.argsort(-losses[wrong], kind="stable")[:n]]
    layered = chosen.metadata.has_layers
    gradcam = backends.models.gradcam(chosen) if layered else None
    spec = chosen.metadata.spec
    names = chosen.class_names
    results = []
    for index in worst:
        image = holdout.images[index]
        drawn, empty = None, False
        if gradcam is not None:
            heatmap, _ = gradcam.heatmap(preprocess(image, spec), int(predicted[index]))
            drawn, empty = overlay(image, heatmap), is_empty(heatmap)
        results.append(TopLoss(
            int(index), names[holdout.labels[index]], names[predicted[index]],
            float(probabilities[index, predicted[index]]), float(true_probability[index]),
            float(losses[index]), fit_for_display(image), drawn, empty))
    return TopLosses(chosen.version, len(holdout), len(wrong), results, heatmaps=layered)


@dataclass(frozen=True)
class QueueItem:
    """A logged live prediction worth a label, and why."""

    log_id: int
    at: str
    source: str
    version: int
    label: str  # what the version answered
    confidence: float
    ood_score: float | None
    reasons: tuple[str, ...]  # from REASONS, most telling first
    candidate: int | None  # the shadowing candidate, for a disagreement
    candidate_label: str | None  # what it answered instead
    image: np.ndarray  # uint8 [H, W, 3], sized for display
    suggestion: str | None = None  # a visitor's label, waiting for a signed-in user's

    def as_dict(self) -> dict:
        return {"id": self.log_id, "at": self.at, "source": self.source,
                "version": self.version, "label": self.label,
                "confidence": round(self.confidence, 4), "ood_score": self.ood_score,
                "reasons": list(self.reasons), "candidate": self.candidate,
                "candidate_label": self.candidate_label, "suggestion": self.suggestion}


@dataclass(frozen=True)
class LabelQueue:
    version: int
    scanned: int  # unlabelled live predictions among the newest QUEUE_SCAN
    counts: dict[str, int]  # reason -> how many of those have it
    items: list[QueueItem]  # the first ``n`` to label
    none_of_these: int  # the version's images people said fit none of its classes...
    none_of_these_flagged: int  # ...of which the OOD detector had flagged unfamiliar
    has_detector: bool

    def as_dict(self) -> dict:
        return {"version": self.version, "scanned": self.scanned, "counts": self.counts,
                "none_of_these": self.none_of_these,
                "none_of_these_flagged": self.none_of_these_flagged if self.has_detector
                else None,
                "items": [item.as_dict() for item in self.items]}


def label_queue(backends: Backends, version: int | None, *, actor: str, now: datetime,
                n: int = 20) -> LabelQueue:
    """Live images of ``version`` (default: the champion) most worth a label.

    Looks at its newest ``QUEUE_SCAN`` predictions from people and programs (simulations
    carry their own labels) and, of those nobody has labelled, keeps the ones that are
    unfamiliar, that a shadowing candidate answered differently, or below
    ``LOW_CONFIDENCE``; more reasons first, then the least confident. The images are
    people's uploads: only signed-in users see them. A visitor's pending suggestion is
    shown with its image.
    """
    backends.access.authorize_signed_in(actor, "view", now, target="uploaded images")
    _check_count(n)
    chosen = backends.registry.resolve(version)
    log, model = backends.prediction_log, backends.model
    window = log.window(model, chosen.version, last=QUEUE_SCAN, sources=SOURCES)
    unlabelled = [int(k) for k in np.flatnonzero(window.true_labels == -1)]
    detector = backends.models.predictor(chosen).ood
    shadowed = _shadow_answers(backends, chosen.version)
    flags = {
        "unfamiliar": (detector.unfamiliar(window.ood_scores) if detector is not None
                       else np.zeros(len(window), bool)),
        "disagreement": np.asarray([int(i) in shadowed and shadowed[int(i)][1] != answer
                                    for i, answer in zip(window.ids, window.predicted)], bool),
        "low confidence": window.confidence < LOW_CONFIDENCE,
    }
    reasons = {k: tuple(r for r in REASONS if flags[r][k]) for k in unlabelled}
    wanted = [k for k in unlabelled if reasons[k]]
    wanted.sort(key=lambda k: (-len(reasons[k]), window.confidence[k], -window.ids[k]))
    chosen_rows = wanted[:n]
    pngs = log.images(model, [int(window.ids[k]) for k in chosen_rows])
    pixels = decode_logged([png for png, _ in pngs],
                           chosen.metadata.spec)
    names = chosen.class_names
    suggested = _pending_suggestions(backends, [int(window.ids[k]) for k in chosen_rows])
    items = []
    for k, image in zip(chosen_rows, pixels):
        log_id = int(window.ids[k])
        candidate, answer = (shadowed.get(log_id, (None, None))
                             if "disagreement" in reasons[k] else (None, None))
        score = window.ood_scores[k]
        items.append(QueueItem(
            log_id, window.at[k], window.sources[k], chosen.version,
            names[window.predicted[k]], float(window.confidence[k]),
            None if np.isnan(score) else float(score), reasons[k], candidate,
            None if answer is None else names[answer], fit_for_display(image),
            _label_name(names, suggested[log_id]) if log_id in suggested else None))
    outside = log.none_of_these_scores(model, chosen.version)
    flagged = int(np.sum(detector.unfamiliar(outside))) if detector is not None else 0
    return LabelQueue(chosen.version, len(unlabelled),
                      {r: int(np.sum(flags[r][unlabelled])) for r in REASONS}, items,
                      len(outside), flagged, detector is not None)


def _shadow_answers(backends: Backends, version: int) -> dict[int, tuple[int, int]]:
    """For the version's rows that a candidate shadowed: row id -> (candidate, its class).

    The candidate is the one the traffic policy names (the one a decision is pending on).
    """
    policy = backends.traffic.get()
    if policy.candidate is None or policy.candidate == version:
        return {}
    pairs = backends.prediction_log.shadow_pairs(backends.model, version, policy.candidate)
    return {int(row[0]): (policy.candidate, int(row[3])) for row in pairs}


def label_prediction(backends: Backends, prediction_id: int, label: str, *, actor: str,
                     now: datetime) -> Label:
    """Keeps what a person says a logged image is: one of the version's classes or
    ``NONE_OF_THESE_CLASSES``, with who said it and when.

    A signed-in user's label counts at once (realized accuracy, retraining, the gate) and
    is audited; a later one replaces it, the history stays. A visitor's (not signed in)
    is kept as a suggestion that counts nowhere until a signed-in user gives the same
    label: a label decides what the next model learns, so an anonymous one cannot.
    """
    acting = backends.access.authorize(actor, "feedback", now)
    log, model = backends.prediction_log, backends.model
    class_names = backends.registry.get_version(log.version_of(model, prediction_id)).class_names
    if label == NONE_OF_THESE_CLASSES:
        value = NONE_OF_THESE
    elif label in class_names:
        value = class_names.index(label)
    else:
        raise InvalidInput(f"unknown class {label!r}. To fix this, choose one of: "
                           f"{', '.join(class_names)}, or {NONE_OF_THESE_CLASSES!r}.")
    return log.record_label(model, prediction_id, value, by=acting, at=stamp(now),
                            counted=acting.name != ANONYMOUS, class_name=label)


def _pending_suggestions(backends: Backends, ids: list[int]) -> dict[int, int]:
    """Prediction id -> the label a visitor suggested after the last counted one."""
    pending: dict[int, int] = {}
    for row in backends.prediction_log.labels(backends.model, ids):
        if row.counted:
            pending.pop(row.prediction, None)
        else:
            pending[row.prediction] = row.label
    return pending


def _label_name(names: list[str], label: int) -> str:
    return NONE_OF_THESE_CLASSES if label == NONE_OF_THESE else names[label]


def _check_count(n: int) -> None:
    if not 1 <= n <= 200:
        raise InvalidInput(f"the number of images must be between 1 and 200, got {n}. "
                           "To fix this, pass e.g. --n 20.")
