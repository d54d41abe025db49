"""The one prediction path. Every prediction a front end asks for is made by
``predict_routed`` and logged with the rows ``log_records`` builds: the dashboard's and
the CLI's (one image; the version asked for, else the champion), a simulation's and the
API's (routed by the traffic policy).

Routing: the assigned version answers; a shadow, if the policy names one, predicts the
same inputs, and its answer is logged but never returned (its failure never changes the
answer: it is handed back for the caller to record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from core.app import tracing
from core.app.uploads import ImageDecoder, RequestPixels
from core.errors import CoreError, InvalidInput
from core.governance.traffic import Assignment
from core.ml.images import DecodedImage, InputSpec, preprocess, resize_to_spec
from core.ml.predictor import Prediction, Predictor
from core.monitoring.log_records import PredictionRecord


@dataclass(frozen=True)
class Instance:
    """One input of a request: an uploaded image or an array as the model takes it."""

    image: DecodedImage | None = None
    array: np.ndarray | None = None  # float32 [h, w, c]

    def size(self) -> tuple[int, int]:
        if self.image is not None:
            return self.image.original_size
        assert self.array is not None
        return int(self.array.shape[1]), int(self.array.shape[0])


@dataclass(frozen=True)
class Routed:
    """One request's predictions: the answering version's, and the shadow's if it ran."""

    assignment: Assignment
    answers: list[Prediction]
    shadowed: list[Prediction] | None = None
    shadow_error: Exception | None = None  # why the shadow gave no answer
    # step -> (start, end) in time.time_ns(): "predict", "shadow" (the requests' spans)
    timings: dict[str, tuple[int, int]] = field(default_factory=dict)

    def part(self, start: int, count: int) -> Routed:
        """The predictions of instances ``start`` to ``start + count`` (one request's part
        of a batch)."""
        end = start + count
        return Routed(self.assignment, self.answers[start:end],
                      None if self.shadowed is None else self.shadowed[start:end],
                      self.shadow_error, self.timings)


@dataclass(frozen=True)
class Origin:
    """Where predictions come from, as the log keeps it.

    ``server_request_id`` is set for routed traffic (the API, a simulation beside a
    candidate): it pairs the shadow's rows with the answer's, and the rows keep their
    variant and place in the request; unrouted rows (the dashboard, the CLI) keep none.
    """

    source: str
    at: datetime
    request_id: str | None = None  # the client's id (API), or the simulation's
    server_request_id: str | None = None
    client: str | None = None
    true_labels: Sequence[int] | None = None
    trace_id: str | None = None  # the API request's trace, when traced


def decode_instances(decoder: ImageDecoder, inputs: Sequence[bytes | object],
                     pixels: RequestPixels) -> list[Instance]:
    """Instances from image files (``bytes``) and tensors (nested lists), in order.

    Tensors are checked first, then every image's header, then the images are decoded
    within ``pixels``: a bad instance costs no decoding.
    """
    with tracing.span("decode", {"vision.instances": len(inputs)}):
        arrays = {i: array_instance(value) for i, value in enumerate(inputs)
                  if not isinstance(value, bytes)}
        files = [value for value in inputs if isinstance(value, bytes)]
        decoded = iter(decoder.decode(files, pixels) if files else [])
        return [arrays[i] if i in arrays else Instance(image=next(decoded))
                for i in range(len(inputs))]


def array_instance(value: object) -> Instance:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise InvalidInput("an instance is not a rectangular array of numbers. To fix "
                           "this, send [height][width][channels] floats, or "
                           "{\"b64\": \"<base64 image file>\"}.") from None
    if array.ndim != 3:
        raise InvalidInput(f"an instance has {array.ndim} dimensions. To fix this, send "
                           "[height][width][channels] floats in [0, 1], or "
                           "{\"b64\": \"<base64 image file>\"}.")
    if not np.isfinite(array).all():
        raise InvalidInput("an instance holds NaN or infinity. To fix this, send finite "
                           "floats in [0, 1].")
    return Instance(array=array)


def prepare(instances: Sequence[Instance], spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs float32 [N, h, w, c] and the same images as uint8 pixels."""
    inputs, pixels = [], []
    expected = (spec.height, spec.width, spec.channels)
    for i, instance in enumerate(instances):
        if instance.image is not None:
            resized = resize_to_spec(instance.image.pixels, spec)
            inputs.append(preprocess(resized, spec))
            pixels.append(resized)
            continue
        array = instance.array
        assert array is not None
        if array.shape != expected:
            raise InvalidInput(
                f"instance {i} has shape {list(array.shape)}; this version takes "
                f"{list(expected)} (height, width, channels) floats in [0, 1]. To fix "
                "this, resize it, or send the image file as {\"b64\": ...}.")
        inputs.append(array)
        pixels.append(np.clip(np.rint(array * 255), 0, 255).astype(np.uint8))
    return np.stack(inputs), np.stack(pixels)


def predict(predictor: Predictor, instances: Sequence[Instance],
            started: float) -> list[Prediction]:
    """One version's predictions of every instance; ``started``: when the request came."""
    inputs, pixels = prepare(instances, predictor.input_spec)
    return predictor.predict_inputs(inputs, pixels, started)


def predict_routed(predictor_of: Callable[[int], Predictor], instances: Sequence[Instance],
                   assignment: Assignment, started: float) -> Routed:
    """The assigned version's answers, and the shadow's predictions if it has one."""
    if not instances:
        raise InvalidInput("the request has no instances. To fix this, send at least one.")
    timings = {}
    began = time.time_ns()
    answers = predict(predictor_of(assignment.version), instances, started)
    timings["predict"] = (began, time.time_ns())
    if assignment.shadow is None:
        return Routed(assignment, answers, timings=timings)
    began = time.time_ns()
    try:
        shadowed = predict(predictor_of(assignment.shadow), instances, time.perf_counter())
    except (CoreError, ValueError) as error:
        timings["shadow"] = (began, time.time_ns())
        return Routed(assignment, answers, shadow_error=error, timings=timings)
    timings["shadow"] = (began, time.time_ns())
    return Routed(assignment, answers, shadowed, timings=timings)


def log_records(routed: Routed, instances: Sequence[Instance], model: str,
                origin: Origin) -> list[PredictionRecord]:
    """The log's rows of a request: the answers', then the shadow's."""
    routed_rows = origin.server_request_id is not None
    answered = [(routed.answers, routed.assignment.variant if routed_rows else None)]
    if routed.shadowed is not None:
        answered.append((routed.shadowed, "shadow"))
    return [PredictionRecord.of(
        prediction, model=model, source=origin.source, at=origin.at, size=instance.size(),
        true_label=None if origin.true_labels is None else int(origin.true_labels[index]),
        request_id=origin.request_id, client=origin.client, variant=variant,
        server_request_id=origin.server_request_id,
        instance=index if routed_rows else None, trace_id=origin.trace_id)
        for predictions, variant in answered
        for index, (prediction, instance) in enumerate(zip(predictions, instances))]
