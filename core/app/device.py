"""The phone app's use cases (docs/phone.md): the model file a device runs, and storing
what devices answered offline as logged predictions.

The device runs the champion's TFLite file with a fixed batch of one
(``core.ml.device``): the int8 export where the exports table shows its accuracy holds
(within ``INT8_MAX_DROP`` of the float file's), else the float file. What a device syncs
is stored with its own answer (the probabilities the person was shown), its id, time,
latency and the version that answered; the embedding, the OOD score and the image
statistics, which drift monitoring reads, come from the server running that same version
on the same pixels (one batched call per version and sync). Where the server's top class
differs from the device's, the row still stores the device's answer (an int8 file may
differ on ~1 % of images) and the sync counts it as ``disagreed``: a key that sends made-up
answers shows up there.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from core.app.exports import stored_exports
from core.app.serving import ServingSession
from core.errors import CoreError, ImageError, InvalidInput, NotAvailable
from core.ml.device import TensorInfo, device_file, tensors_of
from core.ml.exports import PORTABLE_FILES, TFLITE_FILE
from core.ml.images import open_image, preprocess_batch, resize_to_spec
from core.monitoring.log_records import PredictionRecord
from core.registry.records import ModelVersion

INT8_MAX_DROP = 0.01  # the int8 file is sent when its holdout accuracy is this close
SYNC_MAX_ROWS = 100  # per request: the app sends batches of 20
# A device's clock decides a row's time: rows claiming the future, or older than a
# phone plausibly stays offline, would land outside the windows a reviewer reads.
MAX_AHEAD = timedelta(minutes=5)
MAX_AGE = timedelta(days=90)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class DeviceModel:
    """A version's device file and what the app needs to run it as the server does."""

    version: ModelVersion
    kind: str  # "float" or "int8"
    data: bytes = field(repr=False)
    input: TensorInfo
    outputs: list[TensorInfo]
    sha256: str  # of ``data``: computed once (every metadata request and download shows it)

    def metadata(self, file_url: str) -> dict:
        spec = self.version.metadata.spec
        return {
            "model": self.version.model, "version": self.version.version,
            "classes": list(self.version.class_names),
            # The server's preprocessing (core.ml.images.preprocess): Pillow's bilinear
            # resize with its antialiasing, ITU-R 601-2 luma for one channel, [0, 1].
            "input": spec.as_dict() | {"range": [0.0, 1.0], "resize": "bilinear",
                                       "gray": "luma601"},
            "file": {"url": file_url, "kind": self.kind, "bytes": len(self.data),
                     "sha256": self.sha256},
            "tensors": {"input": self.input.as_dict(),
                        "outputs": [t.as_dict() for t in self.outputs]},
        }


class DeviceModels:
    """Device files built once per process and version (a version's files never change)."""

    def __init__(self, session: ServingSession, max_kept: int = 8):
        self.session, self.max_kept = session, max_kept
        self._built: dict[tuple[str, int], DeviceModel] = {}
        self._lock = threading.Lock()

    def of(self, version: ModelVersion) -> DeviceModel:
        key = (version.model, version.version)
        with self._lock:
            if key not in self._built:
                if len(self._built) >= self.max_kept:
                    self._built.pop(next(iter(self._built)))
                self._built[key] = self._build(version)
            return self._built[key]

    def _build(self, version: ModelVersion) -> DeviceModel:
        if version.metadata.serving_runtime != "tflite":
            raise NotAvailable(f"version {version.version} is served by TensorFlow (its "
                               "TFLite file changed its answers), so it has no device model. "
                               "To fix this, promote a version with a faithful TFLite file.")
        backends = self.session.model(version.model).backends
        kind = "int8" if _int8_holds(stored_exports(backends, version.version)) else "float"
        name = PORTABLE_FILES["tflite_int8"] if kind == "int8" else TFLITE_FILE
        data = device_file(backends.registry.read_file(version.version, name))
        tensor_in, tensors_out = tensors_of(data)
        return DeviceModel(version, kind, data, tensor_in, tensors_out,
                           hashlib.sha256(data).hexdigest())


def _int8_holds(table: list[dict] | None) -> bool:
    rows = {row["format"]: row for row in table or []}
    if "tflite_int8" not in rows or "tflite" not in rows:
        return False
    return rows["tflite_int8"]["accuracy"] >= rows["tflite"]["accuracy"] - INT8_MAX_DROP


@dataclass(frozen=True)
class DeviceAnswer:
    """One prediction a device made, as it syncs it."""

    id: str  # the device's own id for it (a UUID): what makes a retry harmless
    at: datetime
    model: str | None  # None: the server's default model
    version: int
    probabilities: list[float]
    latency_ms: float
    image: bytes  # PNG or JPEG at the model's input size
    size: tuple[int, int] | None = None  # the photo's own width and height, if known


@dataclass
class SyncResult:
    stored: list[str] = field(default_factory=list)  # logged by this request
    known: list[str] = field(default_factory=list)  # logged before (a retry)
    rejected: dict[str, str] = field(default_factory=dict)  # id -> why (kept on the device)
    disagreed: int = 0  # stored rows whose top class the server's run did not give

    def as_dict(self) -> dict:
        return {"acknowledged": self.stored + self.known, "stored": len(self.stored),
                "already_stored": len(self.known), "disagreed": self.disagreed,
                "rejected": [{"id": i, "error": e} for i, e in self.rejected.items()]}


def sync_device_answers(session: ServingSession, client: str, answers: Sequence[DeviceAnswer],
                        now: datetime) -> SyncResult:
    """Stores a device's answers once each (by its id) as predictions with source
    ``device``; the caller has authorized ``sync``. A bad row is rejected alone."""
    if len(answers) > SYNC_MAX_ROWS:
        raise InvalidInput(f"a sync carries at most {SYNC_MAX_ROWS} predictions, this one "
                           f"{len(answers)}. To fix this, send them in batches.")
    result, records = SyncResult(), []
    versions: dict[tuple[str, int], ModelVersion] = {}
    groups: dict[tuple[str, int], list[tuple[DeviceAnswer, np.ndarray]]] = {}
    for answer in answers:
        try:
            version = _check(session, answer, now)
            key = (version.model, version.version)
            versions[key] = version
            groups.setdefault(key, []).append((answer, _pixels(answer, version)))
        except CoreError as error:
            result.rejected[answer.id] = str(error)
    for key, rows in groups.items():
        records += _records(session, versions[key], rows, client, result)
    if records:
        stored = set(session.backends.prediction_log.append_once(records))
        for record in records:
            (result.stored if record.request_id in stored else result.known).append(
                str(record.request_id))
    return result


def _check(session: ServingSession, answer: DeviceAnswer, now: datetime) -> ModelVersion:
    if not _CLIENT_ID.match(answer.id):
        raise InvalidInput("a prediction's id is 8-64 letters, digits, '-' or '_'. To fix "
                           "this, give each prediction a UUID.")
    if answer.at.tzinfo is None or not now - MAX_AGE <= answer.at <= now + MAX_AHEAD:
        raise InvalidInput(f"the prediction's time {answer.at.isoformat()} is not within "
                           f"the last {MAX_AGE.days} days (with its time zone). To fix this, "
                           "set the device's clock; older predictions cannot be synced.")
    version = session.model(answer.model).version(answer.version)
    probabilities = np.asarray(answer.probabilities, np.float64)
    if (probabilities.shape != (len(version.class_names),)
            or not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0)
            or abs(probabilities.sum() - 1) > 1e-3):
        raise InvalidInput(f"the probabilities are not {len(version.class_names)} numbers "
                           "from 0 to 1 adding up to 1. To fix this, send the model's "
                           "output as it was.")
    if not 0 <= answer.latency_ms <= 3_600_000:
        raise InvalidInput("latency_ms is not between 0 and an hour. To fix this, send the "
                           "milliseconds the device took.")
    return version


def _pixels(answer: DeviceAnswer, version: ModelVersion) -> np.ndarray:
    """The image as uint8 [h, w, c] at the version's input size (nothing larger decoded)."""
    spec = version.metadata.spec
    opened = open_image(answer.image, max_bytes=1 << 22, max_pixels=1 << 26)  # header only
    width, height = opened.original_size
    if (width, height) != (spec.width, spec.height):
        raise ImageError(f"the image is {width}x{height}, not the model's input size "
                         f"{spec.width}x{spec.height}. To fix this, send it as the device "
                         "model saw it.")
    decoded = opened.decode(max_pixels=spec.width * spec.height)
    return resize_to_spec(decoded.pixels, spec)  # channels: a gray PNG of an RGB image


def _records(session: ServingSession, version: ModelVersion,
             rows: list[tuple[DeviceAnswer, np.ndarray]], client: str,
             result: SyncResult) -> list[PredictionRecord]:
    """The rows of one version: the device's answers, the server's embedding and OOD."""
    spec = version.metadata.spec
    pixels = np.stack([p for _, p in rows])
    ours = session.predictor(version).predict_inputs(preprocess_batch(pixels, spec), pixels,
                                                     time.perf_counter())
    records = []
    for (answer, _), server in zip(rows, ours):
        given = np.asarray(answer.probabilities, np.float32)
        best = int(given.argmax())
        result.disagreed += best != server.class_index
        theirs = replace(server, label=version.class_names[best], class_index=best,
                         confidence=float(given[best]), latency_ms=float(answer.latency_ms),
                         probabilities=dict(zip(version.class_names, map(float, given))))
        records.append(PredictionRecord.of(
            theirs, model=version.model, source="device", at=answer.at,
            size=answer.size or (spec.width, spec.height), request_id=answer.id,
            client=client))
    return records


def parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(f"the time {text!r} is not ISO 8601. To fix this, send it as "
                           "new Date().toISOString() gives it.") from None

