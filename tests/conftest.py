"""Shared fixtures: a fixed clock, temporary registries and one small trained model."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.config import Config, load_config  # noqa: E402
from core.lifecycle import bootstrap  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
# The shared model: small enough to train in seconds, good enough to be mostly right.
TRAIN_LIMIT, EVAL_LIMIT, EPOCHS = 6000, 2000, 2


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture
def config(tmp_path) -> Config:
    """A configuration pointing at an empty registry in a temporary folder."""
    return load_config({}).with_overrides(registry_dir=tmp_path / "registry")


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory) -> Path:
    """A registry holding one small_cnn trained briefly on real Fashion-MNIST.

    Session-scoped and read-only: tests that change a registry copy it first
    (see ``registry_copy``).
    """
    root = tmp_path_factory.mktemp("trained") / "registry"
    config = load_config({}).with_overrides(registry_dir=root)
    bootstrap(config, actor="tester", now=FIXED_NOW, epochs=EPOCHS,
              train_limit=TRAIN_LIMIT, eval_limit=EVAL_LIMIT)
    return root


@pytest.fixture
def trained_config(trained_registry) -> Config:
    return load_config({}).with_overrides(registry_dir=trained_registry)


@pytest.fixture
def registry_copy(trained_registry, tmp_path) -> Config:
    """A private, writable copy of the trained registry."""
    root = tmp_path / "registry"
    shutil.copytree(trained_registry, root)
    return load_config({}).with_overrides(registry_dir=root)


def fashion_test_images(n: int):
    """The first ``n`` real Fashion-MNIST test images (uint8 [n, 28, 28, 1]) and labels."""
    from core.data import read_idx

    directory = load_config({}).fashion_mnist_dir
    images = read_idx(directory / "t10k-images-idx3-ubyte.gz")[:n, :, :, None]
    labels = read_idx(directory / "t10k-labels-idx1-ubyte.gz")[:n].astype(int)
    return images, labels
