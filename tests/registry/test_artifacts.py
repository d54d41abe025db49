"""The artifact store's contract: one suite that every implementation passes."""

import json
import os

import pytest

from core.errors import InvalidInput, RegistryError, VersionNotFound
from core.registry.artifacts import (
    METADATA_FILE,
    ArtifactStore,
    LocalArtifactStore,
    file_digests,
)
from core.registry.s3_artifacts import S3ArtifactStore
from tests.conftest import new_bucket

STORES = {
    "file": lambda request, tmp_path: LocalArtifactStore(tmp_path / "artifacts"),
    "s3": lambda request, tmp_path: S3ArtifactStore(new_bucket(request), tmp_path / "cache"),
}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path) -> ArtifactStore:
    return STORES[request.param](request, tmp_path)


@pytest.fixture
def s3_store(request, tmp_path) -> S3ArtifactStore:
    return STORES["s3"](request, tmp_path)


def stage_files(store: ArtifactStore, model: str = "m"):
    staged = store.stage(model)
    (staged / "model.tflite").write_bytes(b"tflite")
    (staged / "saved_model").mkdir()
    (staged / "saved_model" / "saved_model.pb").write_bytes(b"pb")
    return staged


def test_published_files_are_readable_under_their_number(store):
    store.publish("m", stage_files(store), 1, {"version": 1})
    assert store.list_versions("m") == [1]
    assert store.read_bytes("m", 1, "model.tflite") == b"tflite"
    assert json.loads(store.read_bytes("m", 1, METADATA_FILE)) == {"version": 1}
    local = store.local_path("m", 1)
    assert (local / "saved_model" / "saved_model.pb").read_bytes() == b"pb"
    assert store.has_file("m", 1, "model.tflite") and not store.has_file("m", 1, "x.bin")


def test_staged_files_are_invisible_until_published(store):
    staged = stage_files(store)
    assert store.list_versions("m") == []
    with pytest.raises(VersionNotFound, match="To fix this"):
        store.local_path("m", 1)
    store.discard(staged)
    assert not staged.exists() and store.list_versions("m") == []


def test_a_published_number_is_never_overwritten(store):
    store.publish("m", stage_files(store), 1, {"version": 1})
    with pytest.raises(FileExistsError):
        store.publish("m", stage_files(store), 1, {"version": 99})
    assert json.loads(store.read_bytes("m", 1, METADATA_FILE)) == {"version": 1}


def test_remove_unpublished_keeps_known_versions_and_live_writers(store):
    for number in (1, 2):
        store.publish("m", stage_files(store), number, {"version": number})
    live = stage_files(store)  # this process is alive: its staging folder stays
    store.remove_unpublished("m", known={1})
    assert store.list_versions("m") == [1]
    assert live.exists()


def test_remove_unpublished_removes_a_dead_writers_staging(store, tmp_path):
    staged = stage_files(store)
    dead = staged.with_name(staged.name.replace(f"-{os.getpid()}-", "-999999999-"))
    staged.rename(dead)
    store.remove_unpublished("m", known=set())
    assert not dead.exists()


def test_objects_outside_the_versions_are_written_read_by_range_listed_and_removed(store):
    store.put_object("_logs/m/2026-01-01/a.pack", b"0123456789")
    store.put_object("_logs/m/2026-01-02/b.pack", b"xyz")
    assert store.read_object("_logs/m/2026-01-01/a.pack", 3, 4) == b"3456"
    listed = store.list_objects("_logs/m/")
    assert [(item.key, item.size) for item in listed] == [("_logs/m/2026-01-01/a.pack", 10),
                                                         ("_logs/m/2026-01-02/b.pack", 3)]
    assert all(item.modified > 0 for item in listed)
    assert store.list_objects("_logs/other/") == [] and store.list_versions("m") == []
    assert store.list_folders("_logs/m/") == ["2026-01-01", "2026-01-02"]
    assert store.list_folders("_logs/") == ["m"] and store.list_folders("_none/") == []
    store.delete_object("_logs/m/2026-01-01/a.pack")
    store.delete_object("_logs/m/2026-01-01/a.pack")  # already gone: nothing happens
    with pytest.raises(RegistryError, match="is missing.*To fix this"):
        store.read_object("_logs/m/2026-01-01/a.pack", 0, 1)
    assert [item.key for item in store.list_objects("_logs/m/")] == ["_logs/m/2026-01-02/b.pack"]


@pytest.mark.parametrize("key", ["m/1/model.tflite", "_logs/../m/1/x", "/_abs"])
def test_object_keys_never_reach_a_versions_folder(store, key):
    with pytest.raises(RegistryError, match="To fix this"):
        store.put_object(key, b"x")


def test_put_file_adds_to_a_published_version_whole(store):
    store.publish("m", stage_files(store), 1, {"version": 1})
    store.put_file("m", 1, "reference.npz", b"profile")
    assert store.read_bytes("m", 1, "reference.npz") == b"profile"
    with pytest.raises(VersionNotFound):
        store.put_file("m", 7, "reference.npz", b"profile")


@pytest.mark.parametrize("model", ["../x", "a/b", ""])
def test_unsafe_model_names_never_become_paths(store, model):
    with pytest.raises(InvalidInput, match="invalid model name"):
        store.stage(model)
    with pytest.raises(InvalidInput, match="invalid model name"):
        store.list_versions(model)


# --- S3: what only a remote store has ------------------------------------------------------

def test_a_half_uploaded_version_is_invisible_and_removed(s3_store):
    s3_store.publish("m", stage_files(s3_store), 1, {"version": 1})
    # A writer killed mid-publish: some files uploaded, no metadata.json (the marker).
    s3_store.client.put_object(Bucket=s3_store.bucket, Key="registry/m/2/model.tflite",
                               Body=b"half")
    assert s3_store.list_versions("m") == [1]
    with pytest.raises(VersionNotFound):
        s3_store.local_path("m", 2)
    assert not s3_store.has_file("m", 2, "model.tflite")
    s3_store.remove_unpublished("m", known={1})
    keys = [o["Key"] for o in s3_store.client.list_objects_v2(
        Bucket=s3_store.bucket, Prefix="registry/m/2/").get("Contents", [])]
    assert keys == [] and s3_store.list_versions("m") == [1]


def test_downloads_are_checked_against_the_registered_hashes(s3_store):
    staged = stage_files(s3_store)
    hashes = file_digests(staged)
    s3_store.publish("m", staged, 1, {"version": 1, "files": hashes})
    local = s3_store.local_path("m", 1)
    assert file_digests(local) == hashes | {METADATA_FILE: file_digests(local)[METADATA_FILE]}
    # Someone replaces a file in the bucket: a fresh cache refuses to load it.
    s3_store.client.put_object(Bucket=s3_store.bucket, Key="registry/m/1/model.tflite",
                               Body=b"evil")
    fresh = S3ArtifactStore(s3_store.url, local.parent.parent.parent / "other-cache")
    with pytest.raises(RegistryError, match="does not match the content hash"):
        fresh.local_path("m", 1)
    assert not (fresh.cache_dir / "m" / "1" / "model.tflite").exists()


def test_files_added_later_reach_an_existing_cache(s3_store):
    s3_store.publish("m", stage_files(s3_store), 1, {"version": 1})
    other = S3ArtifactStore(s3_store.url, s3_store.cache_dir.parent / "other-cache")
    assert not (other.local_path("m", 1) / "reference.npz").exists()
    s3_store.put_file("m", 1, "reference.npz", b"profile")
    assert (other.local_path("m", 1) / "reference.npz").read_bytes() == b"profile"


def test_an_unreachable_store_is_one_clear_error(tmp_path):
    import boto3
    from botocore.config import Config as BotoConfig

    from tests.servers import free_port

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}",
                          region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x",
                          config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=2))
    store = S3ArtifactStore("s3://nowhere/registry", tmp_path / "cache", client=client)
    from core.errors import StorageUnavailable
    with pytest.raises(StorageUnavailable, match="cannot reach the artifact store.*To fix"):
        store.list_versions("m")


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", "a//b", "a\\b",
                                  ".", "x\n"])
def test_file_names_that_leave_a_versions_folder_are_refused(store, name):
    store.publish("m", stage_files(store), 1, {"version": 1})
    for attempt in (lambda: store.read_bytes("m", 1, name),
                    lambda: store.put_file("m", 1, name, b"x"),
                    lambda: store.has_file("m", 1, name)):
        with pytest.raises(RegistryError, match="not a file name inside"):
            attempt()


def test_a_key_with_dot_dot_in_the_bucket_is_never_written_outside_the_cache(s3_store):
    staged = stage_files(s3_store)
    hashes = file_digests(staged)
    s3_store.publish("m", staged, 1, {"version": 1, "files": hashes})
    # Someone with write access to the bucket adds keys under the version's prefix.
    for key in ("registry/m/1/../../../../escaped.txt", "registry/m/1/extra.bin"):
        s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"planted")
    root = s3_store.cache_dir.parent
    local = s3_store.local_path("m", 1, expected=hashes)  # as the registry calls it
    planted = [p for p in root.rglob("*") if p.is_file() and p.read_bytes() == b"planted"]
    assert planted == []  # neither the escaping key nor the unrecorded file is fetched
    assert (local / "model.tflite").read_bytes() == b"tflite"
    # Without recorded hashes (a version from before they existed), names are still checked.
    legacy = S3ArtifactStore(s3_store.url, root / "legacy-cache")
    s3_store.client.put_object(Bucket=s3_store.bucket, Key="registry/m/1/metadata.json",
                               Body=json.dumps({"version": 1}).encode())
    legacy.local_path("m", 1)
    assert not any(p.name == "escaped.txt" for p in root.rglob("*"))
