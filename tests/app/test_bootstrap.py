"""Bootstrap end to end on real Fashion-MNIST (small subset)."""

import json

import pytest

from core.app import bootstrap
from core.errors import DatasetError, InvalidInput
from core.registry.catalog import INITIAL_BASELINE_NOTE
from tests.conftest import EPOCHS, EVAL_LIMIT, FIXED_NOW, TRAIN_LIMIT, backends_of

pytestmark = pytest.mark.slow


def test_bootstrap_registers_a_complete_champion(trained_config):
    registry = backends_of(trained_config).registry
    (version,) = registry.list_versions()
    assert (version.version, version.status, version.parent) == (1, "champion", None)
    assert version.created_by == "tester"
    assert version.created_at == FIXED_NOW.isoformat()
    meta = version.metadata
    assert meta.dataset.name == "fashion_mnist"
    assert meta.dataset.fingerprint.startswith("sha256:")
    assert "validation=5000 of train (seed 42)" in meta.dataset.split_spec
    assert meta.dataset.sizes == {"train": TRAIN_LIMIT, "validation": EVAL_LIMIT,
                                        "test": EVAL_LIMIT}
    assert meta.class_names[0] == "T-shirt/top" and len(meta.class_names) == 10
    assert meta.architecture == "small_cnn"
    assert meta.hyperparameters["epochs"] == EPOCHS == meta.epochs
    assert meta.training_seconds > 0
    assert len(meta.history) == EPOCHS
    assert meta.recipe is None and meta.dataset.retraining_data is None
    for split in ("validation", "test"):
        metrics = meta.metrics[split]
        assert metrics["n"] == EVAL_LIMIT
        assert 0.6 < metrics["accuracy"] <= 1
        assert set(metrics) >= {"accuracy", "macro_f1", "ece", "per_class", "confusion_matrix"}
        assert sum(map(sum, metrics["confusion_matrix"])) == EVAL_LIMIT
    environment = meta.environment
    assert environment["libraries"]["tensorflow"] and environment["libraries"]["ai_edge_litert"]
    assert environment["python"]
    assert "git_commit" in environment
    first = registry.status_history()[0]
    assert (first.reason, first.actor, first.role) == (INITIAL_BASELINE_NOTE,
                                                               "tester", "setup")


def test_bootstrap_writes_every_export(trained_config):
    registry = backends_of(trained_config).registry
    folder = registry.files(1)
    assert (folder / "model.keras").is_file()
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "model.tflite").stat().st_size > 10_000
    assert json.loads((folder / "metadata.json").read_text())["version"] == 1


def test_bootstrap_does_nothing_when_a_version_exists(registry_copy):
    result = bootstrap(backends_of(registry_copy), actor="someone", now=FIXED_NOW, epochs=1,
                       train_limit=10)
    assert result.created is False and result.version.version == 1
    assert len(backends_of(registry_copy).registry.list_versions()) == 1


def test_bad_bootstrap_arguments_write_nothing(config):
    with pytest.raises(InvalidInput, match="unknown model 'resnet'"):
        bootstrap(backends_of(config), actor="a", now=FIXED_NOW, architecture="resnet")
    with pytest.raises(InvalidInput, match="epochs must be between 1 and"):
        bootstrap(backends_of(config), actor="a", now=FIXED_NOW, epochs=0)
    with pytest.raises(DatasetError, match="unknown dataset"):
        bootstrap(backends_of(config), actor="a", now=FIXED_NOW, dataset_spec="imagenet")
    assert not config.registry_dir.exists()
