"""The job executor's contract, for every executor the composition root can build.

A job of a kind the worker does not know is the cheapest real job: the executor
must start a worker that claims it, records its failure and exits.
"""

import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime

import pytest

from core.app.backends import JOB_EXECUTORS, build_backends
from core.audit import Actor
from core.config import load_config
from tests.conftest import on_database
from tests.jobs.waiting import wait_for

# The Ray head's tests run in one process of the suite (see tests/conftest.py).
pytestmark = pytest.mark.ray

ANN = Actor("ann", "operator")


def now():
    return datetime.now(UTC)


# Every executor on every database; a cluster's workers share a server's database.
COMBINATIONS = [("local", "sqlite"), ("local", "postgresql"), ("ray", "postgresql")]
assert {executor for executor, _ in COMBINATIONS} == set(JOB_EXECUTORS)


@pytest.fixture(params=COMBINATIONS, ids="+".join)
def backends(request, tmp_path):
    executor, database = request.param
    setting = "local" if executor == "local" else request.getfixturevalue("ray_head").address
    config = load_config({}).with_overrides(registry_dir=tmp_path / "registry",
                                            job_executor=setting)
    # On PostgreSQL, the worker must be told where the database is to find the job.
    return build_backends(on_database(config, database, request))


def test_a_submitted_job_is_run_by_a_worker_of_the_executor(backends):
    job = backends.jobs.submit("no-such-kind", {}, actor=ANN, now=now())
    finished = wait_for(backends.jobs, job.id)
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


# --- Ray: training on a cluster, from PostgreSQL and S3 ------------------------------------

SUBMITTER = textwrap.dedent("""
    from datetime import datetime, timezone
    from core.app import RetrainRequest, build_backends, submit_retrain
    from core.config import load_config
    job = submit_retrain(build_backends(load_config()), RetrainRequest(
        epochs=1, original_images=1000, augmented_per_scenario=200), actor="olga",
        now=datetime.now(timezone.utc))
    print(job.id, flush=True)
""")


@pytest.mark.slow
def test_a_retraining_on_ray_outlives_its_submitter_and_registers_to_the_bucket(
        ray_head, postgres, request, registry_copy, tmp_path):
    """The dashboard or CLI that submits a job may exit at once: the Ray job goes on,
    its worker records progress and the candidate in the shared database and bucket."""
    from core.app import migrate_registry
    from tests.conftest import environment_of, new_bucket

    url = postgres.create_database(f"t{uuid.uuid4().hex[:16]}")
    bucket = new_bucket(request)
    migrate_registry(build_backends(registry_copy), to_url=url, artifacts_url=bucket)
    config = registry_copy.with_overrides(registry_dir=tmp_path / "server", database_url=url,
                                          artifacts_url=bucket, job_executor=ray_head.address)
    submitted = subprocess.run([sys.executable, "-c", SUBMITTER], capture_output=True,
                               text=True, env=environment_of(config) | {
                                   "JOB_EXECUTOR": ray_head.address}, timeout=300)
    assert submitted.returncode == 0, submitted.stderr
    job_id = int(submitted.stdout.split()[-1])  # the submitter has exited
    backends = build_backends(config)
    job = wait_for(backends.jobs, job_id, timeout=900)
    assert job.status == "succeeded", job.error
    assert job.runner.startswith("ray:image-model-ops-") and job.progress["epoch"] == 1
    candidate = backends.registry.get_version(job.result_version)
    assert candidate.status == "candidate" and candidate.parent == 1
    assert job.result_version in backends.artifacts.list_versions("classifier")
    assert backends.audit_log.verify().ok
