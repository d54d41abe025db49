"""Where a version's files live: the artifact store seam.

Layout (TF Serving's numbered folders), the same under a folder or, for other
stores, under an object-store prefix::

    <model>/<N>/   model.keras  saved_model/  model.tflite  metadata.json  reference.npz

A version's files are written into a staging folder; ``publish`` makes them
visible under the version's number in one step. The catalog calls ``publish``
inside its write transaction, so a version is visible only when its files are
complete and its row is committed. Serving and training read files through
``local_path``: the folder itself here, a cached copy for a remote store.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from core.errors import VersionNotFound
from core.names import parse_version, validate_model_name

METADATA_FILE = "metadata.json"


class ArtifactStore(ABC):
    """Puts, publishes, reads and removes versions' files."""

    url: str

    @abstractmethod
    def stage(self, model: str) -> Path:
        """A new, empty local folder to write one version's files into."""

    @abstractmethod
    def publish(self, model: str, staged: Path, version: int, metadata: dict) -> None:
        """Writes ``metadata.json`` into ``staged`` and makes the folder version ``version``.

        Atomic: afterwards every file is visible under the number, before it none is.
        Refuses a number that is already published.
        """

    @abstractmethod
    def discard(self, staged: Path) -> None:
        """Removes a staging folder that was not published (no-op once published)."""

    @abstractmethod
    def remove_unpublished(self, model: str, known: set[int]) -> None:
        """Removes numbered versions not in ``known`` and staging folders of dead writers.

        The catalog calls this inside its write transaction, so no writer can be
        between publishing its files and committing its row.
        """

    @abstractmethod
    def list_versions(self, model: str) -> list[int]:
        """The published version numbers, ascending."""

    @abstractmethod
    def local_path(self, model: str, version: int) -> Path:
        """A local folder holding the version's files (for Keras, TFLite, numpy)."""

    @abstractmethod
    def read_bytes(self, model: str, version: int, name: str) -> bytes:
        """One file of a published version; VersionNotFound names what is missing."""

    @abstractmethod
    def has_file(self, model: str, version: int, name: str) -> bool:
        """Whether a published version has the file ``name``."""

    @abstractmethod
    def put_file(self, model: str, version: int, name: str, data: bytes) -> None:
        """Adds a file to a published version, atomically (e.g. a later reference profile)."""


_STAGING_PREFIX = ".incoming-"


class LocalArtifactStore(ArtifactStore):
    """The embedded default: numbered folders under the registry folder (``file://``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()

    def _model_dir(self, model: str) -> Path:
        return self.root / validate_model_name(model)

    def _version_dir(self, model: str, version: int) -> Path:
        return self._model_dir(model) / str(parse_version(version))

    def stage(self, model):
        model_dir = self._model_dir(model)
        model_dir.mkdir(parents=True, exist_ok=True)
        # The writer's pid in the name: a folder whose writer died can be told apart.
        staged = model_dir / f"{_STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        staged.mkdir()
        return staged

    def publish(self, model, staged, version, metadata):
        target = self._version_dir(model, version)
        if target.exists():
            raise FileExistsError(f"{target} is already published")
        _write_atomically(staged / METADATA_FILE,
                          json.dumps(metadata, indent=2, sort_keys=True).encode())
        _fsync_tree(staged)
        os.rename(staged, target)
        _fsync_dir(target.parent)

    def discard(self, staged):
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)

    def remove_unpublished(self, model, known):
        model_dir = self._model_dir(model)
        if not model_dir.is_dir():
            return
        for path in model_dir.iterdir():
            if path.name.isdigit() and int(path.name) not in known:
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(_STAGING_PREFIX) and not _writer_alive(path.name):
                shutil.rmtree(path, ignore_errors=True)

    def list_versions(self, model):
        model_dir = self._model_dir(model)
        if not model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())

    def local_path(self, model, version):
        folder = self._version_dir(model, version)
        if not folder.is_dir():
            raise VersionNotFound(f"model {model!r} has no files for version {version} in "
                                  f"{self.root}. To fix this, register the version again.")
        return folder

    def read_bytes(self, model, version, name):
        path = self.local_path(model, version) / name
        if not path.is_file():
            raise VersionNotFound(f"version {version} of {model!r} has no {name} in "
                                  f"{path.parent}. To fix this, register the version again.")
        return path.read_bytes()

    def has_file(self, model, version, name):
        return (self._version_dir(model, version) / name).is_file()

    def put_file(self, model, version, name, data):
        _write_atomically(self.local_path(model, version) / name, data)


def _writer_alive(folder_name: str) -> bool:
    pid_text = folder_name[len(_STAGING_PREFIX):].split("-", 1)[0]
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Writes beside ``path``, flushes, then renames: the file appears whole or not at all."""
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_tree(folder: Path) -> None:
    """Flushes every file so that a renamed folder never holds half-written files."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Makes a rename inside ``folder`` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
