"""The composition root: settings choose backends; unknown ones are refused with the choices."""

import pytest

from core.app.backends import ARTIFACT_STORES, DATABASES, JOB_EXECUTORS, build_backends
from core.config import load_config
from core.errors import InvalidInput
from core.jobs.executor import LocalProcessExecutor
from core.registry.artifacts import LocalArtifactStore


def test_the_embedded_defaults_live_in_the_registry_folder(tmp_path):
    config = load_config({}).with_overrides(registry_dir=tmp_path / "registry")
    backends = build_backends(config)
    assert backends.database.path == (tmp_path / "registry" / "registry.db").resolve()
    assert isinstance(backends.artifacts, LocalArtifactStore)
    assert backends.artifacts.root == (tmp_path / "registry").resolve()
    assert isinstance(backends.jobs.executor, LocalProcessExecutor)
    assert not (tmp_path / "registry").exists()  # building connects to nothing


def test_settings_come_from_the_environment(tmp_path):
    config = load_config({"DATABASE_URL": f"sqlite:///{tmp_path}/other.db",
                          "ARTIFACTS_URL": (tmp_path / "files").as_uri(),
                          "JOB_EXECUTOR": "local"})
    backends = build_backends(config)
    assert backends.database.path == tmp_path / "other.db"
    assert backends.artifacts.root == tmp_path / "files"


@pytest.mark.parametrize("setting, value, known", [
    ("DATABASE_URL", "mysql://db.example/registry", DATABASES),
    ("ARTIFACTS_URL", "gs://bucket/prefix", ARTIFACT_STORES),
    ("JOB_EXECUTOR", "slurm://head:6817", JOB_EXECUTORS),
])
def test_an_unknown_backend_is_refused_with_the_known_ones(setting, value, known):
    with pytest.raises(InvalidInput) as error:
        build_backends(load_config({setting: value}))
    message = str(error.value)
    assert setting in message and value in message and "To fix this" in message
    assert all(name in message for name in known)


def test_an_artifacts_url_naming_another_host_is_refused():
    with pytest.raises(InvalidInput, match="names a host"):
        build_backends(load_config({"ARTIFACTS_URL": "file://server/share"}))
