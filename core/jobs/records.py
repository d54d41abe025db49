"""Job records: what was asked, by whom, its state and progress, in the registry's database.

A worker finishes its job and claims the next queued one in one transaction,
so a job submitted at any moment is never left waiting with no worker, and
only one training job runs at a time. Where jobs run is the executor's concern
(``core.jobs.executor``); what a job does is its kind's (``core.jobs.worker``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import text

from core.audit import Actor, AuditEntry, append, stamp
from core.errors import InvalidInput
from core.storage.database import Database


# suggested: queued by the monitor for a human to start (then queued) or discard
# (then cancelled); no worker ever claims it.
class JobStatus(StrEnum):
    """Where a job is (a plain string to JSON and the database)."""

    SUGGESTED = "suggested"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES = tuple(JobStatus)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# A worker claims its job within a second or two of starting; a job queued this long
# with nothing running has lost its worker (killed before claiming it).
WORKER_START_GRACE_SECONDS = 30

_COLUMNS = ("id", "model", "kind", "submitted_by", "submitted_at", "params", "status",
            "progress", "log_tail", "result_version", "error", "pid", "started_at",
            "finished_at", "cancel_requested", "runner")


@dataclass(frozen=True)
class TrainingProgress:
    """How far a job's training is, as its worker last wrote it (``Job.progress``)."""

    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0  # per epoch; 0 until the first step is written
    loss: float | None = None
    accuracy: float | None = None
    history: tuple[dict, ...] = ()  # one entry per finished epoch

    @classmethod
    def of(cls, stored: dict) -> TrainingProgress:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in stored.items() if k in known}
        return cls(**values | {"history": tuple(stored.get("history", ()))})

    @property
    def started(self) -> bool:
        return self.steps > 0

    @property
    def steps_done(self) -> int:
        return (self.epoch - 1) * self.steps + self.step if self.started else 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps

    @property
    def fraction(self) -> float:
        """Between 0 and 1."""
        return min(1.0, self.steps_done / self.total_steps) if self.total_steps else 0.0


@dataclass(frozen=True)
class Job:
    id: int
    model: str
    kind: str
    submitted_by: str
    submitted_at: str
    params: dict
    status: JobStatus
    progress: dict  # epoch, epochs, step, steps, loss, accuracy, history (per epoch)
    log_tail: str
    result_version: int | None
    error: str | None
    pid: int | None
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool
    runner: str | None = None  # where the worker runs: "ray:<submission id>"; None: pid

    @property
    def training(self) -> TrainingProgress:
        """``progress`` as a typed record."""
        return TrainingProgress.of(self.progress)

    def summary(self) -> dict:
        """The JSON shape of ``python -m core jobs --json``."""
        return {"job": self.id, "kind": self.kind, "status": self.status,
                "submitted_by": self.submitted_by, "submitted_at": self.submitted_at,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "params": self.params, "progress": self.progress,
                "version": self.result_version, "error": self.error}


class JobStore:
    """The persisted job records of one model."""

    def __init__(self, database: Database, model: str):
        self.database, self.model = database, model

    def _row(self, row: Any) -> Job:
        values = dict(zip(_COLUMNS, row))
        values["params"] = json.loads(values["params"])
        values["progress"] = json.loads(values["progress"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        values["status"] = JobStatus(values["status"])
        return Job(**values)

    def submit(self, kind: str, params: dict, *, actor: Actor, now: datetime,
               suggested_because: str | None = None) -> Job:
        """Queues a job, or with ``suggested_because`` records it as suggested (waiting for
        a human to start or discard it); its audit entry commits with it."""
        at = stamp(now)
        status = "queued" if suggested_because is None else "suggested"
        with self.database.write() as db:
            job_id = db.execute(text(
                "INSERT INTO jobs (model, kind, submitted_by, submitted_at, params, status) "
                "VALUES (:model, :kind, :by, :at, :params, :status) RETURNING id"),
                {"model": self.model, "kind": kind, "by": actor.name, "at": at,
                 "params": json.dumps(params), "status": status}).scalar_one()
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role,
                action="submit_job" if suggested_because is None else "suggest_job",
                outcome="done", model=self.model, target=f"job {job_id}",
                reason=suggested_because or "", details={"kind": kind, "params": params}))
        return self.get(job_id)

    def start_suggested(self, job_id: int, *, actor: Actor, now: datetime) -> Job:
        """Queues a suggested job on a human's word (audited); the worker then claims it.

        The person who starts it becomes its submitter of record: the worker acts as them
        (the monitor that suggested it is no user, and may not train), and separation of
        duties bars them from deciding on the candidate it produces.
        """
        job = self.get(job_id)
        at = stamp(now)
        with self.database.write() as db:
            started = db.execute(text(
                "UPDATE jobs SET status = 'queued', submitted_by = :by, submitted_at = :at "
                "WHERE id = :id AND status = 'suggested'"),
                {"id": job_id, "by": actor.name, "at": at}).rowcount
            if not started:
                raise InvalidInput(f"job {job_id} is {job.status}, not suggested; only a "
                                   "suggested job can be started. To fix this, submit a new "
                                   "job ('python -m core retrain').")
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role, action="start_job", outcome="done",
                model=self.model, target=f"job {job_id}",
                details={"kind": job.kind, "suggested_by": job.submitted_by}))
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        rows = self.database.read(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = :id "
                                  "AND model = :model", {"id": job_id, "model": self.model})
        if not rows:
            known = [job.id for job in self.list_jobs()]
            raise InvalidInput(f"there is no job {job_id} (jobs: "
                               f"{', '.join(map(str, known)) or 'none yet'}). To fix this, "
                               "see 'python -m core jobs'.")
        return self._row(rows[0])

    def list_jobs(self) -> list[Job]:
        rows = self.database.read(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE model = "
                                  ":model ORDER BY id DESC", {"model": self.model})
        return [self._row(row) for row in rows]

    def finish_and_claim_next(self, pid: int, now: datetime,
                              finished: tuple[int, str, dict] | None = None,
                              runner: str | None = None) -> Job | None:
        """Records a finished job (id, status, fields) and claims the next queued one.

        One transaction: either this worker takes the next job, or a running job
        exists (another worker's), or nothing is queued.
        """
        at = stamp(now)
        with self.database.write() as db:
            if finished is not None:
                job_id, status, fields = finished
                db.execute(text("UPDATE jobs SET status = :status, result_version = :version, "
                                "error = :error, finished_at = :at WHERE id = :id"),
                           {"status": status, "version": fields.get("version"),
                            "error": fields.get("error"), "at": at, "id": job_id})
            model = {"model": self.model}
            if db.execute(text("SELECT 1 FROM jobs WHERE model = :model AND status = "
                               "'running'"), model).first():
                return None  # one training job at a time
            claimed = db.execute(text("SELECT id FROM jobs WHERE model = :model AND status = "
                                      "'queued' ORDER BY id LIMIT 1"), model).scalar()
            if claimed is None:
                return None
            db.execute(text("UPDATE jobs SET status = 'running', pid = :pid, runner = :runner, "
                            "started_at = :at WHERE id = :id"),
                       {"pid": pid, "runner": runner, "at": at, "id": claimed})
        return self.get(claimed)

    def update_progress(self, job_id: int, progress: dict, log_tail: str) -> bool:
        """Stores progress; returns True when cancellation was requested."""
        with self.database.write(synchronous="NORMAL") as db:
            db.execute(text("UPDATE jobs SET progress = :progress, log_tail = :tail "
                            "WHERE id = :id"),
                       {"progress": json.dumps(progress), "tail": log_tail, "id": job_id})
            requested = db.execute(text("SELECT cancel_requested FROM jobs WHERE id = :id"),
                                   {"id": job_id}).scalar()
        return bool(requested)

    def request_cancel(self, job_id: int, *, actor: Actor, now: datetime) -> Job:
        """Cancels a queued job at once; flags a running one (its worker stops). Audited."""
        job = self.get(job_id)
        at = stamp(now)
        with self.database.write() as db:
            status = db.execute(text("SELECT status FROM jobs WHERE id = :id"),
                                {"id": job_id}).scalar()
            if status in FINISHED:
                raise InvalidInput(f"job {job_id} has already {status}; nothing to cancel. "
                                   "To fix this, pick a queued or running job.")
            db.execute(text("UPDATE jobs SET cancel_requested = 1 WHERE id = :id"),
                       {"id": job_id})
            db.execute(text("UPDATE jobs SET status = 'cancelled', finished_at = :at "
                            "WHERE id = :id AND status IN ('queued', 'suggested')"),
                       {"at": at, "id": job_id})
            append(db, AuditEntry(
                at=at, actor=actor.name, role=actor.role,
                action="discard_job" if status == "suggested" else "cancel_job", outcome="done",
                model=self.model, target=f"job {job_id}",
                details={"status_before": status, "submitted_by": job.submitted_by}))
        return self.get(job_id)

    def recover(self, now: datetime, is_alive: Callable[["Job"], bool],
                registered_version: Callable[[int], int | None] = lambda job_id: None
                ) -> list[int]:
        """Marks running jobs whose worker is gone as failed; returns their ids.

        ``registered_version(job_id)`` finds the candidate a job registered before its
        worker died, so the record still points to it.
        """
        dead = [job for job in self.list_jobs()
                if job.status == "running" and not is_alive(job)]
        if dead:
            with self.database.write() as db:
                for job in dead:
                    version = registered_version(job.id)
                    error = ("the worker process died (killed or machine restarted); submit "
                             "the job again" if version is None else
                             f"the worker process died after registering candidate version "
                             f"{version}, before recording the job's end; if its comparison "
                             "with the champion is missing, run it from the Governance page "
                             "or with 'python -m core compare'")
                    db.execute(text("UPDATE jobs SET status = 'failed', finished_at = :at, "
                                    "error = :error, result_version = :version WHERE id = :id "
                                    "AND status = 'running'"),
                               {"at": stamp(now), "error": error,
                                "version": version, "id": job.id})
        return [job.id for job in dead]


def queue_stalled(jobs: list[Job], now: datetime,
                  grace_seconds: float = WORKER_START_GRACE_SECONDS) -> bool:
    """Whether a job has waited longer than ``grace_seconds`` with no job running."""
    if any(job.status == "running" for job in jobs):
        return False
    return any(job.status == "queued" and (now - datetime.fromisoformat(
        job.submitted_at)).total_seconds() > grace_seconds for job in jobs)


