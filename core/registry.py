"""Model versions on disk plus a catalog of their statuses and lineage.

Layout (TF Serving's numbered folders)::

    <root>/registry.db            the SQLite catalog (default implementation)
    <root>/<model>/<N>/           one folder per version
        model.keras  saved_model/  model.tflite  metadata.json

A version becomes visible only when complete: artifacts are written to a
temporary folder, and inside one catalog write transaction the folder is
renamed to its number and the row inserted. A writer killed at any moment
leaves either nothing visible or a complete version; leftovers are removed
by :meth:`Registry.repair`, which every registration runs first.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

from core import audit, sqlite
from core.audit import Actor, AuditEntry
from core.errors import ActionRefused, InvalidInput, VersionNotFound
from core.names import parse_version, validate_model_name

STATUSES = ("candidate", "champion", "rejected", "archived")
INITIAL_BASELINE_NOTE = "initial baseline: the first version becomes champion without review"
_INCOMING_PREFIX = ".incoming-"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: plain data, no IO."""

    model: str
    version: int
    status: str
    created_at: str
    created_by: str
    parent: int | None
    metadata: dict

    def summary(self) -> dict:
        """The JSON shape of ``python -m core versions --json``."""
        metrics = self.metadata.get("metrics", {})
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "parent": self.parent,
            "architecture": self.metadata.get("architecture"),
            "dataset": self.metadata.get("dataset", {}).get("name"),
            "metrics": {
                "val_accuracy": metrics.get("validation", {}).get("accuracy"),
                "test_accuracy": metrics.get("test", {}).get("accuracy"),
                "val_macro_f1": metrics.get("validation", {}).get("macro_f1"),
                "test_macro_f1": metrics.get("test", {}).get("macro_f1"),
                "test_ece": metrics.get("test", {}).get("ece"),
            },
        }


# --- catalog -----------------------------------------------------------------------

class Catalog(ABC):
    """Where versions, statuses and their history are recorded.

    Implementations must make ``create_model_version`` atomic with its ``publish``
    step and keep exactly one champion per model once any version exists.
    """

    @abstractmethod
    def create_model_version(self, model: str, *, created_at: str, actor: Actor,
                             parent: int | None, metadata: dict,
                             publish: Callable[[int, dict], None],
                             cleanup: Callable[[set[int]], None]) -> ModelVersion:
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
    def get_model_version(self, model: str, version: int) -> ModelVersion:
        """Returns the version or raises VersionNotFound (listing the versions that exist)."""

    @abstractmethod
    def search_model_versions(self, model: str) -> list[ModelVersion]:
        """All versions of ``model``, oldest first."""

    @abstractmethod
    def change_status(self, model: str, version: int, status: str, *,
                      expected: dict[int, str], entry: AuditEntry) -> AuditEntry:
        """Sets a version's status, atomically with its audit entry (returned, chained).

        In one transaction: every version in ``expected`` must still have the given
        status (else ActionRefused says who changed it, and nothing changes); setting
        ``champion`` archives the current champion (with its own audit entry).
        """

    @abstractmethod
    def get_status_history(self, model: str) -> list[dict]:
        """Every status change of the model's versions, oldest first (from the audit log)."""

    @abstractmethod
    def save_comparison(self, model: str, baseline: int, candidate: int, at: str,
                        result: dict) -> None:
        """Stores (or replaces) the comparison of two versions."""

    @abstractmethod
    def find_comparison(self, model: str, baseline: int, candidate: int) -> dict | None:
        """The stored comparison of two versions, or None."""

    def find_champion(self, model: str) -> ModelVersion | None:
        return next((v for v in self.search_model_versions(model) if v.status == "champion"), None)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'champion', 'rejected', 'archived')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    parent INTEGER,
    metadata TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_champion_per_model
    ON versions (model) WHERE status = 'champion';
CREATE TABLE IF NOT EXISTS comparisons (
    model TEXT NOT NULL,
    baseline INTEGER NOT NULL,
    candidate INTEGER NOT NULL,
    at TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (model, baseline, candidate)
);
""" + audit.SCHEMA


class SQLiteCatalog(Catalog):
    """The embedded default: one SQLite file, WAL mode, a connection per operation."""

    def __init__(self, path: Path):
        # Nothing is created until the first write: reading a registry that
        # does not exist yet must leave the disk untouched.
        self.path = Path(path)

    def _transaction(self):
        return sqlite.write_transaction(self.path, _SCHEMA)

    def _read(self, sql: str, args=()) -> list[tuple]:
        return sqlite.read(self.path, sql, args)

    @staticmethod
    def _row_to_version(row) -> ModelVersion:
        model, version, status, created_at, created_by, parent, metadata = row
        return ModelVersion(model, version, status, created_at, created_by, parent,
                            json.loads(metadata))

    _COLUMNS = "model, version, status, created_at, created_by, parent, metadata"

    def create_model_version(self, model, *, created_at, actor, parent, metadata,
                             publish, cleanup):
        with self._transaction() as db:
            known = {v for (v,) in db.execute(
                "SELECT version FROM versions WHERE model = ?", (model,))}
            cleanup(known)
            version = max(known, default=0) + 1
            first = not known
            status = "champion" if first else "candidate"
            note = INITIAL_BASELINE_NOTE if first else "registered"
            metadata = metadata | {"version": version, "created_at": created_at,
                                   "created_by": actor.name, "parent": parent,
                                   "registered_as": status, "registration_note": note}
            publish(version, metadata)
            db.execute(f"INSERT INTO versions ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (model, version, status, created_at, actor.name, parent,
                        json.dumps(metadata)))
            audit.append(db, AuditEntry(
                at=created_at, actor=actor.name, role=actor.role, action="register",
                outcome="done", model=model, target=f"version {version}", version=version,
                reason=note, details={"from_status": None, "to_status": status,
                                      "parent": parent, "test_accuracy": metadata.get(
                                          "metrics", {}).get("test", {}).get("accuracy")}))
        return ModelVersion(model, version, status, created_at, actor.name, parent, metadata)

    def clean_uncommitted(self, model, cleanup):
        with self._transaction() as db:
            cleanup({v for (v,) in db.execute(
                "SELECT version FROM versions WHERE model = ?", (model,))})

    def get_model_version(self, model, version):
        rows = self._read(f"SELECT {self._COLUMNS} FROM versions WHERE model = ? AND version = ?",
                          (model, version))
        if not rows:
            existing = [v.version for v in self.search_model_versions(model)]
            listing = ", ".join(map(str, existing)) if existing else "none yet"
            fix = ("pick one of those" if existing
                   else "run 'python -m core bootstrap' to train the first one")
            raise VersionNotFound(f"model {model!r} has no version {version} "
                                  f"(versions: {listing}). To fix this, {fix}.")
        return self._row_to_version(rows[0])

    def search_model_versions(self, model):
        rows = self._read(f"SELECT {self._COLUMNS} FROM versions WHERE model = ? "
                          "ORDER BY version", (model,))
        return [self._row_to_version(row) for row in rows]

    def change_status(self, model, version, status, *, expected, entry):
        if status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}. To fix this, use one of: "
                               f"{', '.join(STATUSES)}.")
        self.get_model_version(model, version)  # raises VersionNotFound with the listing
        with self._transaction() as db:
            for number, wanted in expected.items():
                row = db.execute("SELECT status FROM versions WHERE model = ? AND version = ?",
                                 (model, number)).fetchone()
                if row is None or row[0] != wanted:
                    raise ActionRefused(_changed_meanwhile(db, model, number, wanted,
                                                           row and row[0]))
            (current,) = db.execute("SELECT status FROM versions WHERE model = ? AND "
                                    "version = ?", (model, version)).fetchone()
            if current == "champion" and status != "champion":
                raise ActionRefused(
                    f"version {version} is the champion and cannot become {status} directly. "
                    "To fix this, promote or roll back to another version; the champion is "
                    "then archived.")
            replaced = [old for (old,) in db.execute(
                "SELECT version FROM versions WHERE model = ? AND status = 'champion' AND "
                "version != ?", (model, version)).fetchall()] if status == "champion" else []
            for old in replaced:  # first, so that the one-champion index holds throughout
                db.execute("UPDATE versions SET status = 'archived' WHERE model = ? AND "
                           "version = ?", (model, old))
            db.execute("UPDATE versions SET status = ? WHERE model = ? AND version = ?",
                       (status, model, version))
            # The entry records the transition as it happened inside this transaction.
            appended = audit.append(db, replace(entry, details=entry.details | {
                "from_status": current, "to_status": status}))
            for old in replaced:
                audit.append(db, AuditEntry(
                    at=entry.at, actor=entry.actor, role=entry.role, action="archive",
                    outcome="done", model=model, target=f"version {old}", version=old,
                    reason=f"replaced by version {version} ({entry.action})",
                    details={"from_status": "champion", "to_status": "archived"}))
        return appended

    def save_comparison(self, model, baseline, candidate, at, result):
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO comparisons (model, baseline, candidate, at, "
                       "result) VALUES (?, ?, ?, ?, ?)",
                       (model, baseline, candidate, at, json.dumps(result)))

    def find_comparison(self, model, baseline, candidate):
        rows = self._read("SELECT result FROM comparisons WHERE model = ? AND baseline = ? "
                          "AND candidate = ?", (model, baseline, candidate))
        return json.loads(rows[0][0]) if rows else None

    def get_status_history(self, model):
        return [{"version": e.version, "at": e.at, "actor": e.actor, "role": e.role,
                 "action": e.action, "from_status": e.details.get("from_status"),
                 "to_status": e.details["to_status"], "reason": e.reason}
                for e in audit.read_entries(self.path, model)
                if e.outcome == "done" and "to_status" in e.details]


def _changed_meanwhile(db, model: str, version: int, wanted: str, now_status: str | None
                       ) -> str:
    """Why a decision lost a race: who changed the version, when, to what."""
    last = db.execute("SELECT actor, action, at FROM audit_log WHERE model = ? AND "
                      "version = ? AND outcome = 'done' ORDER BY seq DESC LIMIT 1",
                      (model, version)).fetchone()
    by = f" ({last[0]}: {last[1]} at {last[2]})" if last else ""
    return (f"version {version} is {now_status or 'gone'} now, no longer {wanted}{by}; "
            "the decision was made on a state that has changed since. To fix this, look at "
            "the current champion and candidates again and decide on them.")


# --- registry ----------------------------------------------------------------------

ArtifactWriter = Callable[[Path], None]


class Registry:
    """A model's versions: artifacts in numbered folders, records in a catalog."""

    def __init__(self, root: Path, model: str, catalog: Catalog | None = None):
        self.root = Path(root)
        self.model = validate_model_name(model)
        self.model_dir = self.root / self.model
        self.catalog = catalog or SQLiteCatalog(self.root / "registry.db")

    def version_dir(self, version: int) -> Path:
        return self.model_dir / str(parse_version(version))

    def register_version(self, write_artifacts: ArtifactWriter, metadata: dict, *,
                         actor: Actor, now: datetime, parent: int | None = None
                         ) -> ModelVersion:
        """Writes a version's artifacts and records it; visible only once complete.

        Args:
            write_artifacts: writes every artifact into the folder it is given.
            metadata: lineage, data, parameters and metrics (``version`` is added).
            actor: who registers it (recorded as ``created_by`` and in the audit log).
            now: the registration time (UTC).
            parent: the version this one was derived from, if any.
        """
        self.model_dir.mkdir(parents=True, exist_ok=True)
        incoming = self.model_dir / f"{_INCOMING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        incoming.mkdir()
        try:
            write_artifacts(incoming)

            def publish(version: int, final_metadata: dict) -> None:
                _write_json_atomically(incoming / "metadata.json", final_metadata)
                _fsync_tree(incoming)
                os.rename(incoming, self.model_dir / str(version))

            return self.catalog.create_model_version(
                self.model, created_at=now.isoformat(timespec="seconds"),
                actor=actor, parent=parent, metadata=metadata,
                publish=publish, cleanup=self._remove_uncommitted)
        finally:
            if incoming.exists():
                shutil.rmtree(incoming, ignore_errors=True)

    def _remove_uncommitted(self, known_versions: set[int]) -> None:
        """Deletes numbered folders without a catalog row and abandoned temp folders.

        Called inside the catalog's write transaction, so no other writer can be
        between renaming its folder and committing its row.
        """
        for path in self.model_dir.iterdir():
            if path.name.isdigit() and int(path.name) not in known_versions:
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(_INCOMING_PREFIX) and not _writer_alive(path.name):
                shutil.rmtree(path, ignore_errors=True)

    def repair(self) -> None:
        """Removes leftovers of writers killed mid-registration."""
        if self.model_dir.is_dir():
            self.catalog.clean_uncommitted(self.model, self._remove_uncommitted)

    def list_versions(self) -> list[ModelVersion]:
        return self.catalog.search_model_versions(self.model)

    def get_version(self, version: int) -> ModelVersion:
        return self.catalog.get_model_version(self.model, parse_version(version))

    def find_champion(self) -> ModelVersion | None:
        return self.catalog.find_champion(self.model)

    def get_champion(self) -> ModelVersion:
        champion = self.find_champion()
        if champion is None:
            raise VersionNotFound(
                f"model {self.model!r} has no champion yet (no versions in {self.root}). "
                "To fix this, run 'python -m core bootstrap'.")
        return champion

    def resolve(self, version: int | None) -> ModelVersion:
        """The given version, or the champion when ``version`` is None."""
        return self.get_champion() if version is None else self.get_version(version)

    def status_history(self) -> list[dict]:
        return self.catalog.get_status_history(self.model)


def _writer_alive(folder_name: str) -> bool:
    pid_text = folder_name[len(_INCOMING_PREFIX):].split("-", 1)[0]
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _write_json_atomically(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_tree(folder: Path) -> None:
    """Flushes every file so that a renamed folder never holds half-written files."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
