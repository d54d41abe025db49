"""Registry behaviour: one contract suite that every catalog + artifact store passes."""

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from core.app import build_backends
from core.audit import Actor, AuditEntry
from core.config import load_config
from core.errors import ActionRefused, InvalidInput, RegistryError, VersionNotFound
from core.registry.catalog import INITIAL_BASELINE_NOTE
from core.registry.records import VersionMetadata
from core.registry.registry import Registry
from tests.conftest import FIXED_NOW, PROJECT_ROOT, new_bucket, on_database, sample_metadata
from tests.consistency import assert_consistent, kill_after, kill_moments

ALICE = Actor("alice", "operator")
REGISTRATION_KILLS = 12

# Each backend combination the composition root can build (database, artifact store);
# the suite runs against each.
BACKENDS = {"sqlite+file": ("sqlite", False), "postgresql+file": ("postgresql", False),
            "postgresql+s3": ("postgresql", True)}


def open_registry(root, settings=None):
    config = load_config(settings or {}).with_overrides(registry_dir=root, model_name="fashion")
    return build_backends(config).registry


@pytest.fixture(params=sorted(BACKENDS))
def registry(request, tmp_path):
    database, on_s3 = BACKENDS[request.param]
    config = load_config({}).with_overrides(
        registry_dir=tmp_path / "registry", model_name="fashion",
        artifacts_url=new_bucket(request) if on_s3 else None)
    return build_backends(on_database(config, database, request)).registry


def write_files(folder):
    (folder / "model.tflite").write_bytes(b"tflite")
    (folder / "model.keras").write_bytes(b"keras")


def register(registry, parent=None, **metadata):
    return registry.register_version(write_files, sample_metadata(**metadata),
                                     actor=ALICE, now=FIXED_NOW, parent=parent)


def test_first_version_is_champion_with_baseline_note(registry):
    first = register(registry)
    assert (first.version, first.status, first.created_by) == (1, "champion", "alice")
    assert first.created_at == "2026-01-02T03:04:05+00:00"
    history = [change.as_dict() for change in registry.status_history()]
    assert history == [{"version": 1, "at": first.created_at, "actor": "alice",
                        "role": "operator", "action": "register", "from_status": None,
                        "to_status": "champion", "reason": INITIAL_BASELINE_NOTE}]


def test_later_versions_are_candidates_with_lineage(registry):
    register(registry)
    second = register(registry, parent=1)
    assert (second.version, second.status, second.parent) == (2, "candidate", 1)
    assert [v.version for v in registry.list_versions()] == [1, 2]
    assert registry.get_champion().version == 1


def test_metadata_file_matches_catalog(registry):
    version = register(registry, metrics={"test": {"accuracy": 0.9}})
    folder = registry.files(version.version)
    on_disk = json.loads((folder / "metadata.json").read_text())
    assert on_disk == version.metadata.as_dict() == registry.get_version(1).metadata.as_dict()
    assert VersionMetadata.from_dict(on_disk) == version.metadata
    assert on_disk["version"] == 1 and on_disk["metrics"]["test"]["accuracy"] == 0.9
    assert "recipe" not in on_disk  # trained from scratch: no retraining recipe
    assert on_disk["created_at"] == "2026-01-02T03:04:05+00:00"
    assert on_disk["created_by"] == "alice" and on_disk["parent"] is None
    assert on_disk["registered_as"] == "champion"
    assert on_disk["registration_note"] == INITIAL_BASELINE_NOTE
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.keras",
                                                        "model.tflite"]


def decision(action: str, version: int) -> AuditEntry:
    return AuditEntry(at=FIXED_NOW.isoformat(), actor="bob", role="reviewer", action=action,
                      outcome="done", model="fashion", target=f"version {version}",
                      version=version, reason="test")


def test_exactly_one_champion(registry):
    register(registry)
    register(registry)
    register(registry)
    entry = registry.catalog.change_status("fashion", 3, "champion",
                                           expected={3: "candidate", 1: "champion"},
                                           entry=decision("promote", 3))
    assert entry.seq == 4 and entry.hash  # after three registrations; chained
    statuses = {v.version: v.status for v in registry.list_versions()}
    assert statuses == {1: "archived", 2: "candidate", 3: "champion"}
    with pytest.raises(ActionRefused, match="is the champion"):
        registry.catalog.change_status("fashion", 3, "rejected", expected={},
                                       entry=decision("reject", 3))
    assert registry.get_champion().version == 3
    history = [(h.version, h.action, h.to_status) for h in registry.status_history()]
    assert history[-2:] == [(3, "promote", "champion"), (1, "archive", "archived")]


def test_status_change_refused_when_state_moved_on(registry):
    """A decision made on a stale view changes nothing and says who moved it."""
    register(registry)
    register(registry)
    register(registry)
    registry.catalog.change_status("fashion", 2, "champion",
                                   expected={2: "candidate", 1: "champion"},
                                   entry=decision("promote", 2))
    before = registry.status_history()
    with pytest.raises(ActionRefused, match=r"version 1 is archived now, no longer champion "
                                            r"\(bob: archive"):
        registry.catalog.change_status("fashion", 3, "champion",
                                       expected={3: "candidate", 1: "champion"},
                                       entry=decision("promote", 3))
    assert registry.get_champion().version == 2
    assert registry.get_version(3).status == "candidate"
    assert registry.status_history() == before


def test_unknown_version_lists_existing_ones(registry):
    register(registry)
    register(registry)
    with pytest.raises(VersionNotFound, match=r"no version 7 \(versions: 1, 2\)"):
        registry.get_version(7)


def test_empty_registry_reads_create_nothing(tmp_path):
    root = tmp_path / "absent"
    registry = open_registry(root)
    assert registry.list_versions() == []
    assert registry.find_champion() is None
    with pytest.raises(VersionNotFound, match="python -m core bootstrap"):
        registry.get_champion()
    assert not root.exists()


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65, "a..b"])
def test_unsafe_model_names_are_refused(tmp_path, name):
    backends = build_backends(load_config({}).with_overrides(registry_dir=tmp_path))
    with pytest.raises(InvalidInput, match="invalid model name"):
        Registry(backends.catalog, backends.artifacts, name)


def test_failed_artifact_writer_leaves_nothing(registry):
    def broken(folder):
        (folder / "model.keras").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        registry.register_version(broken, sample_metadata(), actor=ALICE, now=FIXED_NOW)
    assert registry.list_versions() == [] and registry.artifacts.list_versions("fashion") == []
    # Nothing left where the store stages files: the registry folder, or the S3 cache.
    staging = getattr(registry.artifacts, "root", None) or registry.artifacts.cache_dir
    assert list((staging / "fashion").iterdir()) == []


# --- a writer killed mid-registration ---------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timezone
    from pathlib import Path
    from core.app import build_backends
    from core.config import load_config
    from core.audit import Actor
    from tests.conftest import sample_metadata
    ALICE = Actor("alice", "operator")
    root, pause_at = sys.argv[1], sys.argv[2]
    registry = build_backends(load_config({}).with_overrides(
        registry_dir=Path(root), model_name="fashion")).registry

    def write(folder):
        (folder / "model.keras").write_bytes(b"k" * 100_000)
        if pause_at == "artifacts":
            print("paused", flush=True); time.sleep(60)
        (folder / "model.tflite").write_bytes(b"t" * 100_000)

    if pause_at == "publish":
        # Stop right after the folder is renamed, before the catalog row commits.
        original = registry.catalog.create_model_version
        def create(model, **kw):
            publish = kw["publish"]
            def paused_publish(version, metadata):
                publish(version, metadata)
                print("paused", flush=True); time.sleep(60)
            return original(model, **(kw | {"publish": paused_publish}))
        registry.catalog.create_model_version = create
    if pause_at == "loop":
        print("paused", flush=True)
        while True:
            registry.register_version(write, sample_metadata(), actor=ALICE,
                                      now=datetime.now(timezone.utc))
    registry.register_version(write, sample_metadata(), actor=ALICE,
                              now=datetime.now(timezone.utc))
""")


def start_writer(root, pause_at):
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(root), pause_at],
                               cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "paused"
    return process


def assert_only_complete_versions(root):
    """The crash-safety invariants, and every version's files whole (the writer's sizes)."""
    assert_consistent(load_config({}).with_overrides(registry_dir=root, model_name="fashion"))
    registry = open_registry(root)
    for version in registry.list_versions():
        assert (registry.files(version.version) / "model.tflite").stat().st_size == 100_000
    return registry


@pytest.mark.parametrize("pause_at", ["artifacts", "publish"])
def test_killed_writer_never_leaves_a_half_version(tmp_path, pause_at):
    root = tmp_path / "registry"
    kill_after(start_writer(root, pause_at), 0)
    registry = open_registry(root)
    assert registry.list_versions() == []  # nothing half-written is visible
    assert_only_complete_versions(root)
    # The next registration takes number 1 and succeeds.
    assert register(registry).version == 1


def test_writer_killed_at_random_moments(tmp_path):
    root = tmp_path / "registry"
    for moment in kill_moments(random.Random(7), REGISTRATION_KILLS, 0.0, 0.6):
        kill_after(start_writer(root, "loop"), moment)
        assert_only_complete_versions(root)
    assert len(open_registry(root).list_versions()) > REGISTRATION_KILLS


def test_registration_survives_a_concurrent_writer(tmp_path):
    """Two processes registering at once get distinct numbers and one champion."""
    root = tmp_path / "registry"
    code = ("import sys; from pathlib import Path; from datetime import datetime, timezone\n"
            "from core.app import build_backends; from core.config import load_config\n"
            "from core.audit import Actor\n"
            "from tests.conftest import sample_metadata\n"
            "r = build_backends(load_config({}).with_overrides(registry_dir=Path(sys.argv[1]), "
            "model_name='fashion')).registry\n"
            "for _ in range(5): r.register_version(lambda f: (f / 'model.tflite')"
            ".write_bytes(b't' * 100_000), sample_metadata(), actor=Actor('p', 'operator'), "
            "now=datetime.now(timezone.utc))")
    processes = [subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=PROJECT_ROOT)
                 for _ in range(2)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    versions = open_registry(root).list_versions()
    assert [v.version for v in versions] == list(range(1, 11))
    assert sum(v.status == "champion" for v in versions) == 1
    assert os.listdir(root / "fashion") and len(os.listdir(root / "fashion")) == 10


def test_an_added_file_is_recorded_and_checked_like_a_registered_one(registry):
    version = register(registry).version
    registry.add_file(version, "reference.npz", b"profile")
    assert registry.get_version(version).metadata.files["reference.npz"].startswith("sha256:")
    assert registry.read_file(version, "reference.npz") == b"profile"
    store = registry.artifacts
    if not hasattr(store, "client"):
        return  # a local folder is read where it is written: nothing is downloaded
    # Someone swaps the file in the bucket: a fresh cache refuses it (the catalog's hash).
    store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/fashion/{version}/"
                            "reference.npz", Body=b"swapped")
    store.cache_dir = store.cache_dir.parent / "fresh-cache"
    with pytest.raises(RegistryError, match="does not match the content hash"):
        registry.read_file(version, "reference.npz")
