"""The artifact store's contract: one suite that every implementation passes."""

import json
import os

import pytest

from core.errors import InvalidInput, VersionNotFound
from core.registry.artifacts import METADATA_FILE, ArtifactStore, LocalArtifactStore

STORES = {"file": lambda tmp_path: LocalArtifactStore(tmp_path / "artifacts")}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path) -> ArtifactStore:
    return STORES[request.param](tmp_path)


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
