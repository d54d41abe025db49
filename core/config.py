"""The one configuration object. Only this module reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.names import validate_model_name

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
        max_image_pixels: Largest accepted width x height of an image, read from its
            header before anything is decoded (env ``MAX_IMAGE_PIXELS``).
        max_request_pixels: The most pixels one request may decode, all its images
            together, counted at the scale they decode to (env ``MAX_REQUEST_PIXELS``;
            a JSON body counts one per byte). More: HTTP 413.
        max_pixels_in_flight: The most pixels one process decodes and holds at once for
            all its requests (env ``MAX_PIXELS_IN_FLIGHT``). A pixel takes 3-4 bytes
            decoded and up to ~16 while a WebP decoder works on it, so the default
            bounds decoding at ~800 MB a process. More: HTTP 503 with
            ``Retry-After`` from the API; a dashboard visitor waits a few seconds first.
        max_instances: The most instances one ``:predict`` request may carry (env
            ``MAX_INSTANCES``).
        seed: Seed for splits, weight initialisation and shuffling (env ``SEED``).
        anonymous_role: The role of whoever has not signed in (env ``ANONYMOUS_ROLE``):
            ``viewer`` lets a demo audience predict without an account; ``none``
            requires signing in for everything.
        separation_of_duties: Whether whoever submitted the retraining job that
            produced a candidate is barred from promoting it (env
            ``SEPARATION_OF_DUTIES``: 1 or 0).
        database_url: The database of the catalog, audit log, users, prediction log and
            jobs (env ``DATABASE_URL``; empty: ``sqlite:///<registry_dir>/registry.db``).
        artifacts_url: Where versions' files live (env ``ARTIFACTS_URL``; empty:
            ``file://<registry_dir>``).
        job_executor: Where training jobs run (env ``JOB_EXECUTOR``): ``local``, a worker
            process on this machine; ``ray://HOST:PORT``, a Ray cluster's job server
            (PORT: its dashboard port, 8265 by default).
        job_runner: Set by an executor for the worker it starts (env ``JOB_RUNNER``),
            e.g. ``ray:<submission id>``; recorded with the job the worker claims.
        log_batch_rows: The most prediction-log rows the serving API commits in one
            transaction (env ``LOG_BATCH_ROWS``).
        log_queue_rows: The most prediction-log rows an API process holds waiting for
            their commit (env ``LOG_QUEUE_ROWS``); when the database cannot keep up,
            further requests are answered 503 instead of piling up in memory.
        log_write_wait_seconds: How long a prediction-log write waits for another
            writer's lock on the database before its request is answered 503 (env
            ``LOG_WRITE_WAIT_SECONDS``); other writes wait up to a minute.
        log_batch_ms: How long the API's log writer waits for more rows once it has one,
            in milliseconds (env ``LOG_BATCH_MS``); a request waits for its row's commit.
            0: a commit takes the rows queued while the previous one ran (the prediction
            batches already group requests; a wait only added latency: 726 -> 851 req/s
            at concurrency 8 without it).
        batching: ``auto`` (default): requests ready together are predicted as one batch
            for a model where a batch costs less per image, measured when a server loads
            it; ``on``: for every model; ``off``: never (env ``BATCHING``).
        batch_wait_ms: How long the API waits, at most, for requests still on their way
            (reading, decoding) to predict them in one batch with those waiting (env
            ``BATCH_WAIT_MS``; 0: only requests that are ready together). A request
            alone never waits.
        batch_max_instances: The most instances one prediction batch holds (env
            ``BATCH_MAX_INSTANCES``).
        refresh_seconds: How often each API process re-reads the champion, the traffic
            policy and the API keys (env ``REFRESH_SECONDS``; changes reach every server
            within this time plus a model load).
        metrics_dir: prometheus_client's multiprocess folder (env
            ``PROMETHEUS_MULTIPROC_DIR``); set, ``/metrics`` adds up every server process.
        monitor_interval_seconds: How often ``monitor run`` makes a pass (env
            ``MONITOR_INTERVAL_SECONDS``): alert rules, deliveries, closed periods.
        monitor_grace_seconds: How long after a period ends the monitor waits for rows
            still in flight before summarizing it (env ``MONITOR_GRACE_SECONDS``).
        prediction_log_retention_days: How many days of raw prediction-log rows to keep
            (env ``PREDICTION_LOG_RETENTION_DAYS``; 0: everything). The monitor deletes
            older rows once their periods' snapshots exist; snapshots are kept.
        smtp_password: The password of e-mail channels' SMTP user (env ``SMTP_PASSWORD``);
            never stored in the registry.
        alert_allow_private_targets: Whether alert channels may reach loopback, private,
            link-local and other non-public addresses (env ``ALERT_ALLOW_PRIVATE_TARGETS``:
            1 for receivers on your own network; default 0, so a channel cannot probe the
            network the monitor runs in, e.g. a cloud's metadata service).
        audit_key: The key of the audit log's HMAC chain (env ``AUDIT_KEY``, at least 32
            characters, the same on every process). Set, entries are chained with
            HMAC-SHA256, so someone who can write the database but not read this key
            cannot rewrite history unnoticed; empty, with plain SHA-256 (edits by anyone
            who can recompute the hashes are caught only by an anchor kept elsewhere).
        api_url: The serving API's address as phones reach it (env ``API_URL``, e.g.
            ``https://192.168.1.5:8500``): the dashboard links the phone app there and shows
            it as a QR code. Empty: the dashboard's own host on port 8500.
        metrics_token: The bearer token ``GET /metrics`` requires (env ``METRICS_TOKEN``;
            Prometheus sends it with ``authorization: {credentials: ...}``). Empty: the
            page is open, as Prometheus' exporters usually are.
        otlp_endpoint: Where traces go (OpenTelemetry's standard
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g. ``http://collector:4318``: OTLP over HTTP,
            spans of each API request, job and monitor pass). Empty: no traces, no cost.
            The exporter reads OpenTelemetry's other ``OTEL_*`` settings (headers,
            service name) itself.
        secrets_key: The Fernet key that seals alert channels' targets and signing keys
            in the database (env ``SECRETS_KEY``; empty: they are stored as given, and
            anyone who can read the database file can read them).
    """

    registry_dir: Path = PROJECT_ROOT / "model_registry"
    model_name: str = "classifier"
    dataset: str = "fashion_mnist"
    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 40_000_000
    max_pixels_in_flight: int = 50_000_000
    max_instances: int = 256
    seed: int = 42
    anonymous_role: str = "viewer"
    separation_of_duties: bool = True
    database_url: str = ""
    artifacts_url: str = ""
    job_executor: str = "local"
    job_runner: str = ""
    log_batch_rows: int = 256
    log_queue_rows: int = 10_000
    log_write_wait_seconds: int = 5
    log_batch_ms: int = 0
    batching: str = "auto"
    batch_wait_ms: int = 2
    batch_max_instances: int = 32
    refresh_seconds: int = 1
    metrics_dir: Path | None = None
    monitor_interval_seconds: int = 60
    monitor_grace_seconds: int = 60
    prediction_log_retention_days: int = 0
    smtp_password: str = field(default="", repr=False)
    alert_allow_private_targets: bool = False
    api_url: str = ""
    metrics_token: str = field(default="", repr=False)
    otlp_endpoint: str = ""
    secrets_key: str = field(default="", repr=False)
    audit_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        # Every path and job record is keyed by the model name: refuse a bad one at once.
        validate_model_name(self.model_name)
        if self.audit_key and len(self.audit_key) < 32:
            raise InvalidInput("AUDIT_KEY is shorter than 32 characters. To fix this, set it "
                               "to e.g. the output of python -c 'import secrets; "
                               "print(secrets.token_hex(32))'.")
        if self.max_pixels_in_flight < self.max_request_pixels:
            raise InvalidInput(
                f"MAX_PIXELS_IN_FLIGHT ({self.max_pixels_in_flight:,}) is below "
                f"MAX_REQUEST_PIXELS ({self.max_request_pixels:,}): a request at the limit "
                "could never be decoded. To fix this, raise MAX_PIXELS_IN_FLIGHT or lower "
                "MAX_REQUEST_PIXELS.")

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or the SQLite file in the registry folder."""
        return self.database_url or f"sqlite:///{self.registry_dir.resolve() / 'registry.db'}"

    @property
    def effective_artifacts_url(self) -> str:
        """``artifacts_url``, or the registry folder itself."""
        return self.artifacts_url or self.registry_dir.resolve().as_uri()

    def registry_settings(self) -> dict[str, str]:
        """The settings that say where the registry is (folder, model, database,
        artifacts), as environment variables."""
        where = {"registry_dir": str(self.registry_dir), "model_name": self.model_name,
                 "database_url": self.database_url, "artifacts_url": self.artifacts_url}
        return {_ENV_NAMES[name]: value for name, value in where.items() if value}

    def child_environment(self) -> dict[str, str]:
        """This process's environment with ``registry_settings``: a child process started
        with it (a job's worker, a server) opens the same registry, whatever overrides
        made this config."""
        return dict(os.environ) | self.registry_settings()

    def with_overrides(self, **changes: Any) -> "Config":
        """Returns a copy with the given non-None fields replaced."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_ENV_NAMES = {
    "registry_dir": "MODEL_REGISTRY_DIR",
    "model_name": "MODEL_NAME",
    "dataset": "DATASET",
    "fashion_mnist_dir": "FASHION_MNIST_DIR",
    "max_upload_bytes": "MAX_UPLOAD_BYTES",
    "max_image_pixels": "MAX_IMAGE_PIXELS",
    "max_request_pixels": "MAX_REQUEST_PIXELS",
    "max_pixels_in_flight": "MAX_PIXELS_IN_FLIGHT",
    "max_instances": "MAX_INSTANCES",
    "seed": "SEED",
    "anonymous_role": "ANONYMOUS_ROLE",
    "separation_of_duties": "SEPARATION_OF_DUTIES",
    "database_url": "DATABASE_URL",
    "artifacts_url": "ARTIFACTS_URL",
    "job_executor": "JOB_EXECUTOR",
    "job_runner": "JOB_RUNNER",
    "log_batch_rows": "LOG_BATCH_ROWS",
    "log_queue_rows": "LOG_QUEUE_ROWS",
    "log_write_wait_seconds": "LOG_WRITE_WAIT_SECONDS",
    "log_batch_ms": "LOG_BATCH_MS",
    "batching": "BATCHING",
    "batch_wait_ms": "BATCH_WAIT_MS",
    "batch_max_instances": "BATCH_MAX_INSTANCES",
    "refresh_seconds": "REFRESH_SECONDS",
    "metrics_dir": "PROMETHEUS_MULTIPROC_DIR",
    "monitor_interval_seconds": "MONITOR_INTERVAL_SECONDS",
    "monitor_grace_seconds": "MONITOR_GRACE_SECONDS",
    "prediction_log_retention_days": "PREDICTION_LOG_RETENTION_DAYS",
    "smtp_password": "SMTP_PASSWORD",
    "alert_allow_private_targets": "ALERT_ALLOW_PRIVATE_TARGETS",
    "api_url": "API_URL",
    "metrics_token": "METRICS_TOKEN",
    "otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "secrets_key": "SECRETS_KEY",
    "audit_key": "AUDIT_KEY",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Builds the configuration from environment variables (defaults otherwise)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in fields(Config):
        raw = environ.get(_ENV_NAMES[setting.name])
        if raw is None or raw == "":
            continue
        default = setting.default
        name = _ENV_NAMES[setting.name]
        if isinstance(default, bool):
            if raw.lower() not in _TRUE + _FALSE:
                raise InvalidInput(f"{name} must be 1 or 0, got {raw!r}. To fix this, set "
                                   f"{name}=1 or {name}=0.")
            values[setting.name] = raw.lower() in _TRUE
        elif isinstance(default, Path) or setting.name == "metrics_dir":
            values[setting.name] = Path(raw).expanduser()
        elif isinstance(default, int):
            if not raw.strip().isdigit():
                raise InvalidInput(f"{name} must be a whole number, got {raw!r}. To fix "
                                   f"this, set e.g. {name}={default}.")
            values[setting.name] = int(raw)
        else:
            values[setting.name] = raw
    return Config(**values)
