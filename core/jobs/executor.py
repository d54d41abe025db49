"""Where jobs run: the executor seam.

An executor starts work on queued jobs, says whether a job's worker still runs
it, and passes on a cancellation. Job records (``core.jobs.records``) and what a
job does (its kind's handler, ``core.jobs.worker``) are not its concern.
"""

from __future__ import annotations

import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from core.jobs.records import Job

# The worker's entry point; its command line is how a live worker is recognised.
WORKER_MODULE = "core.worker"


class JobExecutor(ABC):
    """Runs queued jobs somewhere: here, in a local process; on a cluster, elsewhere."""

    name: str

    @abstractmethod
    def start(self) -> None:
        """Makes sure a worker will claim the queued jobs (starting one if needed)."""

    @abstractmethod
    def is_running(self, job: Job) -> bool:
        """Whether ``job``'s worker is still alive (recovery fails the jobs of dead ones)."""

    @abstractmethod
    def cancel(self, job: Job) -> None:
        """Passes a cancellation on to a running job's worker, beyond the record's flag."""


class LocalProcessExecutor(JobExecutor):
    """A worker process on this machine (``python -m core.worker``), one job at a time.

    The worker reads the cancellation flag with every progress update and stops at
    the next training step, so ``cancel`` has nothing more to do.
    """

    name = "local"

    def __init__(self, registry_dir: Path, model: str, project_root: Path, log_dir: Path,
                 environment: Mapping[str, str]):
        self.registry_dir, self.model = registry_dir, model
        self.project_root, self.log_dir = project_root, log_dir
        self.environment = dict(environment)  # the worker opens the same database

    def start(self):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "worker.log", "ab") as log:
            # A new session: the worker outlives the dashboard run or CLI that started it.
            subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, "--registry", str(self.registry_dir),
                 "--model-name", self.model],
                cwd=self.project_root, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=self.environment, start_new_session=True)

    def is_running(self, job):
        return worker_alive(job.pid)

    def cancel(self, job):
        pass


def worker_alive(pid: int | None) -> bool:
    """Whether ``pid`` is still a worker (a reused pid running something else is not)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().split(b"\0")
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return False  # a zombie has finished, whatever its command line says
    except (OSError, IndexError):
        return False
    return WORKER_MODULE.encode() in command
