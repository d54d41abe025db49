"""Moving a registry to other backends: ``python -m core migrate --to URL [--artifacts URL]``.

Typically from the embedded SQLite file and folders to PostgreSQL and an S3 bucket,
when a team outgrows one machine. The source is only read. Artifacts are copied
first (each version published whole, so a rerun skips the ones already there; then
the prediction log's image packs), then every table in one transaction of the target,
so rows never name files that are missing. Afterwards the target's row counts must
equal the source's, and its audit log must verify.

It asks for no sign-in: it runs where the registry's files are, and whoever can
read ``registry.db`` can copy it anyway. The target's users, roles and keys are
the source's.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass

from core.app.backends import Backends, build_backends, open_artifact_store, open_database
from core.audit import Verification
from core.errors import InvalidInput, RegistryError
from core.governance.decisions import verify_audit
from core.monitoring.logged_images import PREFIX as LOGGED_IMAGES
from core.registry.artifacts import ArtifactStore
from core.storage.copy import copy_database, row_counts

# (what, done, total): what is "artifacts" or a table's name.
MigrateProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MigrationResult:
    database: str
    artifacts: str | None  # None: the versions' files stayed where they are
    rows: dict[str, int]
    versions_copied: int
    audit: Verification

    def as_dict(self) -> dict:
        values = asdict(self)
        values["audit"] = self.audit.as_dict()
        return values


def migrate_registry(backends: Backends, *, to_url: str, artifacts_url: str | None = None,
                     on_progress: MigrateProgress | None = None) -> MigrationResult:
    """Copies the registry of ``backends`` to the database ``to_url`` (and its versions'
    files to ``artifacts_url``); see the module's docstring."""
    source = backends.database
    target = open_database(to_url, backends.config.audit_key)
    if target.describe() == source.describe():
        raise InvalidInput(f"--to names the registry's own database ({source.describe()}). "
                           "To fix this, name the new, empty database to copy into.")
    copied = 0
    if artifacts_url:
        store = open_artifact_store(artifacts_url, backends.config)
        if store.url == backends.artifacts.url:
            raise InvalidInput(f"--artifacts names where the files already are ({store.url})."
                               " To fix this, name the new location, or leave --artifacts out "
                               "to keep the files where they are.")
        copied = _copy_artifacts(backends, store, on_progress)
        _copy_logged_images(backends, store, on_progress)
    rows = copy_database(source, target, on_progress)
    landed = row_counts(target)
    if landed != rows:
        different = {t: (rows[t], landed[t]) for t in rows if rows[t] != landed[t]}
        raise RegistryError(f"the copy's row counts differ from the source's: {different}. "
                            "To fix this, drop the target database and migrate again.")
    config = backends.config.with_overrides(database_url=to_url, artifacts_url=artifacts_url)
    copy = build_backends(config)
    return MigrationResult(database=target.describe(), artifacts=artifacts_url, rows=rows,
                           versions_copied=copied,
                           audit=verify_audit(copy.audit_log, copy.registry, None))


def _copy_logged_images(backends: Backends, store: ArtifactStore,
                        on_progress: MigrateProgress | None) -> None:
    """Copies the prediction log's image packs the target does not have yet (before the
    rows that refer to them)."""
    folder = LOGGED_IMAGES + "/"
    there = {item.key for item in store.list_objects(folder)}
    missing = [item for item in backends.artifacts.list_objects(folder)
               if item.key not in there]
    for done, item in enumerate(missing, start=1):
        store.put_object(item.key, backends.artifacts.read_object(item.key, 0, item.size))
        if on_progress:
            on_progress("logged images", done, len(missing))


def _copy_artifacts(backends: Backends, store: ArtifactStore,
                    on_progress: MigrateProgress | None) -> int:
    """Publishes every version's files in ``store``; returns how many were copied."""
    versions = backends.database.read("SELECT model, version, metadata FROM versions "
                                      "ORDER BY model, version")
    copied = 0
    published: dict[str, list[int]] = {}  # one listing per model, not per version
    for done, (model, version, metadata) in enumerate(versions, start=1):
        if model not in published:
            published[model] = store.list_versions(model)
        if version not in published[model]:
            staged = store.stage(model)
            try:
                shutil.copytree(backends.artifacts.local_path(model, version), staged,
                                dirs_exist_ok=True)
                store.publish(model, staged, version, json.loads(metadata))
            finally:
                store.discard(staged)
            copied += 1
        if on_progress:
            on_progress("artifacts", done, len(versions))
    return copied
