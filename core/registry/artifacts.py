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

import hashlib
import json
import logging
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import RegistryError, VersionNotFound
from core.names import parse_version, validate_model_name

METADATA_FILE = "metadata.json"
LOGGER = logging.getLogger("core.registry")


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
    def local_path(self, model: str, version: int,
                   expected: Mapping[str, str] | None = None) -> Path:
        """A local folder holding the version's files (for Keras, TFLite, numpy).

        Args:
            expected: each file's content hash by name, as the catalog recorded it: a
                store that downloads files fetches only these, and checks each.
        """

    @abstractmethod
    def read_bytes(self, model: str, version: int, name: str) -> bytes:
        """One file of a published version; VersionNotFound names what is missing."""

    @abstractmethod
    def has_file(self, model: str, version: int, name: str) -> bool:
        """Whether a published version has the file ``name``."""

    @abstractmethod
    def put_file(self, model: str, version: int, name: str, data: bytes) -> None:
        """Adds a file to a published version, atomically (e.g. a later reference profile)."""

    # Objects outside any version (the prediction log's images), by a key relative to
    # the store's root that starts with "_": never a model's folder (model names start
    # with a letter or digit).

    @abstractmethod
    def put_object(self, key: str, data: bytes) -> None:
        """Writes one object whole: readers see all of it or nothing."""

    @abstractmethod
    def read_object(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of an object from ``offset``; RegistryError if it is missing."""

    @abstractmethod
    def list_objects(self, prefix: str) -> list[StoredObject]:
        """The objects whose keys start with ``prefix`` (a folder: ends with "/")."""

    @abstractmethod
    def list_folders(self, prefix: str) -> list[str]:
        """The names of the folders directly under ``prefix`` (a folder: ends with "/")."""

    @abstractmethod
    def delete_object(self, key: str) -> None:
        """Removes an object; nothing happens if it is already gone."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # seconds since the epoch


def check_object_key(key: str) -> str:
    """A key of an object outside the versions: a checked file name under "_"."""
    if not key.startswith("_"):
        raise RegistryError(f"{key!r} is not an object key outside the versions. To fix "
                            "this, start it with '_' (model folders never do).")
    return check_file_name(key)


def missing_object(url: str, key: str) -> RegistryError:
    return RegistryError(f"{url}/{key} is missing: it was removed or never written. To fix "
                         "this, restore it from a backup; the rows that refer to it cannot "
                         "show their image until then.")


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

    def stage(self, model: str) -> Path:
        return new_staging(self._model_dir(model))

    def publish(self, model: str, staged: Path, version: int, metadata: dict) -> None:
        target = self._version_dir(model, version)
        if target.exists():
            raise FileExistsError(f"{target} is already published")
        write_atomically(staged / METADATA_FILE,
                          json.dumps(metadata, indent=2, sort_keys=True).encode())
        _fsync_tree(staged)
        os.rename(staged, target)
        _fsync_dir(target.parent)

    def discard(self, staged: Path) -> None:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)

    def remove_unpublished(self, model: str, known: set[int]) -> None:
        model_dir = self._model_dir(model)
        if not model_dir.is_dir():
            return
        for path in model_dir.iterdir():
            if path.name.isdigit() and int(path.name) not in known:
                shutil.rmtree(path, ignore_errors=True)
        remove_dead_staging(model_dir)

    def list_versions(self, model: str) -> list[int]:
        model_dir = self._model_dir(model)
        if not model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())

    def local_path(self, model: str, version: int,
                   expected: Mapping[str, str] | None = None) -> Path:
        folder = self._version_dir(model, version)
        if not folder.is_dir():
            raise VersionNotFound(f"model {model!r} has no files for version {version} in "
                                  f"{self.root}. To fix this, register the version again.")
        return folder

    def read_bytes(self, model: str, version: int, name: str) -> bytes:
        path = self.local_path(model, version) / check_file_name(name)
        if not path.is_file():
            raise VersionNotFound(f"version {version} of {model!r} has no {name} in "
                                  f"{path.parent}. To fix this, register the version again.")
        return path.read_bytes()

    def has_file(self, model: str, version: int, name: str) -> bool:
        return (self._version_dir(model, version) / check_file_name(name)).is_file()

    def put_file(self, model: str, version: int, name: str, data: bytes) -> None:
        write_atomically(self.local_path(model, version) / check_file_name(name), data)

    def put_object(self, key: str, data: bytes) -> None:
        # No fsync: the prediction log's rows commit with synchronous=NORMAL, and a
        # killed process loses neither (the page cache outlives it).
        write_atomically(inside(self.root, check_object_key(key)), data, durable=False)

    def read_object(self, key: str, offset: int, length: int) -> bytes:
        try:
            with open(self.root / check_object_key(key), "rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError:
            raise missing_object(self.url, key) from None

    def list_objects(self, prefix: str) -> list[StoredObject]:
        folder = self.root / check_object_key(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                stat = path.stat()
                found.append(StoredObject(path.relative_to(self.root).as_posix(),
                                          stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda item: item.key)

    def list_folders(self, prefix: str) -> list[str]:
        folder = self.root / check_object_key(prefix.rstrip("/"))
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def delete_object(self, key: str) -> None:
        (self.root / check_object_key(key)).unlink(missing_ok=True)


def check_file_name(name: str) -> str:
    """A file's path inside a version's folder, refused unless it stays inside: relative,
    '/'-separated, no empty, '.' or '..' part, no backslash or control character. Every
    name that becomes a path (a key listed in a bucket included) passes here first."""
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name
            or any(part in ("", ".", "..") for part in parts)
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise RegistryError(f"{name!r} is not a file name inside a version's folder. To fix "
                            "this, use a relative path without '..' (the artifact store may "
                            "hold a key that someone else wrote there).")
    return name


def inside(folder: Path, name: str) -> Path:
    """``folder / name`` for a checked name, its parent folders made."""
    target = folder / check_file_name(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def new_staging(model_dir: Path) -> Path:
    """A new staging folder in ``model_dir``, named with the writer's pid so that a
    folder whose writer died can be told apart."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = model_dir / f"{_STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    staged.mkdir()
    return staged


def remove_dead_staging(model_dir: Path) -> None:
    if model_dir.is_dir():
        for path in model_dir.iterdir():
            if path.name.startswith(_STAGING_PREFIX) and not _writer_alive(path.name):
                shutil.rmtree(path, ignore_errors=True)


def _writer_alive(folder_name: str) -> bool:
    pid_text = folder_name[len(_STAGING_PREFIX):].split("-", 1)[0]
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Writes beside ``path``, flushes, then renames: the file appears whole or not at all
    (``durable``: flushed to the disk first, so that it also survives a power cut)."""
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        if durable:
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


def file_digests(folder: Path) -> dict[str, str]:
    """``sha256:<hex>`` of every file under ``folder``, by its path relative to it."""
    return {path.relative_to(folder).as_posix(): _sha256(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"
