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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.errors import InvalidInput, RegistryError, StorageUnavailable, VersionNotFound
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
        return _new_staging(self._model_dir(model))

    def publish(self, model: str, staged: Path, version: int, metadata: dict) -> None:
        target = self._version_dir(model, version)
        if target.exists():
            raise FileExistsError(f"{target} is already published")
        _write_atomically(staged / METADATA_FILE,
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
        _remove_dead_staging(model_dir)

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
        _write_atomically(self.local_path(model, version) / check_file_name(name), data)


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


def _inside(folder: Path, name: str) -> Path:
    """``folder / name`` for a checked name, its parent folders made."""
    target = folder / check_file_name(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _new_staging(model_dir: Path) -> Path:
    """A new staging folder in ``model_dir``, named with the writer's pid so that a
    folder whose writer died can be told apart."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = model_dir / f"{_STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    staged.mkdir()
    return staged


def _remove_dead_staging(model_dir: Path) -> None:
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


class S3ArtifactStore(ArtifactStore):
    """Versions' files in an S3-compatible bucket (``s3://bucket/prefix``): AWS, MinIO,
    Ceph. The endpoint, region and credentials come from the usual AWS settings
    (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` ... or a
    profile), which boto3 reads itself.

    Layout: the same numbered folders, as keys ``<prefix>/<model>/<N>/<path>``.
    ``metadata.json`` is uploaded last and marks the version complete: a version
    without it is invisible (``list_versions``, reads) and removed by the next
    registration, so a writer killed mid-upload leaves nothing anyone loads. Its
    ``files`` hold the content hashes the catalog also keeps; every file downloaded
    into the local read-through cache (``cache_dir``) is checked against them, and a
    mismatch is refused, never loaded.
    """

    def __init__(self, url: str, cache_dir: Path, client: Any = None):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidInput(f"ARTIFACTS_URL {url!r} is not s3://BUCKET[/PREFIX]. To fix "
                               "this, name the bucket, e.g. s3://models/registry.")
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.cache_dir = Path(cache_dir)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, model: str, version: int | None = None, name: str = "") -> str:
        parts = [self.prefix, validate_model_name(model)]
        if version is not None:
            parts.append(str(parse_version(version)))
        return "/".join(p for p in parts if p) + "/" + name

    def _call(self, what: str, operation: Callable[..., Any], **arguments: Any) -> Any:
        """One S3 request; a store that cannot be reached is one clear error."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return operation(Bucket=self.bucket, **arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise
            raise StorageUnavailable(
                f"the artifact store {self.url} refused to {what} ({code}: "
                f"{error.response.get('Error', {}).get('Message', '')}). To fix this, check "
                "that the bucket exists and the AWS credentials may read and write it."
            ) from None
        except BotoCoreError as error:
            raise StorageUnavailable(
                f"cannot reach the artifact store {self.url} ({error}). To fix this, start "
                "it or correct ARTIFACTS_URL and AWS_ENDPOINT_URL.") from None

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: dict = {}
        while True:
            page = self._call("list files", self.client.list_objects_v2, Prefix=prefix,
                              **token)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("look up a file", self.client.head_object, Key=key)
            return True
        except ClientError:
            return False

    def stage(self, model: str) -> Path:
        return _new_staging(self.cache_dir / validate_model_name(model))

    def publish(self, model: str, staged: Path, version: int, metadata: dict) -> None:
        marker = self._key(model, version, METADATA_FILE)
        if self._exists(marker):
            raise FileExistsError(f"{marker} is already published")
        files = [p for p in sorted(staged.rglob("*")) if p.is_file()
                 and p.name != METADATA_FILE]
        from concurrent.futures import ThreadPoolExecutor

        def upload(path: Path) -> None:
            self._call("store a file", self.client.put_object, Body=path.read_bytes(),
                       Key=self._key(model, version, path.relative_to(staged).as_posix()))

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(upload, files))
        body = json.dumps(metadata, indent=2, sort_keys=True).encode()
        (staged / METADATA_FILE).write_bytes(body)
        self._call("store a file", self.client.put_object, Body=body, Key=marker)

    def discard(self, staged: Path) -> None:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)

    def remove_unpublished(self, model: str, known: set[int]) -> None:
        for key in self._keys(self._key(model)):
            number = key[len(self._key(model)):].split("/", 1)[0]
            if number.isdigit() and int(number) not in known:
                self._call("remove a file", self.client.delete_object, Key=key)
        _remove_dead_staging(self.cache_dir / validate_model_name(model))

    def list_versions(self, model: str) -> list[int]:
        base = self._key(model)
        return sorted(int(number) for key in self._keys(base)
                      for number, _, rest in [key[len(base):].partition("/")]
                      if number.isdigit() and rest == METADATA_FILE)

    def local_path(self, model: str, version: int,
                   expected: Mapping[str, str] | None = None) -> Path:
        """The cached copy, topped up with files added since. Only the version's files are
        fetched (a key outside them, e.g. ``m/1/../../x``, is never written), each checked
        against its content hash: the catalog's (``expected``), or without one the hashes
        the version was published with (its ``metadata.json``). A version registered
        before hashes were recorded fetches what its prefix holds, names checked only."""
        folder = self.cache_dir / validate_model_name(model) / str(parse_version(version))
        if not self._published(model, version):
            raise VersionNotFound(f"model {model!r} has no version {version} in {self.url}. "
                                  "To fix this, register the version again.")
        cached_marker = folder / METADATA_FILE
        if expected is None or not cached_marker.is_file():  # else nothing to read it for
            marker = self.read_bytes(model, version, METADATA_FILE)
            if expected is None:
                expected = json.loads(marker).get("files") or {}
            if not cached_marker.is_file():
                _write_atomically(_inside(folder, METADATA_FILE), marker)
        base = self._key(model, version)
        for key in self._keys(base):
            name = key[len(base):]
            if name == METADATA_FILE or (expected and name not in expected):
                continue  # not a file of the version as recorded
            try:
                target = _inside(folder, name)
            except RegistryError:
                LOGGER.warning("skipping the key %r in %s: not a file name", key, self.url)
                continue
            if target.is_file():
                continue
            data = self._call("read a file", self.client.get_object, Key=key)["Body"].read()
            if expected and f"sha256:{hashlib.sha256(data).hexdigest()}" != expected[name]:
                raise RegistryError(
                    f"{self.url}/{model}/{version}/{name} does not match the content hash "
                    "recorded when it was stored: it was changed or damaged in the "
                    "bucket. To fix this, restore it from the bucket's versioning or a "
                    "backup; it is not loaded.")
            _write_atomically(target, data)
        return folder

    def _published(self, model: str, version: int) -> bool:
        return self._exists(self._key(model, version, METADATA_FILE))

    def read_bytes(self, model: str, version: int, name: str) -> bytes:
        from botocore.exceptions import ClientError

        check_file_name(name)
        missing = VersionNotFound(f"version {version} of {model!r} has no {name} in "
                                  f"{self.url}. To fix this, register the version again.")
        if name != METADATA_FILE and not self._published(model, version):
            raise missing
        try:
            response = self._call("read a file", self.client.get_object,
                                  Key=self._key(model, version, name))
        except ClientError:
            raise missing from None
        return response["Body"].read()

    def has_file(self, model: str, version: int, name: str) -> bool:
        return self._published(model, version) and self._exists(
            self._key(model, version, check_file_name(name)))

    def put_file(self, model: str, version: int, name: str, data: bytes) -> None:
        if not self._published(model, version):
            raise VersionNotFound(f"model {model!r} has no version {version} in {self.url}. "
                                  "To fix this, register the version first.")
        # One PUT is atomic: readers see the old object or the new one, never a mix.
        self._call("store a file", self.client.put_object, Body=data,
                   Key=self._key(model, version, check_file_name(name)))
