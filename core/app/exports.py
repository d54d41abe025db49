"""Use cases of a version's exports: build the portable ones (quantized TFLite, ONNX) with
their measured trade-offs, read the table, and hand out a file (audited)."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np

from core.app.backends import Backends
from core.audit import AuditEntry, stamp
from core.errors import InvalidInput
from core.ml.comparison import comparison_holdout
from core.ml.data import load_version_dataset
from core.ml.exports import (
    EXPORT_FORMATS,
    EXPORTS_TABLE,
    KERAS_FILE,
    PORTABLE_FILES,
    SAVED_MODEL_DIR,
    TFLITE_FILE,
    build_portable,
    measure_exports,
)
from core.ml.images import preprocess_batch

CALIBRATION_IMAGES = 500  # training images the int8 model's ranges are measured on
BASE_FILES = {"keras": KERAS_FILE, "saved_model": SAVED_MODEL_DIR, "tflite": TFLITE_FILE}


def export_table(backends: Backends, version: int, *, actor: str,
                 now: datetime) -> list[dict] | None:
    """The version's measured exports (None: not built yet, see ``build_exports``)."""
    backends.access.authorize(actor, "view", now, target=f"version {version}")
    backends.registry.get_version(version)
    return stored_exports(backends, version)


def stored_exports(backends: Backends, version: int) -> list[dict] | None:
    """The table ``build_exports`` stored for a version, or None (callers authorize)."""
    if not backends.artifacts.has_file(backends.model, version, EXPORTS_TABLE):
        return None
    return json.loads(backends.registry.read_file(version, EXPORTS_TABLE))


def build_exports(backends: Backends, version: int, *, actor: str,
                  now: datetime) -> list[dict]:
    """Builds the portable exports of ``version`` once and measures every export on the
    clean comparison holdout (operators; about a minute). Returns the table."""
    backends.access.authorize(actor, "export", now, target=f"version {version}",
                              version=version)
    chosen = backends.registry.get_version(version)
    existing = stored_exports(backends, version)
    if existing is not None:
        return existing
    spec = chosen.metadata.spec
    dataset = load_version_dataset(chosen.metadata, backends.config.fashion_mnist_dir)
    # The version's own training data (a retrained version's original part): a seeded sample.
    rng = np.random.default_rng(chosen.metadata.seed)
    picks = rng.choice(len(dataset.train), min(CALIBRATION_IMAGES, len(dataset.train)),
                       replace=False)
    calibration = preprocess_batch(dataset.train.images[picks], spec)
    holdout = comparison_holdout(dataset.test)
    folder = backends.registry.files(version)
    with tempfile.TemporaryDirectory() as scratch:
        portable = build_portable(folder / SAVED_MODEL_DIR, calibration, Path(scratch))
        paths = {fmt: folder / name for fmt, name in BASE_FILES.items()
                 if fmt != "keras" or chosen.metadata.has_layers} | portable
        table = measure_exports(paths, holdout.images, spec, holdout.labels)
        for fmt, path in portable.items():
            backends.registry.add_file(version, PORTABLE_FILES[fmt], path.read_bytes())
    # Last: a table on disk means every file it lists is there.
    backends.registry.add_file(version, EXPORTS_TABLE, json.dumps(table, indent=2).encode())
    return table


def export_file(backends: Backends, version: int, fmt: str, *, actor: str,
                now: datetime) -> tuple[str, bytes]:
    """(file name, bytes) of one export, for operators; every download is audited (the
    SavedModel folder comes as a zip)."""
    acting = backends.access.authorize(actor, "export", now, target=f"version {version}",
                                       version=version)
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}. To fix this, use one of: "
                           f"{', '.join(EXPORT_FORMATS)}.")
    backends.registry.get_version(version)
    if fmt in PORTABLE_FILES and stored_exports(backends, version) is None:
        raise InvalidInput(f"version {version} has no {fmt} export yet. To fix this, build "
                           f"them: python -m core exports {version} --actor <operator>.")
    folder = backends.registry.files(version)
    name = (BASE_FILES | PORTABLE_FILES)[fmt]
    if fmt == "saved_model":
        data, name = _zip_folder(folder / SAVED_MODEL_DIR), f"{SAVED_MODEL_DIR}.zip"
    else:
        data = backends.registry.read_file(version, name)
    backends.audit_log.append_alone(AuditEntry(
        at=stamp(now), actor=acting.name, role=acting.role, action="download_export",
        outcome="done", model=backends.model, target=f"version {version}", version=version,
        details={"format": fmt, "file": name, "sha256": hashlib.sha256(data).hexdigest()}))
    return f"v{version}-{name}", data


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(SAVED_MODEL_DIR) / path.relative_to(folder))
    return buffer.getvalue()
