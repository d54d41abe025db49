"""Shared fixtures: a fixed clock, temporary registries and one small trained model."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each of the suite's processes (and every process it starts: workers, servers) runs
    # TensorFlow and oneDNN on one thread: two processes each spinning two threads' pools
    # on two cores wasted ~18 % of the TensorFlow-heavy tests' time (measured with
    # tests/ml, drift quality and registration: 107.5 s against 87.8 s).
    for threads in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(threads, "1")
# The tests' alert receivers (tests/monitoring/receivers.py) listen on loopback, which
# channels refuse by default: the tests' registries, and every process they start, allow it.
TEST_ENVIRONMENT = {"ALERT_ALLOW_PRIVATE_TARGETS": "1"}
os.environ.update(TEST_ENVIRONMENT)

from core.app import Backends, add_user, bootstrap, build_backends  # noqa: E402
from core.config import Config, load_config  # noqa: E402
from core.registry.records import DatasetRecord, VersionMetadata  # noqa: E402
from tests.registry_files import checkpoint, copy_registry  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# The shared model: small enough to train in seconds, good enough to be mostly right.
TRAIN_LIMIT, EVAL_LIMIT, EPOCHS = 6000, 2000, 2
# The people of the shared registry, one per role (two reviewers, for separation of duties).
PASSWORD = "correct horse battery"
USERS = {"ada": "admin", "olga": "operator", "rita": "reviewer", "rex": "reviewer",
         "vic": "viewer"}


def add_users(config: Config, users: dict[str, str] = USERS) -> None:
    """Adds ``users`` (name -> role) with PASSWORD; the first becomes the setup admin."""
    backends = build_backends(config)
    for name, role in users.items():
        add_user(backends, actor="ada", name=name, role=role, password=PASSWORD, now=FIXED_NOW)


def sample_metadata(**changes) -> VersionMetadata:
    """Metadata of a made-up version, for registry tests that register files by hand."""
    values = dict(
        class_names=["a", "b"], input_spec={"height": 28, "width": 28, "channels": 1},
        architecture="small_cnn",
        dataset=DatasetRecord(name="fashion_mnist", fingerprint="sha256:0", split_spec="test",
                              sizes={"train": 2, "validation": 2, "test": 2}),
        hyperparameters={"seed": 42}, epochs=1, training_seconds=1.0, history=[],
        metrics={"test": {"accuracy": 0.5}}, environment={}, created_by="tester")
    return VersionMetadata(**(values | changes))


# The databases every contract suite runs against (see ``on_database``).
DATABASE_BACKENDS = ("sqlite", "postgresql")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """For ``make test``'s two processes (pytest-xdist, ``--dist loadgroup``): tests go
    one by one to whichever process is free, except that every test using the Ray head
    runs in one process (stopping a head stops every head), the browser tests in one
    (they share a dashboard), and a module with a module fixture in one (the fixture is
    built once)."""
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif item.nodeid.startswith("tests/e2e/"):
            # One dashboard for every e2e module, changed in a documented order.
            item.add_marker(pytest.mark.xdist_group("e2e"))
        elif any(definition.scope == "module"
                 for definitions in item._fixtureinfo.name2fixturedefs.values()
                 for definition in definitions):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def shared(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A read-only registry built once per test run, also when the run is split over
    processes: the first to ask builds it (``build(folder)``) under a lock, the others
    wait for it and use the same folder. ``TEST_SHARED_DIR`` names a folder shared by
    several runs (``make test``'s two); the run's own temporary folder otherwise."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("TEST_SHARED_DIR"):
        base = Path(os.environ["TEST_SHARED_DIR"])
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder every worker's own temporary folder is in
    folder, done = base / f"shared-{name}", base / f"shared-{name}.done"
    with FileLock(str(base / f"shared-{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder / "registry")
            checkpoint(folder / "registry")
            done.touch()
    return folder / "registry"


def pytest_generate_tests(metafunc):
    """A module marked ``every_database`` runs each test whose registry comes from
    ``config``, ``registry_copy`` or ``candidate_copy`` on every database."""
    if (metafunc.definition.get_closest_marker("every_database")
            and "database_backend" in metafunc.fixturenames):
        metafunc.parametrize("database_backend", DATABASE_BACKENDS)


@pytest.fixture
def database_backend() -> str:
    """The database of the registry fixtures: SQLite unless the module is marked
    ``every_database``."""
    return "sqlite"


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server for the session (initdb + pg_ctl, a free port)."""
    from tests.servers import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3():
    """moto's S3 stand-in for the session; its endpoint and made-up credentials are set
    in this process's environment (boto3 reads them, and child processes inherit them)."""
    from tests.servers import MotoServer

    with MotoServer() as server:
        saved = {name: os.environ.get(name) for name in server.environment}
        os.environ.update(server.environment)
        yield server
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def mlflow_server():
    """A real ``mlflow server`` (SQLite backend, local artifacts) for the session."""
    from tests.servers import MlflowServer

    with MlflowServer() as server:
        yield server


@pytest.fixture(scope="session")
def ray_head(s3):
    """A local Ray head node (``ray start --head``, CPU only) for the session. Like a
    real cluster's nodes, it has the bucket's settings and credentials (from ``s3``)."""
    from tests.servers import RayHead

    with RayHead() as head:
        yield head


def new_bucket(request) -> str:
    """An empty bucket on the session's S3 stand-in; returns its s3:// URL (with a prefix)."""
    name = f"b{uuid.uuid4().hex[:16]}"
    request.getfixturevalue("s3").create_bucket(name)
    return f"s3://{name}/registry"


def on_database(config: Config, backend: str, request) -> Config:
    """``config``'s registry on ``backend``: as it is for SQLite; for PostgreSQL, in a new
    database of the session's server, its rows copied there by ``migrate`` (the files
    stay in the registry folder)."""
    if backend == "sqlite":
        return config
    if backend != "postgresql":
        raise ValueError(backend)
    from core.app import migrate_registry

    url = request.getfixturevalue("postgres").create_database(f"t{uuid.uuid4().hex[:16]}")
    if (config.registry_dir / "registry.db").exists():
        migrate_registry(build_backends(config), to_url=url)
    return config.with_overrides(database_url=url)


def environment_of(config: Config) -> dict[str, str]:
    """The environment a child process needs to open ``config``'s registry."""
    return config.child_environment() | {"PYTHONPATH": str(PROJECT_ROOT)}


def backends_of(config: Config) -> Backends:
    """Fresh backends (and model cache) for a test's configuration."""
    return build_backends(config)


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture
def config(tmp_path, database_backend, request) -> Config:
    """A configuration pointing at an empty registry in a temporary folder."""
    config = load_config(TEST_ENVIRONMENT).with_overrides(registry_dir=tmp_path / "registry")
    return on_database(config, database_backend, request)


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory) -> Path:
    """A registry holding one small_cnn trained briefly on real Fashion-MNIST, and USERS.

    Session-scoped and read-only: tests that change a registry copy it first
    (see ``registry_copy``).
    """
    def build(root: Path) -> None:
        config = load_config({}).with_overrides(registry_dir=root)
        bootstrap(build_backends(config), actor="tester", now=FIXED_NOW, epochs=EPOCHS,
                  train_limit=TRAIN_LIMIT, eval_limit=EVAL_LIMIT)
        add_users(config)

    return shared(tmp_path_factory, "trained", build)


@pytest.fixture(scope="session")
def exported_registry(trained_registry, tmp_path_factory) -> Path:
    """The trained registry with version 1's portable exports built by an operator through
    the CLI (whose --json output must be the table alone). Read-only."""
    from tests.cli_runner import run_cli_process

    def build(root: Path) -> None:
        copy_registry(trained_registry, root)
        built = run_cli_process(root, "exports", "1", "--json", "--actor", "olga")
        assert built.returncode == 0, built.stderr
        json.loads(built.stdout)  # nothing but the JSON on stdout, though TFLite's C++ prints

    return shared(tmp_path_factory, "exported", build)


@pytest.fixture
def trained_config(trained_registry, tmp_path) -> Config:
    """The trained registry for a test that only reads it: a copy all the same, because
    opening its SQLite database makes (and removes) the -wal and -shm files beside it, and
    another process copying the shared folder at that moment found a file gone."""
    root = tmp_path / "trained"
    copy_registry(trained_registry, root)
    return load_config(TEST_ENVIRONMENT).with_overrides(registry_dir=root)


@pytest.fixture
def registry_copy(trained_registry, tmp_path, database_backend, request) -> Config:
    """A private, writable copy of the trained registry."""
    root = tmp_path / "registry"
    copy_registry(trained_registry, root)
    return on_database(load_config(TEST_ENVIRONMENT).with_overrides(registry_dir=root),
                       database_backend, request)


def salt_noise(seed: int = 0):
    """A black 28x28 image with 10 % white pixels, nothing like a garment: the OOD
    detector flags such images (200 of 200 on the test model, 97 % on the production one),
    where plain uniform noise is flagged less often (its dark pixels look like background)."""
    rng = np.random.default_rng(seed)
    return ((rng.random((28, 28, 1)) < 0.1) * 255).astype(np.uint8)


def fashion_test_images(n: int):
    """The first ``n`` real Fashion-MNIST test images (uint8 [n, 28, 28, 1]) and labels."""
    from core.ml.data import read_idx

    directory = load_config({}).fashion_mnist_dir
    images = read_idx(directory / "t10k-images-idx3-ubyte.gz")[:n, :, :, None]
    labels = read_idx(directory / "t10k-labels-idx1-ubyte.gz")[:n].astype(int)
    return images, labels


@pytest.fixture(scope="session")
def candidate_registry(trained_registry, tmp_path_factory) -> Path:
    """The trained registry after brightness traffic and one retraining by olga (operator):
    v1 champion, v2 candidate compared with v1. Read-only, like ``trained_registry``."""
    from core.app import RetrainRequest, retrain, simulate

    def build(root: Path) -> None:
        copy_registry(trained_registry, root)
        backends = build_backends(load_config({}).with_overrides(registry_dir=root))
        simulate(backends, actor="olga", scenario="brightness", n=300,
                 clock=lambda: FIXED_NOW)
        retrain(backends, RetrainRequest(epochs=1, original_images=3000,
                                         augmented_per_scenario=1000),
                actor="olga", now=FIXED_NOW)

    return shared(tmp_path_factory, "candidate", build)


@pytest.fixture
def candidate_copy(candidate_registry, tmp_path, database_backend, request) -> Config:
    """A private, writable copy of ``candidate_registry``."""
    root = tmp_path / "registry"
    copy_registry(candidate_registry, root)
    return on_database(load_config(TEST_ENVIRONMENT).with_overrides(registry_dir=root),
                       database_backend, request)
