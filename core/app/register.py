"""Registering a model trained elsewhere (``python -m core register``).

The model file is loaded safely and adapted to the product's conventions
(``core.ml.imported``), evaluated on the dataset's validation and test splits, given a
reference profile and an OOD bank from its own embeddings, converted for serving with a
parity check, and registered with its provenance. A model's first version becomes its
champion; a later one is a candidate, compared with the champion on the same holdouts
and advised by the gate like a retrained one, and waits for a person's decision.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.app.access import acting_in_setup
from core.app.backends import Backends
from core.app.review import compare_versions
from core.app.train import evaluate_model
from core.errors import InvalidInput
from core.governance.access import check_reason
from core.ml.data import Dataset, in_output_order, load_dataset
from core.ml.image_sets import Images, batches
from core.ml.images import InputSpec, preprocess_batch
from core.ml.imported import ForeignModel
from core.registry.provenance import environment_info
from core.registry.records import (
    SAVED_MODEL_FORMAT,
    Comparison,
    DatasetRecord,
    ModelVersion,
    VersionMetadata,
)

# Serving runs the converted TFLite model: below this agreement with the Keras model on
# the test split, the conversion changed what the model says, and the version is served
# from its SavedModel by TensorFlow instead (slower; ``VersionMetadata.serving_runtime``).
MIN_SERVING_AGREEMENT = 0.999
PARITY_SAMPLE = 64  # images the adapted model is checked on against the original
# A zipped SavedModel's unpacked size: a model of a few hundred MB, never a zip bomb's.
MAX_UNPACKED_BYTES = 2 * 2**30
MAX_ZIP_ENTRIES = 10_000  # a SavedModel has a handful of files; a zip of many is an attack


@dataclass(frozen=True)
class RegistrationResult:
    version: ModelVersion
    outputs: str  # what the model gave: probabilities or logits
    serving_agreement: float  # TFLite against Keras, on the test split
    comparison: Comparison | None  # with the champion, for a later version

    @property
    def serving_runtime(self) -> str:
        return self.version.metadata.serving_runtime


def read_labels(path: Path) -> list[str]:
    """One label per line, in the model's output order (blank lines ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the labels file {path} ({type(error).__name__}). "
                           "To fix this, give a UTF-8 text file with one label per line.") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def register_model(backends: Backends, path: Path, *, dataset_spec: str, actor: str,
                   now: datetime, reason: str, labels: list[str] | None = None,
                   input_range: str = "0,1", outputs: str | None = None,
                   embedding_layer: str | None = None) -> RegistrationResult:
    """Registers the Keras model file or TF SavedModel folder at ``path`` (operators;
    audited).

    Args:
        dataset_spec: the data it is evaluated on (``fashion_mnist``, ``folder:PATH``,
            ``tfds:NAME``), at the model's own input size.
        labels: the class of each output, in order (default: the dataset's classes).
        input_range: how the model expects pixel values: ``0,1``, ``0,255`` or ``-1,1``.
        outputs: ``probabilities`` or ``logits``; checked against what the model gives.
        embedding_layer: the layer whose output is the embedding (default: the input of
            the last Dense layer).
    """
    from core.ml.exports import save_artifacts
    from core.ml.imported import adapt, parse_input_range
    from core.ml.tensorboard import write_run

    registry, config = backends.registry, backends.config
    acting = acting_in_setup(backends, actor, "register", now, target=f"model {registry.model}")
    reason = check_reason(reason)
    value_range = parse_input_range(input_range)
    foreign, dataset, champion = _load_checked(backends, path, dataset_spec, labels)
    labels = list(dataset.class_names)
    sample = preprocess_batch(dataset.validation.images[:PARITY_SAMPLE], dataset.input_spec)
    model, found = adapt(foreign, value_range, sample, outputs=outputs,
                         embedding_layer=embedding_layer)
    layered = foreign.format != SAVED_MODEL_FORMAT
    metrics, reference = evaluate_model(model, dataset, dataset.train.images, config.seed)
    if not layered:  # see core.ml.saved_models: no OOD score from class scores
        reference = replace(reference, ood=None)
    source: dict[str, object] = {
        "file": foreign.path.name, "format": foreign.format, "sha256": foreign.sha256,
        "keras_version": foreign.keras_version,
        "tensorflow_version": foreign.tensorflow_version,
        "input_range": input_range.replace(" ", ""), "outputs": found,
        "embedding_layer": embedding_layer if layered else "(its outputs)", "reason": reason}

    agreement: list[float] = []  # measured while the version's files are written

    def write_artifacts(folder: Path) -> None:
        if layered:
            save_artifacts(model, folder)
        else:
            model.save(folder)
        agreement.append(serving_agreement(folder, model, dataset.test.images,
                                           dataset.input_spec))
        source["serving_agreement"] = agreement[0]
        # The conversion changed answers: serve the SavedModel (the same graph) instead.
        source["serving_runtime"] = ("tflite" if agreement[0] >= MIN_SERVING_AGREEMENT
                                     else "tensorflow")
        reference.save(folder)
        write_run(folder, model if layered else None, [], metrics, labels)

    metadata = VersionMetadata(
        created_by=acting.name, dataset=DatasetRecord(**dataset.describe()),
        class_names=labels, input_spec=dataset.input_spec.as_dict(),
        architecture=f"imported ({foreign.format})",
        hyperparameters={"seed": config.seed}, epochs=0, training_seconds=0.0, history=[],
        metrics=metrics, environment=environment_info(), source=source)
    version = registry.register_version(
        write_artifacts, metadata, actor=acting, now=now,
        parent=None if champion is None else champion.version, reason=reason)
    comparison = None if champion is None else compare_versions(
        backends, champion.version, version.version, actor=actor, now=now, scenarios=[])
    return RegistrationResult(version, found, agreement[0], comparison)


def _load_checked(backends: Backends, path: Path, dataset_spec: str,
                  labels: list[str] | None
                  ) -> tuple[ForeignModel, Dataset, ModelVersion | None]:
    """The model file, the dataset at its input size with its classes numbered in the
    model's output order, and the champion (a later version must predict its classes)."""
    from core.ml.imported import check_labels, load_foreign_model

    config, registry = backends.config, backends.registry
    foreign = load_foreign_model(path)
    dataset = load_dataset(dataset_spec, foreign.input_spec,
                           fashion_mnist_dir=config.fashion_mnist_dir, seed=config.seed)
    labels = list(dataset.class_names) if labels is None else labels
    check_labels(foreign, labels)
    champion = registry.find_champion()
    if champion is not None and champion.metadata.class_names != labels:
        raise InvalidInput(
            f"model {registry.model!r} predicts {', '.join(champion.metadata.class_names)}; "
            f"this one predicts {', '.join(labels)}. To fix this, register it as another "
            "model: python -m core --model-name NAME register ...")
    return foreign, in_output_order(dataset, labels), champion


def unpack_saved_model(data: bytes, name: str, folder: Path) -> Path:
    """The SavedModel folder inside the zip file ``data`` (the dashboard's upload),
    unpacked into ``folder/<name without .zip>``; its ``saved_model.pb`` may be at the top
    or in one folder. Refused: not a zip, no or several SavedModels, an entry that would
    land outside the folder, more than MAX_UNPACKED_BYTES unpacked (a zip bomb)."""
    import shutil
    import zipfile

    target = Path(folder) / (Path(name).stem or "saved_model")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise InvalidInput(f"{name} is not a readable zip file. To fix this, zip the "
                           "SavedModel folder (e.g. 'cd export && zip -r model.zip 1').") from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise InvalidInput(f"{name} holds {len(entries):,} entries, more than a SavedModel "
                           f"has ({MAX_ZIP_ENTRIES:,} at most). To fix this, zip only the "
                           "SavedModel folder.")
    models = [e.filename for e in entries if e.filename.split("/")[-1] == "saved_model.pb"]
    if len(models) != 1 or models[0].count("/") > 1:
        found = (f"{len(models)} saved_model.pb files" if len(models) != 1
                 else f"its saved_model.pb two or more folders deep ({models[0]})")
        raise InvalidInput(f"{name} holds {found}. To fix this, zip one SavedModel folder "
                           "(saved_model.pb at the top, or in one folder).")
    root = models[0].rpartition("/")[0]
    written = 0
    for entry in entries:
        parts = Path(entry.filename).parts
        if entry.filename.startswith("/") or ".." in parts or (entry.external_attr >> 28) == 0xA:
            raise InvalidInput(f"{name} has an entry {entry.filename!r} that would land "
                               "outside the folder. To fix this, zip the SavedModel folder "
                               "as it is.")
        if entry.is_dir() or (root and parts[0] != root):
            continue
        destination = target.joinpath(*(parts[1:] if root else parts))
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(entry) as source, open(destination, "wb") as out:
            while block := source.read(1 << 20):
                written += len(block)
                if written > MAX_UNPACKED_BYTES:
                    raise InvalidInput(f"{name} unpacks to over {MAX_UNPACKED_BYTES / 2**30:.0f} "
                                       "GiB. To fix this, register the folder from the "
                                       "command line: python -m core register FOLDER ...")
                out.write(block)
    if not (target / "saved_model.pb").is_file():  # e.g. an empty archive member
        shutil.rmtree(target, ignore_errors=True)
        raise InvalidInput(f"{name} holds no readable saved_model.pb. To fix this, zip the "
                           "SavedModel folder again.")
    return target


def serving_agreement(folder: Path, model: Any, images: Images, spec: InputSpec) -> float:
    """How often the TFLite model written in ``folder`` picks the class the Keras
    ``model`` picks on the uint8 ``images`` (read a batch at a time)."""
    from core.ml.evaluation import inference_batch
    from core.ml.exports import TFLITE_FILE, export_runner

    run = export_runner("tflite", folder / TFLITE_FILE)
    same = []
    for batch in batches(images, inference_batch(spec)):
        inputs = preprocess_batch(batch, spec)
        expected = np.asarray(model.predict(inputs, verbose=0)).argmax(axis=1)
        same.append(run(inputs).argmax(axis=1) == expected)
    agreement = round(float(np.mean(np.concatenate(same))), 5)
    return agreement

