"""A model's versions: files in an artifact store, records in a catalog.

A version becomes visible only when complete: its files are written to a
staging folder, and inside one catalog write transaction the artifact store
publishes them under the version's number and the row is inserted. A writer
killed at any moment leaves either nothing visible or a complete version;
leftovers are removed by :meth:`Registry.repair`, which every registration runs
first. Every artifact store and catalog keeps this property.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from core.audit import Actor, stamp
from core.errors import VersionNotFound
from core.names import parse_version, validate_model_name
from core.registry.artifacts import ArtifactStore, check_file_name, file_digests
from core.registry.catalog import Catalog
from core.registry.records import Comparison, ModelVersion, StatusChange, VersionMetadata

ArtifactWriter = Callable[[Path], None]


class Registry:
    """One model's versions."""

    def __init__(self, catalog: Catalog, artifacts: ArtifactStore, model: str):
        self.catalog = catalog
        self.artifacts = artifacts
        self.model = validate_model_name(model)

    def files(self, version: int) -> Path:
        """A local folder holding the version's files (downloaded ones checked against the
        content hashes the catalog recorded)."""
        found = self.get_version(version)
        return self.artifacts.local_path(self.model, found.version, found.metadata.files)

    def read_file(self, version: int, name: str) -> bytes:
        """One file of a version, as ``files`` holds it (checked when downloaded)."""
        path = self.files(version) / check_file_name(name)
        if not path.is_file():
            raise VersionNotFound(f"version {version} of {self.model!r} has no {name}. To "
                                  "fix this, build or register it again.")
        return path.read_bytes()

    def add_file(self, version: int, name: str, data: bytes) -> None:
        """Adds a file to a published version (an export, a later reference profile). Its
        content hash is recorded first, so the file is never loaded unchecked; adding it
        again (after a crash, say) records the new hash."""
        number = parse_version(version)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        self.catalog.record_file(self.model, number, check_file_name(name), digest)
        self.artifacts.put_file(self.model, number, name, data)

    def register_version(self, write_artifacts: ArtifactWriter, metadata: VersionMetadata, *,
                         actor: Actor, now: datetime, parent: int | None = None,
                         reason: str | None = None) -> ModelVersion:
        """Writes a version's artifacts and records it; visible only once complete.

        Args:
            write_artifacts: writes every artifact into the folder it is given.
            metadata: lineage, data, parameters and metrics (the registration fills in
                ``version``, ``created_at``, ``created_by``, ``parent`` and the status).
            actor: who registers it (recorded as ``created_by`` and in the audit log).
            now: the registration time (UTC).
            parent: the version this one was derived from, if any.
            reason: why, in the registering person's words, for the audit entry (default:
                "initial baseline" for a model's first version, "registered" after).
        """
        staged = self.artifacts.stage(self.model)
        try:
            write_artifacts(staged)
            metadata = replace(metadata, files=file_digests(staged))
            return self.catalog.create_model_version(
                self.model, created_at=stamp(now), actor=actor,
                parent=parent, metadata=metadata,
                publish=lambda version, final: self.artifacts.publish(
                    self.model, staged, version, final.as_dict()),
                cleanup=self._remove_uncommitted, reason=reason)
        finally:
            self.artifacts.discard(staged)

    def _remove_uncommitted(self, known_versions: set[int]) -> None:
        self.artifacts.remove_unpublished(self.model, known_versions)

    def repair(self) -> None:
        """Removes leftovers of writers killed mid-registration."""
        self.catalog.clean_uncommitted(self.model, self._remove_uncommitted)

    def list_versions(self) -> list[ModelVersion]:
        return self.catalog.search_model_versions(self.model)

    def list_models(self) -> list[str]:
        """Every model of the registry (this one's name among them once it has a version)."""
        return self.catalog.list_models()

    def get_version(self, version: int) -> ModelVersion:
        return self.catalog.get_model_version(self.model, parse_version(version))

    def find_champion(self) -> ModelVersion | None:
        return self.catalog.find_champion(self.model)

    def get_champion(self) -> ModelVersion:
        champion = self.find_champion()
        if champion is None:
            raise VersionNotFound(
                f"model {self.model!r} has no champion yet (no versions in "
                f"{self.artifacts.url}). To fix this, run 'python -m core bootstrap'.")
        return champion

    def resolve(self, version: int | None) -> ModelVersion:
        """The given version, or the champion when ``version`` is None."""
        return self.get_champion() if version is None else self.get_version(version)

    def status_history(self) -> list[StatusChange]:
        return self.catalog.get_status_history(self.model)

    def find_comparison(self, baseline: int, candidate: int) -> Comparison | None:
        return self.catalog.find_comparison(self.model, baseline, candidate)
