"""Waiting for a job to reach a state, as a person watching it would."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from core.app import Job
from core.jobs.records import FINISHED


def finished(job: Job) -> bool:
    return job.status in FINISHED


def wait_for(runner, job_id: int, condition: Callable[[Job], bool] = finished,
             timeout: float = 240) -> Job:
    """The job once ``condition`` holds (by default: once it finished); fails after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = runner.status(job_id, datetime.now(UTC))
        if condition(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the condition: {job}")
