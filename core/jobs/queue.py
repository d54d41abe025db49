"""Submitting, following and cancelling jobs; repairing what dead workers left behind.

A job marked running whose worker is gone (killed, machine restarted) is marked
failed the next time anyone looks, linked to the candidate it registered if it
got that far; a job left queued by a worker that died before claiming it gets a
new worker.
"""

from __future__ import annotations

from datetime import datetime

from core.audit import Actor
from core.jobs.executor import JobExecutor
from core.jobs.records import Job, JobStore, queue_stalled
from core.registry.registry import Registry


class JobQueue:
    """Job records and the executor that runs them, for one model."""

    def __init__(self, store: JobStore, executor: JobExecutor, registry: Registry):
        self.store, self.executor, self.registry = store, executor, registry

    def submit(self, kind: str, params: dict, *, actor: Actor, now: datetime) -> Job:
        """Queues a job (audited) and makes sure a worker will run it."""
        self.recover(now)
        job = self.store.submit(kind, params, actor=actor, now=now)
        self.executor.start()
        return job

    def suggest(self, kind: str, params: dict, *, actor: Actor, now: datetime,
                because: str) -> Job:
        """Records a job for a human to start or discard; no worker runs it until then."""
        return self.store.submit(kind, params, actor=actor, now=now, suggested_because=because)

    def start_suggested(self, job_id: int, *, actor: Actor, now: datetime) -> Job:
        job = self.store.start_suggested(job_id, actor=actor, now=now)
        self.executor.start()
        return job

    def recover(self, now: datetime) -> list[Job]:
        """Whoever looks at the jobs repairs what killed workers left behind; returns the
        jobs as they are afterwards."""
        if self.store.recover(now, self.executor.is_running, self._registered_version):
            self.registry.repair()  # a half-written candidate's staging folder
        jobs = self.store.list_jobs()
        if queue_stalled(jobs, now):
            self.executor.start()
        return jobs

    def _registered_version(self, job_id: int) -> int | None:
        return next((v.version for v in self.registry.list_versions()
                     if v.metadata.recipe and v.metadata.recipe.job == job_id), None)

    def status(self, job_id: int, now: datetime) -> Job:
        self.recover(now)
        return self.store.get(job_id)

    def list(self, now: datetime) -> list[Job]:
        return self.recover(now)

    def cancel(self, job_id: int, *, actor: Actor, now: datetime) -> Job:
        """Cancels a queued job at once; a running one stops at its next training step
        (a job already past training, exporting or comparing, finishes)."""
        return self.store.request_cancel(job_id, actor=actor, now=now)
