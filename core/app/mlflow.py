"""Use case: mirror the registry into a team's MLflow tracking server (see
``core.registry.mlflow_sync``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import datetime
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import urlopen

from core.app.backends import Backends
from core.app.cards import model_card
from core.app.exports import stored_exports
from core.audit import AuditEntry, stamp
from core.errors import InvalidInput
from core.governance.decisions import DECISIONS
from core.ml.exports import EXPORTS_TABLE, KERAS_FILE, PORTABLE_FILES, TFLITE_FILE
from core.registry.mlflow_sync import SyncResult, VersionFacts, sync_versions


def mlflow_sync(backends: Backends, *, tracking_uri: str, registered_model: str | None = None,
                actor: str, now: datetime,
                on_version: Callable[[int], None] | None = None) -> SyncResult:
    """Brings the MLflow server at ``tracking_uri`` in step with the registry (operators:
    it sends the versions' files out). Runs and registered model versions are created
    once; statuses, decision hashes and the ``champion`` alias follow ours."""
    acting = backends.access.authorize(actor, "export", now, target="mlflow")
    _check_reachable(tracking_uri)
    import mlflow

    registry = backends.registry
    decisions: dict[int, list] = {}
    for entry in backends.audit_log.read_entries(backends.model):
        if entry.action in DECISIONS and entry.outcome == "done" and entry.version:
            decisions.setdefault(entry.version, []).append(entry)

    def card_of(number: int) -> Callable[[], str]:
        return lambda: model_card(backends, number, actor=actor, now=now).render("md")

    facts = []
    for version in registry.list_versions():
        folder = registry.files(version.version)
        built = stored_exports(backends, version.version) is not None
        facts.append(VersionFacts(
            version=version,
            comparison=(registry.find_comparison(version.parent, version.version)
                        if version.parent else None),
            decisions=decisions.get(version.version, []),
            models=[folder / KERAS_FILE, folder / TFLITE_FILE] if version.metadata.has_layers
            else [folder / TFLITE_FILE],
            exports=([folder / name for name in (*PORTABLE_FILES.values(), EXPORTS_TABLE)]
                     if built else []),
            card=card_of(version.version)))
    champion = registry.find_champion()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = registered_model or backends.model  # the experiment's name too
    # MLflow's client prints links to the runs it ends on standard output: keep them off
    # it, where `mlflow sync --json` writes its result.
    with redirect_stdout(sys.stderr):
        result = sync_versions(client, name, name, facts,
                               champion.version if champion else None, on_version)
    # The versions' files left for another system: who sent what where is kept.
    backends.audit_log.append_alone(AuditEntry(
        at=stamp(now), actor=acting.name, role=acting.role, action="mlflow_sync",
        outcome="done", model=backends.model, target=f"mlflow {_without_credentials(tracking_uri)}",
        details=result.as_dict() | {"registered_model": name}))
    return result


def _without_credentials(url: str) -> str:
    """The URL as it may be kept: a password in it (user:password@host) is dropped."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]).geturl()


def _check_reachable(tracking_uri: str) -> None:
    """Fails fast with a clear message: MLflow's client would retry for minutes."""
    if not tracking_uri.startswith(("http://", "https://")):
        raise InvalidInput(f"--tracking-uri {tracking_uri!r} is not an http(s) URL. To fix "
                           "this, give the MLflow server's address, e.g. "
                           "http://127.0.0.1:5000.")
    try:
        with urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=10):
            pass
    except (URLError, OSError) as error:
        raise InvalidInput(f"cannot reach the MLflow server at {tracking_uri} ({error}). To "
                           "fix this, start it (mlflow server --port 5000) or correct "
                           "--tracking-uri.") from None
