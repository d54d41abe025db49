"""Versions' files in an S3-compatible bucket: the artifact store for a team's setup
(``ARTIFACTS_URL=s3://BUCKET/PREFIX``), the same layout as ``LocalArtifactStore``'s
folders, as keys."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.errors import InvalidInput, RegistryError, StorageUnavailable, VersionNotFound
from core.names import parse_version, validate_model_name
from core.registry.artifacts import (
    LOGGER,
    METADATA_FILE,
    ArtifactStore,
    StoredObject,
    check_file_name,
    check_object_key,
    inside,
    missing_object,
    new_staging,
    remove_dead_staging,
    write_atomically,
)


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

    def _listing(self, prefix: str, what: str = "Contents", **options: Any) -> list[dict]:
        """Every object under ``prefix`` (``what="CommonPrefixes"`` with a delimiter: its
        folders), page after page (S3 gives 1,000 at a time)."""
        items: list[dict] = []
        token: dict = {}
        while True:
            page = self._call("list files", self.client.list_objects_v2, Prefix=prefix,
                              **options, **token)
            items += page.get(what, [])
            if not page.get("IsTruncated"):
                return items
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _keys(self, prefix: str) -> list[str]:
        return [item["Key"] for item in self._listing(prefix)]

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("look up a file", self.client.head_object, Key=key)
            return True
        except ClientError:
            return False

    def stage(self, model: str) -> Path:
        return new_staging(self.cache_dir / validate_model_name(model))

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
        remove_dead_staging(self.cache_dir / validate_model_name(model))

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
                write_atomically(inside(folder, METADATA_FILE), marker)
        base = self._key(model, version)
        for key in self._keys(base):
            name = key[len(base):]
            if name == METADATA_FILE or (expected and name not in expected):
                continue  # not a file of the version as recorded
            try:
                target = inside(folder, name)
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
            write_atomically(target, data)
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

    def _object_key(self, key: str) -> str:
        return "/".join(p for p in (self.prefix, check_object_key(key)) if p)

    def put_object(self, key: str, data: bytes) -> None:
        self._call("store a file", self.client.put_object, Body=data,
                   Key=self._object_key(key))

    def read_object(self, key: str, offset: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        if length <= 0:
            return b""
        try:
            response = self._call("read a file", self.client.get_object,
                                  Key=self._object_key(key),
                                  Range=f"bytes={offset}-{offset + length - 1}")
        except ClientError:
            raise missing_object(self.url, key) from None
        return response["Body"].read()

    def list_objects(self, prefix: str) -> list[StoredObject]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted((StoredObject(item["Key"][strip:], int(item["Size"]),
                                    item["LastModified"].timestamp())
                       for item in self._listing(self._object_key(prefix.rstrip("/")) + "/")),
                      key=lambda item: item.key)

    def list_folders(self, prefix: str) -> list[str]:
        base = self._object_key(prefix.rstrip("/")) + "/"
        return sorted(item["Prefix"][len(base):].rstrip("/") for item in
                      self._listing(base, "CommonPrefixes", Delimiter="/"))

    def delete_object(self, key: str) -> None:
        self._call("remove a file", self.client.delete_object, Key=self._object_key(key))
