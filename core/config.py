"""The one configuration object. Only this module reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    """Settings shared by the CLI and the dashboard.

    Attributes:
        registry_dir: Folder holding model versions and ``registry.db``
            (env ``MODEL_REGISTRY_DIR``; default ``model_registry/`` in the project).
        model_name: Name of the model inside the registry (env ``MODEL_NAME``).
        dataset: Default dataset spec for ``bootstrap`` (env ``DATASET``):
            ``fashion_mnist``, ``tfds:<name>[:<split spec>]`` or ``folder:<path>``.
        fashion_mnist_dir: Where Debian's ``dataset-fashion-mnist`` puts its IDX files
            (env ``FASHION_MNIST_DIR``).
        max_upload_bytes: Largest accepted upload (env ``MAX_UPLOAD_BYTES``); keep it in
            step with ``server.maxUploadSize`` in ``.streamlit/config.toml``.
        max_image_pixels: Largest accepted width x height of a decoded image
            (env ``MAX_IMAGE_PIXELS``); guards against decompression bombs.
        seed: Seed for splits, weight initialisation and shuffling (env ``SEED``).
    """

    registry_dir: Path = PROJECT_ROOT / "model_registry"
    model_name: str = "classifier"
    dataset: str = "fashion_mnist"
    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    seed: int = 42

    def with_overrides(self, **changes) -> "Config":
        """Returns a copy with the given non-None fields replaced."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_ENV_NAMES = {
    "registry_dir": "MODEL_REGISTRY_DIR",
    "model_name": "MODEL_NAME",
    "dataset": "DATASET",
    "fashion_mnist_dir": "FASHION_MNIST_DIR",
    "max_upload_bytes": "MAX_UPLOAD_BYTES",
    "max_image_pixels": "MAX_IMAGE_PIXELS",
    "seed": "SEED",
}


def load_config(environ: dict[str, str] | None = None) -> Config:
    """Builds the configuration from environment variables (defaults otherwise)."""
    environ = os.environ if environ is None else environ
    values = {}
    for field in fields(Config):
        raw = environ.get(_ENV_NAMES[field.name])
        if raw is None or raw == "":
            continue
        default = field.default
        if isinstance(default, Path):
            values[field.name] = Path(raw).expanduser()
        elif isinstance(default, int):
            values[field.name] = int(raw)
        else:
            values[field.name] = raw
    return Config(**values)
