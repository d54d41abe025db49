"""What the prediction log holds: a logged prediction, a failed request, a person's label,
and a window of rows as arrays (what drift statistics consume)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from core.audit import stamp
from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.ml.predictor import Prediction

# device: answered on a phone by the app's on-device model, synced later (the row's
# client is the device's key, its request_id the id the phone gave the prediction).
SOURCES = ("api", "upload", "camera", "cli", "device")  # plus "simulation:<scenario>"
# What the Drift page filters by: each source, every simulation as one kind.
SOURCE_KINDS = (*SOURCES, "simulation")
# How an API request reached the version that answered it (``direct``: the client
# named a version or label; the others follow the traffic policy).
VARIANTS = ("champion", "canary", "shadow", "direct")
# The true label of an image a person said belongs to none of the model's classes: kept
# out of realized accuracy and training (every reader takes ``true_label >= 0`` as "has a
# class"), counted as out-of-distribution evidence. -1 already means "unknown" in arrays.
NONE_OF_THESE = -2


def check_source(source: str) -> str:
    if source in SOURCES or (source.startswith("simulation:") and len(source) > 11):
        return source
    raise InvalidInput(f"unknown prediction source {source!r}. To fix this, use one of "
                       f"{', '.join(SOURCES)} or simulation:<scenario>.")


@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction. Arrays: probabilities float32 [K], embedding [E]."""

    at: str
    model: str
    version: int
    source: str
    predicted: int
    label: str
    confidence: float
    probabilities: np.ndarray
    latency_ms: float
    brightness: float
    contrast: float
    sharpness: float
    width: int
    height: int
    embedding: np.ndarray
    # The image at the model's input size (what retraining learns from): encoded, or its
    # uint8 pixels, which the log encodes when it writes them (off the request's path).
    pixels: bytes | np.ndarray
    true_label: int | None = None
    request_id: str | None = None  # API traffic only, like client and variant
    client: str | None = None
    variant: str | None = None
    ood_score: float | None = None  # None: the version has no OOD detector
    # What pairs a shadow row with the answer: the server's id of the request (never
    # the client's) and the instance's place in it. Routed traffic only.
    server_request_id: str | None = None
    instance: int | None = None
    trace_id: str | None = None  # the request's OpenTelemetry trace (None: not traced)

    @classmethod
    def of(cls, prediction: "Prediction", *, model: str, source: str, at: datetime,
           size: tuple[int, int], true_label: int | None = None,
           request_id: str | None = None, client: str | None = None,
           variant: str | None = None, server_request_id: str | None = None,
           instance: int | None = None, trace_id: str | None = None) -> "PredictionRecord":
        """The log row of one served prediction (``size``: the upload's width, height)."""
        if prediction.pixels is None:
            raise ValueError("a prediction without its input pixels cannot be logged")
        stats = prediction.image_statistics
        return cls(
            at=stamp(at, milliseconds=True), model=model, version=prediction.version,
            source=source, predicted=prediction.class_index, label=prediction.label,
            confidence=prediction.confidence,
            probabilities=np.asarray(list(prediction.probabilities.values()), np.float32),
            latency_ms=prediction.latency_ms, brightness=stats["brightness"],
            contrast=stats["contrast"], sharpness=stats["sharpness"], width=size[0],
            height=size[1], embedding=prediction.embedding,
            pixels=prediction.pixels, true_label=true_label,
            request_id=request_id, client=client, variant=variant,
            ood_score=prediction.ood_score, server_request_id=server_request_id,
            instance=instance, trace_id=trace_id)


@dataclass(frozen=True)
class FailedRequest:
    """An API request answered with an error: what monitoring needs, never the image.

    ``error_kind`` is one of ``ERROR_KINDS``; ``version``/``variant`` are None when the
    request failed before a version was chosen.
    """

    at: str
    model: str
    status: int
    error_kind: str
    latency_ms: float
    client: str
    request_id: str
    version: int | None = None
    variant: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True)
class RequestRow:
    """One API request as traffic monitoring sees it (status 200: answered)."""

    at: str
    version: int | None
    variant: str | None
    status: int
    latency_ms: float
    error_kind: str | None


@dataclass(frozen=True)
class Label:
    """One label a person gave a logged prediction. ``counted``: a signed-in user's, which
    sets the prediction's true class; otherwise a visitor's suggestion, which counts
    nowhere (not in realized accuracy, retraining or the gate) until a signed-in user
    gives the same label."""

    id: int
    prediction: int
    label: int  # class index, or NONE_OF_THESE
    by: str
    role: str
    at: str
    counted: bool


ERROR_KINDS = ("invalid_input", "not_found", "unauthenticated", "refused", "too_large",
               "rate_limited", "overloaded", "internal")


@dataclass(frozen=True)
class Window:
    """A slice of the log, oldest first, as arrays: what drift statistics consume."""

    ids: np.ndarray  # int64 [n]
    at: list[str]
    sources: list[str]
    predicted: np.ndarray  # int64 [n]
    confidence: np.ndarray  # float32 [n]
    probabilities: np.ndarray  # float32 [n, K]
    statistics: dict[str, np.ndarray]  # brightness, contrast, sharpness: float32 [n]
    embeddings: np.ndarray  # float32 [n, E]
    true_labels: np.ndarray  # int64 [n], -1 where unknown, NONE_OF_THESE (-2) outside the classes
    latency_ms: np.ndarray  # float32 [n]
    ood_scores: np.ndarray  # float32 [n], NaN where not scored (no OOD detector)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> Window:
        none = np.zeros(0, np.float32)
        return cls(np.zeros(0, np.int64), [], [], np.zeros(0, np.int64), none,
                   np.zeros((0, 0), np.float32),
                   {k: none for k in ("brightness", "contrast", "sharpness")},
                   np.zeros((0, 0), np.float32), np.zeros(0, np.int64), none, none)

    def slice(self, start: int, stop: int) -> "Window":
        return Window(self.ids[start:stop], self.at[start:stop], self.sources[start:stop],
                      self.predicted[start:stop], self.confidence[start:stop],
                      self.probabilities[start:stop],
                      {k: v[start:stop] for k, v in self.statistics.items()},
                      self.embeddings[start:stop], self.true_labels[start:stop],
                      self.latency_ms[start:stop], self.ood_scores[start:stop])
