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
from datetime import datetime, timezone

from core import audit, sqlite
from core.config import Config
from core.jobs import LocalProcessRunner, worker_alive
from core.lifecycle import open_registry

VERSION_FILES = ("metadata.json", "model.keras", "model.tflite")


def assert_consistent(config: Config, acknowledged_log_ids=()) -> None:
    """Only complete versions, one champion, a verifying audit chain, no job running
    without its process, every acknowledged prediction-log row stored, a sound file."""
    jobs = LocalProcessRunner(config).list(datetime.now(timezone.utc))
    registry = open_registry(config)
    registry.repair()
    versions = registry.list_versions()
    folders = sorted(p.name for p in registry.model_dir.iterdir()) \
        if registry.model_dir.is_dir() else []
    assert folders == sorted(str(v.version) for v in versions), "leftover or missing folders"
    for version in versions:
        folder = registry.version_dir(version.version)
        for name in VERSION_FILES:
            assert (folder / name).is_file() and (folder / name).stat().st_size > 0, \
                f"version {version.version} lacks {name}"
        assert json.loads((folder / "metadata.json").read_text())["version"] == version.version
    if versions:
        assert [v.status for v in versions].count("champion") == 1
    verification = audit.verify(config.database)
    assert verification.ok, verification.problem
    registered = {h["version"] for h in registry.status_history() if h["action"] == "register"}
    assert registered == {v.version for v in versions}
    for job in jobs:
        assert job.status != "running" or worker_alive(job.pid, job.id), \
            f"job {job.id} says running, but its worker {job.pid} is gone"
    stored = {row[0] for row in sqlite.read(config.database, "SELECT id FROM predictions")}
    missing = set(acknowledged_log_ids) - stored
    assert not missing, f"{len(missing)} acknowledged prediction rows are missing"
    if config.database.exists():
        assert sqlite.read(config.database, "PRAGMA integrity_check") == [("ok",)]


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
