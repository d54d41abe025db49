"""Training parameters and progress reports: plain data, importable without TensorFlow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

ARCHITECTURES = ("small_cnn", "mobilenet_v2")  # built by core.models

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
