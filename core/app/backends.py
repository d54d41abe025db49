"""The composition root: builds every backend from the configuration, once.

This is the only module that names concrete backends. Each is chosen by one
setting, in the style of MLflow's store registry: the URL's scheme (or the
executor's name) picks a builder from a table; an unknown one gives one error
listing the known ones. A new backend is a new class, passing its seam's
contract suite, plus one line in a table here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

from core.app.uploads import ImageDecoder
from core.audit import AuditLog
from core.config import PROJECT_ROOT, Config
from core.errors import InvalidInput
from core.governance.access import AccessControl
from core.governance.keys import KeyStore
from core.governance.throttle import SignInThrottle
from core.governance.traffic import TrafficStore
from core.governance.users import UserStore
from core.jobs.executor import JobExecutor, LocalProcessExecutor, RayJobExecutor
from core.jobs.queue import JobQueue
from core.jobs.records import JobStore
from core.ml.predictor import ModelCache
from core.monitoring.alerts import AlertStore
from core.monitoring.logged_images import LoggedImages
from core.monitoring.prediction_log import PredictionLog
from core.monitoring.snapshots import SnapshotStore
from core.monitoring.sql_prediction_log import SQLPredictionLog
from core.registry.artifacts import ArtifactStore, LocalArtifactStore
from core.registry.catalog import Catalog, SQLCatalog
from core.registry.registry import Registry
from core.registry.s3_artifacts import S3ArtifactStore
from core.storage.database import Database, PostgresDatabase, SQLiteDatabase
from core.storage.secrets import SecretBox


def _file_artifacts(url: str, config: Config) -> ArtifactStore:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise InvalidInput(f"ARTIFACTS_URL {url!r} names a host. To fix this, use "
                           "file:///absolute/path (a folder on this machine).")
    return LocalArtifactStore(Path(unquote(parsed.path)))


def _s3_artifacts(url: str, config: Config) -> ArtifactStore:
    # The read-through cache of downloaded versions lives in the registry folder.
    return S3ArtifactStore(url, config.registry_dir / "cache")


def _local_executor(config: Config) -> JobExecutor:
    return LocalProcessExecutor(config.registry_dir, config.model_name, PROJECT_ROOT,
                                config.registry_dir / "jobs", config.child_environment())


def _ray_executor(config: Config) -> JobExecutor:
    host = urlparse(config.job_executor).netloc
    if not host:
        raise InvalidInput(f"JOB_EXECUTOR {config.job_executor!r} names no host. To fix "
                           "this, use ray://HOST:PORT (the Ray dashboard's port, 8265).")
    return RayJobExecutor(f"http://{host}", config.registry_settings(), config.model_name,
                          PROJECT_ROOT)


DATABASES: dict[str, Callable[[str, str], Database]] = {"sqlite": SQLiteDatabase,
                                                       "postgresql": PostgresDatabase}
ARTIFACT_STORES: dict[str, Callable[[str, Config], ArtifactStore]] = {"file": _file_artifacts,
                                                                      "s3": _s3_artifacts}
JOB_EXECUTORS: dict[str, Callable[[Config], JobExecutor]] = {"local": _local_executor,
                                                             "ray": _ray_executor}


T = TypeVar("T")


def _choose(table: dict[str, T], key: str, setting: str, value: str) -> T:
    if key not in table:
        raise InvalidInput(f"{setting} {value!r} is not supported (known: "
                           f"{', '.join(sorted(table))}). To fix this, set {setting} to one "
                           "of those, or leave it unset for the embedded default.")
    return table[key]


@dataclass(frozen=True)
class Backends:
    """Every backend the application uses, built once per process by ``build_backends``.

    Attributes:
        config: the settings they were built from.
        database: the one database of the catalog, audit log, users, predictions and jobs.
        models: loaded models, per process (each version is loaded once).
        decoder: decodes uploads within the process's pixel budget.
    """

    config: Config
    database: Database
    audit_log: AuditLog
    users: UserStore
    keys: KeyStore
    access: AccessControl
    traffic: TrafficStore
    catalog: Catalog
    artifacts: ArtifactStore
    registry: Registry
    prediction_log: PredictionLog
    snapshots: SnapshotStore
    alerts: AlertStore
    jobs: JobQueue
    models: ModelCache
    decoder: ImageDecoder

    @property
    def model(self) -> str:
        return self.config.model_name

    def close(self) -> None:
        """Lets go of the database's connections and the decoder's processes: a front end
        that is done with them (a CLI command; a test running many in one process)."""
        self.decoder.close()
        self.database.dispose()


def open_database(url: str, audit_key: str = "") -> Database:
    """The database a ``DATABASE_URL`` names (connects to nothing yet), its audit chain
    keyed with ``audit_key`` (AUDIT_KEY)."""
    return _choose(DATABASES, urlparse(url).scheme.split("+")[0], "DATABASE_URL", url)(
        url, audit_key)


def open_artifact_store(url: str, config: Config) -> ArtifactStore:
    """The artifact store an ``ARTIFACTS_URL`` names (connects to nothing yet)."""
    return _choose(ARTIFACT_STORES, urlparse(url).scheme, "ARTIFACTS_URL", url)(url, config)


def build_backends(config: Config) -> Backends:
    """Builds every backend named by ``config``; connects to nothing until first used."""
    database = open_database(config.effective_database_url, config.audit_key)
    artifacts = open_artifact_store(config.effective_artifacts_url, config)
    return _for_model(config, database, artifacts, ModelCache(artifacts), ImageDecoder(config))


def backends_for_model(backends: Backends, model: str) -> Backends:
    """``backends`` working on another model of the same registry: the same database,
    artifact store, loaded models and decoding budget; that model's stores. (A server
    process serving every model.)"""
    if model == backends.model:
        return backends
    return _for_model(backends.config.with_overrides(model_name=model), backends.database,
                      backends.artifacts, backends.models, backends.decoder)


def model_names(backends: Backends) -> list[str]:
    """Every model of the registry (the configured one too, even before it has a
    version), by name."""
    return sorted({backends.model, *backends.catalog.list_models()})


def every_model(backends: Backends) -> list[Backends]:
    """``backends`` for each of ``model_names``: what the monitor covers."""
    return [backends_for_model(backends, name) for name in model_names(backends)]


def _for_model(config: Config, database: Database, artifacts: ArtifactStore,
               models: ModelCache, decoder: ImageDecoder) -> Backends:
    executor = _choose(JOB_EXECUTORS, config.job_executor.split("://")[0], "JOB_EXECUTOR",
                       config.job_executor)(config)
    audit_log = AuditLog(database)
    users = UserStore(database, config.model_name)
    keys = KeyStore(database, config.model_name)
    catalog = SQLCatalog(database, audit_log)
    registry = Registry(catalog, artifacts, config.model_name)
    return Backends(
        config=config, database=database, audit_log=audit_log, users=users, keys=keys,
        access=AccessControl(users, keys, audit_log, config.model_name, config.anonymous_role,
                             SignInThrottle(database)),
        traffic=TrafficStore(database, config.model_name),
        catalog=catalog, artifacts=artifacts, registry=registry,
        prediction_log=SQLPredictionLog(database, LoggedImages(artifacts),
                                        config.log_write_wait_seconds),
        snapshots=SnapshotStore(database, config.model_name),
        alerts=AlertStore.open(database, config.model_name, SecretBox(config.secrets_key)),
        jobs=JobQueue(JobStore(database, config.model_name), executor, registry),
        models=models, decoder=decoder)
