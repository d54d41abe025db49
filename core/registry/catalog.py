"""The catalog: versions, statuses, lineage and comparisons, recorded in the database.

MLflow's split, kept: the catalog records versions; the artifact store holds their
files (``core.registry.artifacts``); ``core.registry.registry.Registry`` joins them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, text

from core.audit import Actor, AuditEntry, AuditLog, append
from core.errors import ActionRefused, InvalidInput, VersionNotFound
from core.registry.records import (
    STATUSES,
    Comparison,
    ModelVersion,
    StatusChange,
    VersionMetadata,
    VersionStatus,
    find_champion_in,
)
from core.storage.database import Database

INITIAL_BASELINE_NOTE = "initial baseline: the first version becomes champion without review"


class Catalog(ABC):
    """Where versions, statuses and their history are recorded.

    Implementations must make ``create_model_version`` atomic with its ``publish``
    step and keep exactly one champion per model once any version exists.
    """

    @abstractmethod
    def create_model_version(self, model: str, *, created_at: str, actor: Actor,
                             parent: int | None, metadata: VersionMetadata,
                             publish: Callable[[int, VersionMetadata], None],
                             cleanup: Callable[[set[int]], None],
                             reason: str | None = None) -> ModelVersion:
        """Allocates the next number N and records the version.

        Inside one write transaction: ``cleanup(known_versions)`` removes artifacts of
        versions that never committed, ``publish(N, metadata)`` makes the artifacts
        visible under N, then the row and its ``register`` audit entry are committed.
        The first version of a model becomes ``champion`` (noted as the initial
        baseline), later ones ``candidate``.
        """

    @abstractmethod
    def clean_uncommitted(self, model: str, cleanup: Callable[[set[int]], None]) -> None:
        """Runs ``cleanup(known_versions)`` while holding the catalog's write lock."""

    @abstractmethod
    def record_file(self, model: str, version: int, name: str, digest: str) -> None:
        """Records the content hash of a file added to a published version (an export, a
        later reference profile): stores that download files check it."""

    @abstractmethod
    def get_model_version(self, model: str, version: int) -> ModelVersion:
        """Returns the version or raises VersionNotFound (listing the versions that exist)."""

    @abstractmethod
    def search_model_versions(self, model: str) -> list[ModelVersion]:
        """All versions of ``model``, oldest first."""

    @abstractmethod
    def list_models(self) -> list[str]:
        """The names of the models with at least one version, in alphabetical order."""

    @abstractmethod
    def change_status(self, model: str, version: int, status: str, *,
                      expected: dict[int, str], entry: AuditEntry) -> AuditEntry:
        """Sets a version's status, atomically with its audit entry (returned, chained).

        In one transaction: every version in ``expected`` must still have the given
        status (else ActionRefused says who changed it, and nothing changes); setting
        ``champion`` archives the current champion (with its own audit entry).
        """

    @abstractmethod
    def get_status_history(self, model: str) -> list[StatusChange]:
        """Every status change of the model's versions, oldest first (from the audit log)."""

    @abstractmethod
    def save_comparison(self, model: str, comparison: Comparison) -> None:
        """Stores (or replaces) the comparison of its two versions."""

    @abstractmethod
    def find_comparison(self, model: str, baseline: int, candidate: int
                        ) -> Comparison | None:
        """The stored comparison of two versions, or None."""

    def find_champion(self, model: str) -> ModelVersion | None:
        return find_champion_in(self.search_model_versions(model))


_COLUMNS = "model, version, status, created_at, created_by, parent, metadata"
_SELECT = text(f"SELECT {_COLUMNS} FROM versions WHERE model = :model ORDER BY version")
_SELECT_ONE = text(f"SELECT {_COLUMNS} FROM versions WHERE model = :model "
                   "AND version = :version")
_STATUS = text("SELECT status FROM versions WHERE model = :model AND version = :version")
_SET_STATUS = text("UPDATE versions SET status = :status WHERE model = :model AND "
                   "version = :version")


class SQLCatalog(Catalog):
    """The catalog in the registry's database (any database ``core.storage`` supports)."""

    def __init__(self, database: Database, audit_log: AuditLog):
        self.database = database
        self.audit_log = audit_log

    @staticmethod
    def _row_to_version(row: Any) -> ModelVersion:
        model, version, status, created_at, created_by, parent, metadata = row
        return ModelVersion(model, version, VersionStatus(status), created_at, created_by,
                            parent, VersionMetadata.from_dict(json.loads(metadata)))

    @staticmethod
    def _known(conn: Connection, model: str) -> set[int]:
        return set(conn.execute(text("SELECT version FROM versions WHERE model = :model"),
                                {"model": model}).scalars())

    def create_model_version(self, model: str, *, created_at: str, actor: Actor,
                             parent: int | None, metadata: VersionMetadata,
                             publish: Callable[[int, VersionMetadata], None],
                             cleanup: Callable[[set[int]], None],
                             reason: str | None = None) -> ModelVersion:
        with self.database.write() as conn:
            known = self._known(conn, model)
            cleanup(known)
            version = max(known, default=0) + 1
            first = not known
            status = "champion" if first else "candidate"
            note = INITIAL_BASELINE_NOTE if first else "registered"
            metadata = metadata.registered(version=version, created_at=created_at,
                                           created_by=actor.name, parent=parent,
                                           status=status, note=note)
            publish(version, metadata)
            conn.execute(text(f"INSERT INTO versions ({_COLUMNS}) VALUES (:model, :version, "
                              ":status, :created_at, :created_by, :parent, :metadata)"),
                         {"model": model, "version": version, "status": status,
                          "created_at": created_at, "created_by": actor.name,
                          "parent": parent, "metadata": json.dumps(metadata.as_dict())})
            append(conn, AuditEntry(
                at=created_at, actor=actor.name, role=actor.role, action="register",
                outcome="done", model=model, target=f"version {version}", version=version,
                reason=reason or note, details={
                    "from_status": None, "to_status": status, "parent": parent,
                    "test_accuracy": metadata.metric("test", "accuracy")}
                | ({"source": metadata.source} if metadata.source else {})))
        return ModelVersion(model, version, VersionStatus(status), created_at, actor.name, parent,
                            metadata)

    def record_file(self, model: str, version: int, name: str, digest: str) -> None:
        with self.database.write() as conn:
            row = conn.execute(text("SELECT metadata FROM versions WHERE model = :model AND "
                                    "version = :version"),
                               {"model": model, "version": version}).first()
            if row is None:
                raise VersionNotFound(f"model {model!r} has no version {version}. To fix "
                                      "this, register it first.")
            metadata = json.loads(row[0])
            metadata["files"] = (metadata.get("files") or {}) | {name: digest}
            conn.execute(text("UPDATE versions SET metadata = :metadata WHERE model = :model "
                              "AND version = :version"),
                         {"metadata": json.dumps(metadata), "model": model,
                          "version": version})

    def clean_uncommitted(self, model: str, cleanup: Callable[[set[int]], None]) -> None:
        with self.database.write() as conn:
            cleanup(self._known(conn, model))

    def get_model_version(self, model: str, version: int) -> ModelVersion:
        rows = self.database.read(_SELECT_ONE.text, {"model": model, "version": version})
        if not rows:
            existing = [v.version for v in self.search_model_versions(model)]
            listing = ", ".join(map(str, existing)) if existing else "none yet"
            fix = ("pick one of those" if existing
                   else "run 'python -m core bootstrap' to train the first one")
            raise VersionNotFound(f"model {model!r} has no version {version} "
                                  f"(versions: {listing}). To fix this, {fix}.")
        return self._row_to_version(rows[0])

    def search_model_versions(self, model: str) -> list[ModelVersion]:
        return [self._row_to_version(row)
                for row in self.database.read(_SELECT.text, {"model": model})]

    def list_models(self) -> list[str]:
        return [row[0] for row in self.database.read(
            "SELECT DISTINCT model FROM versions ORDER BY model", {})]

    def change_status(self, model: str, version: int, status: str, *,
                      expected: dict[int, str], entry: AuditEntry) -> AuditEntry:
        if status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}. To fix this, use one of: "
                               f"{', '.join(STATUSES)}.")
        self.get_model_version(model, version)  # raises VersionNotFound with the listing
        with self.database.write() as conn:
            for number, wanted in expected.items():
                now_status = conn.execute(_STATUS, {"model": model, "version": number}
                                          ).scalar()
                if now_status != wanted:
                    raise ActionRefused(self._changed_meanwhile(conn, model, number, wanted,
                                                                now_status))
            current = conn.execute(_STATUS, {"model": model, "version": version}).scalar()
            if current == "champion" and status != "champion":
                raise ActionRefused(
                    f"version {version} is the champion and cannot become {status} directly. "
                    "To fix this, promote or roll back to another version; the champion is "
                    "then archived.")
            replaced = list(conn.execute(text(
                "SELECT version FROM versions WHERE model = :model AND status = 'champion' "
                "AND version != :version"), {"model": model, "version": version}).scalars()
            ) if status == "champion" else []
            for old in replaced:  # first, so that the one-champion index holds throughout
                conn.execute(_SET_STATUS, {"status": "archived", "model": model,
                                           "version": old})
            conn.execute(_SET_STATUS, {"status": status, "model": model, "version": version})
            # The entry records the transition as it happened inside this transaction.
            appended = append(conn, replace(entry, details=entry.details | {
                "from_status": current, "to_status": status}))
            for old in replaced:
                append(conn, AuditEntry(
                    at=entry.at, actor=entry.actor, role=entry.role, action="archive",
                    outcome="done", model=model, target=f"version {old}", version=old,
                    reason=f"replaced by version {version} ({entry.action})",
                    details={"from_status": "champion", "to_status": "archived"}))
        return appended

    def _changed_meanwhile(self, conn: Connection, model: str, version: int, wanted: str,
                           now_status: str | None) -> str:
        """Why a decision lost a race: who changed the version, when, to what."""
        last = self.audit_log.last_done(conn, model, version)
        by = f" ({last[0]}: {last[1]} at {last[2]})" if last else ""
        return (f"version {version} is {now_status or 'gone'} now, no longer {wanted}{by}; "
                "the decision was made on a state that has changed since. To fix this, look "
                "at the current champion and candidates again and decide on them.")

    def save_comparison(self, model: str, comparison: Comparison) -> None:
        key = {"model": model, "baseline": comparison.baseline,
               "candidate": comparison.candidate}
        with self.database.write() as conn:
            conn.execute(text("DELETE FROM comparisons WHERE model = :model AND baseline = "
                              ":baseline AND candidate = :candidate"), key)
            conn.execute(text("INSERT INTO comparisons (model, baseline, candidate, at, result) "
                              "VALUES (:model, :baseline, :candidate, :at, :result)"),
                         key | {"at": comparison.at or "",
                                "result": json.dumps(comparison.as_dict())})

    def find_comparison(self, model: str, baseline: int, candidate: int
                        ) -> Comparison | None:
        rows = self.database.read(
            "SELECT result FROM comparisons WHERE model = :model AND baseline = :baseline "
            "AND candidate = :candidate",
            {"model": model, "baseline": baseline, "candidate": candidate})
        return Comparison.from_dict(json.loads(rows[0][0])) if rows else None

    def get_status_history(self, model: str) -> list[StatusChange]:
        return [StatusChange(version=e.version, at=e.at, actor=e.actor, role=e.role,
                             action=e.action, from_status=e.details.get("from_status"),
                             to_status=e.details["to_status"], reason=e.reason)
                for e in self.audit_log.read_entries(model)
                if e.outcome == "done" and "to_status" in e.details and e.version is not None]
