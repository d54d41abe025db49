"""Plain records of the registry: hold data, do no IO."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

STATUSES = ("candidate", "champion", "rejected", "archived")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version."""

    model: str
    version: int
    status: str
    created_at: str
    created_by: str
    parent: int | None
    metadata: dict  # the version's metadata.json

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    def summary(self) -> dict:
        """The JSON shape of ``python -m core versions --json``."""
        metrics = self.metadata.get("metrics", {})
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "parent": self.parent,
            "architecture": self.metadata.get("architecture"),
            "dataset": self.metadata.get("dataset", {}).get("name"),
            "metrics": {
                "val_accuracy": metrics.get("validation", {}).get("accuracy"),
                "test_accuracy": metrics.get("test", {}).get("accuracy"),
                "val_macro_f1": metrics.get("validation", {}).get("macro_f1"),
                "test_macro_f1": metrics.get("test", {}).get("macro_f1"),
                "test_ece": metrics.get("test", {}).get("ece"),
            },
        }


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
