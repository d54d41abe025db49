"""Plain records of the registry: hold data, do no IO."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from core.errors import NotAvailable


class VersionStatus(StrEnum):
    """Where a version is in its life (a plain string to JSON and the database)."""

    CANDIDATE = "candidate"
    CHAMPION = "champion"
    REJECTED = "rejected"
    ARCHIVED = "archived"


STATUSES = tuple(VersionStatus)


@dataclass(frozen=True)
class InputSpec:
    """The tensor shape a model takes: height x width x channels (1 or 3)."""

    height: int
    width: int
    channels: int

    def as_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "channels": self.channels}

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        return cls(int(data["height"]), int(data["width"]), int(data["channels"]))


@dataclass(frozen=True)
class DatasetRecord:
    """The data a version learned from, as its metadata records it."""

    name: str  # the dataset spec: fashion_mnist, tfds:NAME..., folder:PATH
    fingerprint: str
    split_spec: str
    sizes: dict[str, int]  # train, validation, test
    retraining_data: dict | None = None  # a retrained version's mix (counts per part)

    def as_dict(self) -> dict:
        values = asdict(self)
        if self.retraining_data is None:
            del values["retraining_data"]
        return values


@dataclass(frozen=True)
class Recipe:
    """How a retrained version was made from its parent."""

    kind: str  # fine-tune from the champion's weights, or the seed's reinitialized bug
    parent: int
    params: dict  # core.ml.params.RetrainParams as recorded
    include: list[str]  # the drift scenarios learned from
    use_feedback: bool
    job: int | None  # the job that ran it (recovery links a dead worker's job through it)


SAVED_MODEL_FORMAT = "saved_model"  # ``source["format"]`` of a version registered from one


@dataclass(frozen=True)
class VersionMetadata:
    """A version's ``metadata.json``: lineage, data, parameters, metrics, provenance.

    ``version``, ``created_at``, ``registered_as`` and ``registration_note`` are filled
    in when the version is registered.

    Attributes:
        input_spec: ``height``, ``width``, ``channels`` as stored (``spec``: as a record).
        metrics: per split (``validation``, ``test``): accuracy, macro_f1, ece,
            per_class, confusion_matrix, n.
        environment: git commit, Python, platform and library versions.
    """

    class_names: list[str]
    input_spec: dict
    architecture: str
    dataset: DatasetRecord
    hyperparameters: dict
    epochs: int
    training_seconds: float
    history: list[dict]
    metrics: dict
    environment: dict
    created_by: str
    parent: int | None = None
    recipe: Recipe | None = None
    version: int | None = None
    created_at: str | None = None
    registered_as: str | None = None
    registration_note: str | None = None
    # Each artifact's content hash ("sha256:<hex>") by its path in the version's folder,
    # recorded at registration; stores that download files check them.
    files: dict[str, str] | None = None
    # A model trained elsewhere: its file (name, format, sha256, Keras version), how it
    # takes pixels and gives scores, the embedding layer, the serving parity, the reason.
    source: dict | None = None

    @property
    def seed(self) -> int:
        return int(self.hyperparameters["seed"])

    def require_layers(self, what: str) -> None:
        """Raises NotAvailable for a version registered from a SavedModel; ``what``
        names the refused thing with its verb ("heatmaps are", "retraining is")."""
        if not self.has_layers:
            raise NotAvailable(
                f"{what} not available for this model format: version {self.version} was "
                "registered from a TF SavedModel, which has no layers to look inside. To fix "
                "this, register the model from its .keras or .h5 file "
                "(model.save('model.keras')).")

    @property
    def serving_runtime(self) -> str:
        """``tflite`` (every model trained here, and imported ones whose conversion agrees
        with them), or ``tensorflow``: an imported model whose TFLite conversion changed
        its answers is served from its SavedModel by TensorFlow."""
        return (self.source or {}).get("serving_runtime", "tflite")

    @property
    def has_layers(self) -> bool:
        """False for a version registered from a TF SavedModel: a serving signature with
        no layers to look inside (no heatmaps, OOD scores or fine-tuning)."""
        return (self.source or {}).get("format") != SAVED_MODEL_FORMAT

    @property
    def spec(self) -> InputSpec:
        """The input shape the version takes."""
        return InputSpec.from_dict(self.input_spec)

    def metric(self, split: str, name: str) -> float | None:
        """One metric of a split (None when not recorded)."""
        return self.metrics.get(split, {}).get(name)

    def registered(self, *, version: int, created_at: str, created_by: str,
                   parent: int | None, status: str, note: str) -> "VersionMetadata":
        return replace(self, version=version, created_at=created_at, created_by=created_by,
                       parent=parent, registered_as=status, registration_note=note)

    def as_dict(self) -> dict:
        values = asdict(self) | {"dataset": self.dataset.as_dict()}
        for optional in ("recipe", "files", "source"):  # absent from versions without them
            if values[optional] is None:
                del values[optional]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "VersionMetadata":
        recipe = values.get("recipe")
        return cls(**(values | {"dataset": DatasetRecord(**values["dataset"]),
                                "recipe": Recipe(**recipe) if recipe else None}))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version."""

    model: str
    version: int
    status: VersionStatus
    created_at: str
    created_by: str
    parent: int | None
    metadata: VersionMetadata

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.class_names)

    def summary(self) -> dict:
        """The JSON shape of ``python -m core versions --json``."""
        meta = self.metadata
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "parent": self.parent,
            "architecture": meta.architecture,
            "dataset": meta.dataset.name,
            "metrics": {
                "val_accuracy": meta.metric("validation", "accuracy"),
                "test_accuracy": meta.metric("test", "accuracy"),
                "val_macro_f1": meta.metric("validation", "macro_f1"),
                "test_macro_f1": meta.metric("test", "macro_f1"),
                "test_ece": meta.metric("test", "ece"),
            },
        }


def find_champion_in(versions: Iterable[ModelVersion]) -> ModelVersion | None:
    """The champion among ``versions`` (None: none is): the one lookup of it."""
    return next((v for v in versions if v.status == "champion"), None)


@dataclass(frozen=True)
class StatusChange:
    """One change of a version's status, as the audit log recorded it."""

    version: int
    at: str
    actor: str
    role: str
    action: str
    from_status: str | None
    to_status: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HoldoutComparison:
    """Two versions on one holdout. Per-version values are keyed by the version number as
    text, as they are in the stored JSON.

    Attributes:
        accuracy_diff: candidate minus baseline; ``accuracy_diff_ci`` its bootstrap 95 % CI.
        mcnemar_p: McNemar's exact test on the paired answers.
        per_class_f1_delta: class name -> F1 change (candidate minus baseline).
    """

    n: int
    accuracy: dict[str, float]
    macro_f1: dict[str, float]
    ece: dict[str, float]
    confusion_matrix: dict[str, list[list[int]]]
    accuracy_diff: float
    accuracy_diff_ci: tuple[float, float]
    mcnemar_p: float
    per_class_f1_delta: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self) | {"accuracy_diff_ci": list(self.accuracy_diff_ci)}

    @classmethod
    def from_dict(cls, values: dict) -> "HoldoutComparison":
        return cls(**(values | {"accuracy_diff_ci": tuple(values["accuracy_diff_ci"])}))


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateAdvice:
    """The promotion gate's advice for the human who decides (never a decision itself)."""

    recommendation: str  # promote, reject or review
    reasons: list[str]
    checks: list[GateCheck]
    policy: dict

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GateAdvice":
        return cls(values["recommendation"], list(values["reasons"]),
                   [GateCheck(**check) for check in values["checks"]], dict(values["policy"]))


@dataclass(frozen=True)
class Comparison:
    """A baseline and a candidate on the same holdouts, with the gate's advice once given.

    Stored, printed by ``compare --json`` and kept in audit entries as one flat JSON
    object: ``baseline``, ``candidate``, ``holdouts`` and, once advised,
    ``recommendation``, ``reasons``, ``checks``, ``policy`` and ``at``.
    """

    baseline: int
    candidate: int
    holdouts: dict[str, HoldoutComparison]
    advice: GateAdvice | None = None
    at: str | None = None

    @property
    def recommendation(self) -> str | None:
        return self.advice.recommendation if self.advice else None

    def advised(self, advice: GateAdvice, at: str) -> "Comparison":
        return replace(self, advice=advice, at=at)

    def as_dict(self) -> dict:
        values = {"baseline": self.baseline, "candidate": self.candidate,
                  "holdouts": {name: h.as_dict() for name, h in self.holdouts.items()}}
        if self.advice is not None:
            values |= self.advice.as_dict() | {"at": self.at}
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "Comparison":
        advice = GateAdvice.from_dict(values) if "recommendation" in values else None
        return cls(values["baseline"], values["candidate"],
                   {name: HoldoutComparison.from_dict(h)
                    for name, h in values["holdouts"].items()}, advice, values.get("at"))
