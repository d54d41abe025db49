"""The job executor's contract, for every executor the composition root can build.

A job of a kind the worker does not know is the cheapest real job: the executor
must start a worker that claims it, records its failure and exits.
"""

import time
from datetime import UTC, datetime

import pytest

from core.app.backends import JOB_EXECUTORS, build_backends
from core.config import load_config
from core.governance.audit import Actor
from core.jobs.records import FINISHED
from tests.conftest import DATABASE_BACKENDS, on_database

ANN = Actor("ann", "operator")


def now():
    return datetime.now(UTC)


@pytest.fixture(params=[(executor, database) for executor in sorted(JOB_EXECUTORS)
                        for database in DATABASE_BACKENDS], ids="+".join)
def backends(request, tmp_path):
    executor, database = request.param
    config = load_config({}).with_overrides(registry_dir=tmp_path / "registry",
                                            job_executor=executor)
    # On PostgreSQL, the worker must be told where the database is to find the job.
    return build_backends(on_database(config, database, request))


def wait_until_finished(backends, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = backends.jobs.status(job_id, now())
        if job.status in FINISHED:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_a_submitted_job_is_run_by_a_worker_of_the_executor(backends):
    job = backends.jobs.submit("no-such-kind", {}, actor=ANN, now=now())
    finished = wait_until_finished(backends, job.id)
    assert finished.status == "failed"
    assert "unknown job kind 'no-such-kind'" in finished.error and "retrain" in finished.error
    assert finished.pid and finished.started_at and finished.finished_at
    # The worker exits once the queue is empty; then the executor says so.
    deadline = time.monotonic() + 30
    while backends.jobs.executor.is_running(finished) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not backends.jobs.executor.is_running(finished)


def test_a_job_whose_worker_is_gone_is_failed_on_the_next_look(backends):
    job = backends.jobs.store.submit("retrain", {}, actor=ANN, now=now())
    backends.jobs.store.finish_and_claim_next(999_999_999, now())  # no such process
    assert not backends.jobs.executor.is_running(backends.jobs.store.get(job.id))
    recovered = backends.jobs.status(job.id, now())
    assert recovered.status == "failed" and "worker process died" in recovered.error


def test_cancelling_a_queued_job_needs_no_worker(backends):
    job = backends.jobs.store.submit("retrain", {}, actor=ANN, now=now())
    assert backends.jobs.cancel(job.id, actor=ANN, now=now()).status == "cancelled"
