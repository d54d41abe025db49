"""Training and retraining parameters, and progress reports: plain data, no TensorFlow.

``RetrainRequest`` is the one place for the retraining request's defaults and
limits: the CLI's flags, the Retrain page's form and the job row all use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from core.errors import InvalidInput

ARCHITECTURES = ("small_cnn", "mobilenet_v2")  # built by core.ml.models

@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters recorded with every version."""

    architecture: str = "small_cnn"
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 42
    weights: str | None = "imagenet"  # mobilenet_v2 only

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """One progress report: after each batch (``step``) and at each epoch end (``logs``)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    logs: dict = field(default_factory=dict)
    epoch_done: bool = False


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RetrainParams:
    """The recipe, recorded in the candidate's metadata.

    Attributes:
        epochs: passes over the combined data.
        learning_rate: lower than from scratch: we adjust, not relearn.
        batch_size: images per step.
        original_images: how many original training images to keep in the mix.
        augmented_per_scenario: training images copied with each observed drift.
        logged_repeats: how often each logged (drift or feedback) image is repeated.
        seed: for sampling, augmentation and shuffling.
        reinitialize: the seed notebook's bug (clone_model); only for tests.
    """

    epochs: int = 2
    learning_rate: float = 3e-4
    batch_size: int = 128
    original_images: int = 20_000
    augmented_per_scenario: int = 8_000
    logged_repeats: int = 4
    seed: int = 42
    reinitialize: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RetrainRequest:
    """What an operator asks of a retraining job; stored as-is in the job row.

    Attributes:
        include: drift scenarios whose logged samples (and matching augmentation)
            to learn from; None: every scenario seen in the champion's traffic.
        use_feedback: also learn from the images people labelled (corrections and the
            review queue).
        epochs, learning_rate, original_images, augmented_per_scenario, reinitialize:
            see ``RetrainParams`` (``reinitialize`` reproduces the seed notebook's bug, to
            show that the promotion gate catches it; no front end offers it).
    """

    MAX_EPOCHS = 200
    MAX_LEARNING_RATE = 1.0
    # Each image is held in memory while the job trains: the bound keeps one request from
    # taking the worker's memory (100,000 images of 224x224x3 float32 would be 60 GB).
    MAX_IMAGES = 100_000

    include: tuple[str, ...] | None = None
    use_feedback: bool = True
    epochs: int = RetrainParams.epochs
    learning_rate: float = RetrainParams.learning_rate
    original_images: int = RetrainParams.original_images
    augmented_per_scenario: int = RetrainParams.augmented_per_scenario
    reinitialize: bool = False

    @staticmethod
    def check_epochs(epochs: int) -> int:
        if not 1 <= epochs <= RetrainRequest.MAX_EPOCHS:
            raise InvalidInput(f"epochs must be between 1 and {RetrainRequest.MAX_EPOCHS}, got "
                               f"{epochs}. To fix this, pass e.g. --epochs 6.")
        return epochs

    def validate(self) -> "RetrainRequest":
        """Returns itself if every value is within its limits, else raises InvalidInput."""
        from core.ml.scenarios import get_scenario

        for name in self.include or ():
            get_scenario(name)
        self.check_epochs(self.epochs)
        if not 0 < self.learning_rate <= self.MAX_LEARNING_RATE:
            raise InvalidInput(f"learning rate must be in (0, {self.MAX_LEARNING_RATE:g}], got "
                               f"{self.learning_rate}. To fix this, pass e.g. "
                               "--learning-rate 0.0003.")
        for name in ("original_images", "augmented_per_scenario"):
            if not 0 <= getattr(self, name) <= self.MAX_IMAGES:
                raise InvalidInput(f"{name} must be between 0 and {self.MAX_IMAGES:,}, got "
                                   f"{getattr(self, name):,}. To fix this, pass e.g. "
                                   f"--{name.replace('_', '-')} 2000.")
        return self

    def params(self) -> RetrainParams:
        return RetrainParams(epochs=self.epochs, learning_rate=self.learning_rate,
                             original_images=self.original_images,
                             augmented_per_scenario=self.augmented_per_scenario,
                             reinitialize=self.reinitialize)

    def as_dict(self) -> dict:
        values = asdict(self)
        values["include"] = None if self.include is None else list(self.include)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "RetrainRequest":
        """A request from stored or given values; unknown names are refused."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvalidInput(f"unknown retraining parameter(s) {unknown}. To fix this, "
                               f"use: {', '.join(known)}.")
        include = values.get("include")
        return cls(**(values | {"include": None if include is None else tuple(include)}))
