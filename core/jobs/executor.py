"""Where jobs run: the executor seam.

An executor starts work on queued jobs and says whether a job's worker still runs
it. Cancelling is not its concern: the record's flag, which every worker reads at each
training step wherever it runs, stops a job and lets it record the cancellation itself
(stopping a Ray job from outside would kill it before it could). Job records
(``core.jobs.records``) and what a job does (``core.jobs.worker``) are not its concern.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


class LocalProcessExecutor(JobExecutor):
    """A worker process on this machine (``python -m core.worker``), one job at a time."""

    name = "local"

    def __init__(self, registry_dir: Path, model: str, project_root: Path, log_dir: Path,
                 environment: Mapping[str, str]):
        self.registry_dir, self.model = registry_dir, model
        self.project_root, self.log_dir = project_root, log_dir
        self.environment = dict(environment)  # the worker opens the same database

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "worker.log", "ab") as log:
            # A new session: the worker outlives the dashboard run or CLI that started it.
            subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, "--registry", str(self.registry_dir),
                 "--model-name", self.model],
                cwd=self.project_root, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=self.environment, start_new_session=True)

    def is_running(self, job: Job) -> bool:
        return worker_alive(job.pid)


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


class RayJobExecutor(JobExecutor):
    """Workers as Ray Jobs on a Ray cluster (``JOB_EXECUTOR=ray://HOST:PORT``, the job
    server on the head's dashboard port, 8265 by default).

    Ray Jobs rather than Ray tasks: a Ray job is a driver process of its own on the
    cluster, so training goes on when the dashboard or CLI that submitted it exits or
    is killed, and any process can later ask its status or stop it by its submission
    id. A task lives and dies with the driver that submitted it: killing a dashboard
    process would kill the training it started. (Ray's own guide recommends Jobs for
    exactly this: submitting work to a cluster from outside it.)

    The Ray job runs ``python -m core.worker`` with the registry's settings (database,
    artifacts, model) and ``JOB_RUNNER=ray:<submission id>`` in its environment; the
    worker records that id on the job it claims, writes progress to the shared
    database as a local worker does, and reads the cancel flag at every step. Each
    cluster node needs the project and its requirements (on KubeRay: in the image)
    and the credentials for the database and the bucket, like any server.
    """

    name = "ray"

    def __init__(self, address: str, registry_settings: Mapping[str, str], model: str,
                 project_root: Path):
        self.address = address
        # The project sits at the same path on every node (the image's layout).
        self.settings = dict(registry_settings) | {"PYTHONPATH": str(project_root)}
        self.model = model
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            try:
                self._client = JobSubmissionClient(self.address)
            except (ConnectionError, RuntimeError, ValueError) as error:
                from core.errors import StorageUnavailable

                raise StorageUnavailable(
                    f"cannot reach the Ray job server at {self.address} ({error}). To fix "
                    "this, start the cluster (ray start --head) or correct JOB_EXECUTOR "
                    "(ray://HOST:PORT, PORT being the dashboard's, 8265 by default)."
                ) from None
        return self._client

    def start(self) -> None:
        submission_id = f"image-model-ops-{self.model}-{uuid.uuid4().hex[:12]}"
        self.client.submit_job(
            entrypoint=f"python -m {WORKER_MODULE}", submission_id=submission_id,
            runtime_env={"env_vars": self.settings | {"JOB_RUNNER": f"ray:{submission_id}"}},
            metadata={"model": self.model}, entrypoint_num_cpus=1)

    def is_running(self, job: Job) -> bool:
        if not job.runner or not job.runner.startswith("ray:"):
            return False
        from ray.job_submission import JobStatus

        try:
            status = self.client.get_job_status(job.runner.removeprefix("ray:"))
        except RuntimeError as error:
            if "does not exist" in str(error):
                return False  # the cluster was replaced: its jobs are gone
            return True  # the head cannot say right now: do not fail a running job
        except ConnectionError:
            return True
        return status in (JobStatus.PENDING, JobStatus.RUNNING)
