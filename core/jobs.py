"""Background training jobs: submit, follow, cancel, and recover from dead workers.

Jobs are rows in the registry's SQLite file. ``LocalProcessRunner`` starts a
worker process (``python -m core worker``) that runs one job at a time and then
claims the next queued one; finishing a job and claiming the next happen in
one transaction, so a job submitted at any moment is never left waiting with
no worker. A job marked running whose process is gone (killed, machine
restarted) is marked failed the next time anyone looks, linked to the
candidate it registered if it got that far; a job left queued by a worker that
died before claiming it gets a new worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from core import audit, sqlite
from core.audit import Actor, AuditEntry
from core.config import PROJECT_ROOT, Config
from core.errors import InvalidInput
from core.registry import Registry

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
LOG_TAIL_LINES = 30
# A worker claims its job within a second or two of starting; a job queued this long
# with nothing running has lost its worker (killed before claiming it).
WORKER_START_GRACE_SECONDS = 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    log_tail TEXT NOT NULL DEFAULT '',
    result_version INTEGER,
    error TEXT,
    pid INTEGER,
    started_at TEXT,
    finished_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
""" + audit.SCHEMA
_COLUMNS = ("id", "model", "kind", "submitted_by", "submitted_at", "params", "status",
            "progress", "log_tail", "result_version", "error", "pid", "started_at",
            "finished_at", "cancel_requested")


@dataclass(frozen=True)
class Job:
    id: int
    model: str
    kind: str
    submitted_by: str
    submitted_at: str
    params: dict
    status: str
    progress: dict  # epoch, epochs, step, steps, loss, accuracy, history (per epoch)
    log_tail: str
    result_version: int | None
    error: str | None
    pid: int | None
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool

    def summary(self) -> dict:
        """The JSON shape of ``python -m core jobs --json``."""
        return {"job": self.id, "kind": self.kind, "status": self.status,
                "submitted_by": self.submitted_by, "submitted_at": self.submitted_at,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "params": self.params, "progress": self.progress,
                "version": self.result_version, "error": self.error}


class JobStore:
    """The persisted job records (SQLite, in the registry's database file)."""

    def __init__(self, path: Path, model: str):
        self.path, self.model = Path(path), model

    def _row(self, row) -> Job:
        values = dict(zip(_COLUMNS, row))
        values["params"] = json.loads(values["params"])
        values["progress"] = json.loads(values["progress"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return Job(**values)

    def submit(self, kind: str, params: dict, *, actor: Actor, now: datetime) -> Job:
        """Queues a job; its audit entry commits with it."""
        at = now.isoformat(timespec="seconds")
        with sqlite.write_transaction(self.path, _SCHEMA) as db:
            job_id = db.execute(
                "INSERT INTO jobs (model, kind, submitted_by, submitted_at, params, status) "
                "VALUES (?, ?, ?, ?, ?, 'queued')",
                (self.model, kind, actor.name, at, json.dumps(params))).lastrowid
            audit.append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="submit_job", outcome="done",
                model=self.model, target=f"job {job_id}", details={"kind": kind,
                                                                     "params": params}))
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        rows = sqlite.read(self.path, f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ? "
                           "AND model = ?", (job_id, self.model))
        if not rows:
            known = [job.id for job in self.list()]
            raise InvalidInput(f"there is no job {job_id} (jobs: "
                               f"{', '.join(map(str, known)) or 'none yet'}). To fix this, "
                               "see 'python -m core jobs'.")
        return self._row(rows[0])

    def list(self) -> list[Job]:
        rows = sqlite.read(self.path, f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE model = ? "
                           "ORDER BY id DESC", (self.model,))
        return [self._row(row) for row in rows]

    def finish_and_claim_next(self, pid: int, now: datetime,
                              finished: tuple[int, str, dict] | None = None) -> Job | None:
        """Records a finished job (id, status, fields) and claims the next queued one.

        One transaction: either this worker takes the next job, or a running job
        exists (another worker's), or nothing is queued.
        """
        stamp = now.isoformat(timespec="seconds")
        with sqlite.write_transaction(self.path, _SCHEMA) as db:
            if finished is not None:
                job_id, status, fields = finished
                db.execute("UPDATE jobs SET status = ?, result_version = ?, error = ?, "
                           "finished_at = ? WHERE id = ?",
                           (status, fields.get("version"), fields.get("error"), stamp, job_id))
            if db.execute("SELECT 1 FROM jobs WHERE model = ? AND status = 'running'",
                          (self.model,)).fetchone():
                return None  # one training job at a time
            row = db.execute("SELECT id FROM jobs WHERE model = ? AND status = 'queued' "
                             "ORDER BY id LIMIT 1", (self.model,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', pid = ?, started_at = ? "
                       "WHERE id = ?", (pid, stamp, row[0]))
        return self.get(row[0])

    def update_progress(self, job_id: int, progress: dict, log_tail: str) -> bool:
        """Stores progress; returns True when cancellation was requested."""
        with sqlite.write_transaction(self.path, _SCHEMA, synchronous="NORMAL") as db:
            db.execute("UPDATE jobs SET progress = ?, log_tail = ? WHERE id = ?",
                       (json.dumps(progress), log_tail, job_id))
            (requested,) = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                      (job_id,)).fetchone()
        return bool(requested)

    def request_cancel(self, job_id: int, *, actor: Actor, now: datetime) -> Job:
        """Cancels a queued job at once; flags a running one (its worker stops). Audited."""
        job = self.get(job_id)
        at = now.isoformat(timespec="seconds")
        with sqlite.write_transaction(self.path, _SCHEMA) as db:
            (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if status in FINISHED:
                raise InvalidInput(f"job {job_id} has already {status}; nothing to cancel. "
                                   "To fix this, pick a queued or running job.")
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            db.execute("UPDATE jobs SET status = 'cancelled', finished_at = ? "
                       "WHERE id = ? AND status = 'queued'", (at, job_id))
            audit.append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="cancel_job", outcome="done",
                model=self.model, target=f"job {job_id}",
                details={"status_before": status, "submitted_by": job.submitted_by}))
        return self.get(job_id)

    def recover(self, now: datetime, is_alive,
                registered_version: Callable[[int], int | None] = lambda job_id: None
                ) -> list[int]:
        """Marks running jobs whose worker process is gone as failed; returns their ids.

        ``registered_version(job_id)`` finds the candidate a job registered before its
        worker died, so the record still points to it.
        """
        dead = [job for job in self.list()
                if job.status == "running" and not is_alive(job.pid, job.id)]
        if dead:
            with sqlite.write_transaction(self.path, _SCHEMA) as db:
                for job in dead:
                    version = registered_version(job.id)
                    error = ("the worker process died (killed or machine restarted); submit "
                             "the job again" if version is None else
                             f"the worker process died after registering candidate version "
                             f"{version}, before recording the job's end; if its comparison "
                             "with the champion is missing, run it from the Governance page "
                             "or with 'python -m core compare'")
                    db.execute("UPDATE jobs SET status = 'failed', finished_at = ?, error = ?, "
                               "result_version = ? WHERE id = ? AND status = 'running'",
                               (now.isoformat(timespec="seconds"), error, version, job.id))
        return [job.id for job in dead]


def queue_stalled(jobs: list[Job], now: datetime,
                  grace_seconds: float = WORKER_START_GRACE_SECONDS) -> bool:
    """Whether a job has waited longer than ``grace_seconds`` with no job running."""
    if any(job.status == "running" for job in jobs):
        return False
    return any(job.status == "queued" and (now - datetime.fromisoformat(
        job.submitted_at)).total_seconds() > grace_seconds for job in jobs)


class JobRunner(ABC):
    """Where jobs run. The local runner uses processes; a cluster runner could use a queue."""

    @abstractmethod
    def submit(self, kind: str, params: dict, *, actor: Actor, now: datetime) -> Job: ...

    @abstractmethod
    def status(self, job_id: int, now: datetime) -> Job: ...

    @abstractmethod
    def list(self, now: datetime) -> list[Job]: ...

    @abstractmethod
    def cancel(self, job_id: int, *, actor: Actor, now: datetime) -> Job: ...


def worker_alive(pid: int | None, job_id: int) -> bool:
    """Whether ``pid`` is still our worker (a reused pid running something else is not)."""
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
    return b"worker" in command and b"core" in command


class LocalProcessRunner(JobRunner):
    """Runs jobs in a worker process on this machine, one at a time."""

    def __init__(self, config: Config):
        self.config = config
        self.store = JobStore(config.database, config.model_name)

    def submit(self, kind, params, *, actor, now):
        self._recover(now)
        job = self.store.submit(kind, params, actor=actor, now=now)
        self._start_worker()
        return job

    def _recover(self, now: datetime) -> list[Job]:
        """Whoever looks at the jobs repairs what killed workers left behind; returns the
        jobs as they are afterwards."""
        if self.store.recover(now, worker_alive, self._registered_version):
            self._registry().repair()  # a half-written candidate's temporary folder
        jobs = self.store.list()
        if queue_stalled(jobs, now):
            self._start_worker()
        return jobs

    def _registry(self) -> Registry:
        return Registry(self.config.registry_dir, self.config.model_name)

    def _registered_version(self, job_id: int) -> int | None:
        return next((v.version for v in self._registry().list_versions()
                     if v.metadata.get("recipe", {}).get("job") == job_id), None)

    def _start_worker(self) -> None:
        log_dir = self.config.registry_dir / "jobs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "worker.log", "ab") as log:
            # A new session: the worker outlives the dashboard run or CLI that started it.
            subprocess.Popen(
                [sys.executable, "-m", "core", "--registry", str(self.config.registry_dir),
                 "--model-name", self.config.model_name, "worker"],
                cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)

    def status(self, job_id, now):
        self._recover(now)
        return self.store.get(job_id)

    def list(self, now):
        return self._recover(now)

    def cancel(self, job_id, *, actor, now):
        # The worker reads the flag with every progress update and stops training at
        # the next batch; a job already past training (exporting, comparing) finishes.
        return self.store.request_cancel(job_id, actor=actor, now=now)


class JobCancelled(Exception):
    """Raised inside a worker when its job is cancelled."""


def progress_tracker(store: JobStore, job_id: int, clock, min_interval: float = 0.5):
    """A training progress callback that writes to the job record (throttled).

    Raises JobCancelled from inside training when cancellation was requested.
    """
    state = {"last": None, "history": [], "lines": []}

    def on_progress(progress) -> None:
        now = clock()
        if progress.epoch_done:
            state["history"].append({"epoch": progress.epoch} | progress.logs)
            state["lines"].append(f"epoch {progress.epoch}/{progress.epochs}: " + ", ".join(
                f"{k}={v:.4f}" for k, v in progress.logs.items()))
        elif state["last"] is not None and (now - state["last"]).total_seconds() < min_interval:
            return
        state["last"] = now
        record = {"epoch": progress.epoch, "epochs": progress.epochs, "step": progress.step,
                  "steps": progress.steps, "loss": progress.logs.get("loss"),
                  "accuracy": progress.logs.get("accuracy"), "history": state["history"]}
        tail = "\n".join(state["lines"][-LOG_TAIL_LINES:])
        if store.update_progress(job_id, record, tail):
            raise JobCancelled()

    return on_progress
