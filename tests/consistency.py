"""What must hold after a process is killed at any moment: the crash-safety invariants.

Every kill test (registration, training job, decision, prediction-log burst) ends
with :func:`assert_consistent`, after looking at the registry the way the dashboard
and the CLI do next (listing jobs runs the runner's recovery).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from datetime import UTC, datetime

from core.config import Config
from core.jobs.executor import worker_alive
from tests.conftest import backends_of

VERSION_FILES = ("metadata.json", "model.keras", "model.tflite")


def assert_consistent(config: Config, acknowledged_log_ids=()) -> None:
    """Only complete versions, one champion, a verifying audit chain, no job running
    without its process, every acknowledged prediction-log row stored, a sound file."""
    backends = backends_of(config)
    jobs = backends.jobs.list(datetime.now(UTC))
    registry = backends.registry
    registry.repair()
    versions = registry.list_versions()
    model_dir = config.registry_dir / config.model_name
    folders = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    assert folders == sorted(str(v.version) for v in versions), "leftover or missing folders"
    for version in versions:
        folder = registry.files(version.version)
        for name in VERSION_FILES:
            assert (folder / name).is_file() and (folder / name).stat().st_size > 0, \
                f"version {version.version} lacks {name}"
        assert json.loads((folder / "metadata.json").read_text())["version"] == version.version
    if versions:
        assert [v.status for v in versions].count("champion") == 1
    verification = backends.audit_log.verify()
    assert verification.ok, verification.problem
    registered = {h.version for h in registry.status_history() if h.action == "register"}
    assert registered == {v.version for v in versions}
    for job in jobs:
        assert job.status != "running" or worker_alive(job.pid), \
            f"job {job.id} says running, but its worker {job.pid} is gone"
    stored = {row[0] for row in backends.database.read("SELECT id FROM predictions")}
    missing = set(acknowledged_log_ids) - stored
    assert not missing, f"{len(missing)} acknowledged prediction rows are missing"
    if backends.database.exists() and backends.database.dialect == "sqlite":
        assert backends.database.read("PRAGMA integrity_check") == [("ok",)]


def kill_moments(rng: random.Random, count: int, start: float, end: float) -> list[float]:
    """``count`` random moments in [start, end), one in each equal slice, so that every
    stretch of the work (and so every phase of it) gets killed in at least once."""
    width = (end - start) / count
    return [start + width * (i + rng.random()) for i in range(count)]


def kill_after(process: subprocess.Popen, seconds: float) -> None:
    """SIGKILL ``process`` (no clean-up can run) ``seconds`` from now; waits for it."""
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
