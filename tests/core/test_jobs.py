"""Job records and a real worker process: run, queue, cancel, and a killed worker."""

import os
import signal
import time
from datetime import datetime, timezone

import pytest

from core.audit import Actor, read_entries
from core.errors import InvalidInput
from core.jobs import JobCancelled, JobStore, LocalProcessRunner, progress_tracker, worker_alive
from core.lifecycle import cancel_job, open_registry, submit_retrain
from core.training_types import Progress
from tests.conftest import FIXED_NOW

QUICK = dict(epochs=1, original_images=1000, augmented_per_scenario=200)
LONG = dict(epochs=50, original_images=20000)
ANN, BOB = Actor("ann", "operator"), Actor("bob", "admin")


def now():
    return datetime.now(timezone.utc)


def wait_for(runner, job_id, condition, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = runner.status(job_id, now())
        if condition(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never reached the condition: {job}")


def test_store_runs_one_job_at_a_time_and_finishes_atomically(tmp_path):
    store = JobStore(tmp_path / "registry.db", "m")
    first = store.submit("retrain", {"epochs": 1}, actor=ANN, now=FIXED_NOW)
    second = store.submit("retrain", {}, actor=BOB, now=FIXED_NOW)
    assert (first.status, first.submitted_by, first.params) == ("queued", "ann", {"epochs": 1})
    claimed = store.finish_and_claim_next(111, FIXED_NOW)
    assert (claimed.id, claimed.status, claimed.pid) == (first.id, "running", 111)
    assert store.finish_and_claim_next(222, FIXED_NOW) is None  # one at a time
    nxt = store.finish_and_claim_next(111, FIXED_NOW, (first.id, "succeeded", {"version": 2}))
    assert nxt.id == second.id
    assert store.get(first.id).result_version == 2
    assert store.get(first.id).finished_at == FIXED_NOW.isoformat(timespec="seconds")
    assert store.finish_and_claim_next(111, FIXED_NOW, (second.id, "failed",
                                                        {"error": "boom"})) is None
    assert store.get(second.id).error == "boom"
    # Each submission was audited with its job, actor and role.
    assert [(e.action, e.target, e.actor, e.role) for e in read_entries(tmp_path / "registry.db")
            ] == [("submit_job", f"job {first.id}", "ann", "operator"),
                  ("submit_job", f"job {second.id}", "bob", "admin")]


def test_cancel_queued_and_flag_running(tmp_path):
    store = JobStore(tmp_path / "registry.db", "m")
    queued = store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    assert store.request_cancel(queued.id, actor=BOB, now=FIXED_NOW).status == "cancelled"
    with pytest.raises(InvalidInput, match="already cancelled"):
        store.request_cancel(queued.id, actor=BOB, now=FIXED_NOW)
    running = store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    store.finish_and_claim_next(1, FIXED_NOW)
    assert store.request_cancel(running.id, actor=ANN, now=FIXED_NOW).cancel_requested
    cancels = [(e.target, e.actor, e.details["status_before"])
               for e in read_entries(tmp_path / "registry.db") if e.action == "cancel_job"]
    assert cancels == [(f"job {queued.id}", "bob", "queued"),
                       (f"job {running.id}", "ann", "running")]
    tracker = progress_tracker(store, running.id, now)
    with pytest.raises(JobCancelled):
        tracker(Progress(1, 2, 3, 10, {"loss": 0.5}))
    assert store.get(running.id).progress["step"] == 3
    with pytest.raises(InvalidInput, match="no job 99"):
        store.get(99)


def test_recover_marks_dead_workers_failed(tmp_path):
    store = JobStore(tmp_path / "registry.db", "m")
    job = store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    store.finish_and_claim_next(999_999, FIXED_NOW)  # a pid that does not exist
    assert store.recover(FIXED_NOW, worker_alive) == [job.id]
    failed = store.get(job.id)
    assert failed.status == "failed" and "worker process died" in failed.error
    assert not worker_alive(os.getpid(), job.id)  # pytest is not a worker


@pytest.mark.slow
def test_worker_process_runs_a_job_to_a_candidate(registry_copy):
    job = submit_retrain(registry_copy, actor="olga", now=now(), include=["brightness"],
                         **QUICK)
    runner = LocalProcessRunner(registry_copy)
    done = wait_for(runner, job.id, lambda j: j.status in ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert done.progress["epoch"] == 1 and done.progress["history"]
    candidate = open_registry(registry_copy).get_version(done.result_version)
    assert (candidate.status, candidate.parent, candidate.created_by) == ("candidate", 1,
                                                                         "olga")
    assert candidate.metadata["recipe"]["include"] == ["brightness"]
    assert candidate.metadata["dataset"]["retraining_data"]["augmented"] == {"brightness": 200}
    assert open_registry(registry_copy).get_champion().version == 1  # never auto-promoted


@pytest.mark.slow
def test_running_job_can_be_cancelled(registry_copy):
    runner = LocalProcessRunner(registry_copy)
    job = submit_retrain(registry_copy, actor="olga", now=now(), **LONG)
    wait_for(runner, job.id, lambda j: j.progress.get("step", 0) > 0)
    cancel_job(registry_copy, job.id, actor="ada", now=now())
    cancelled = wait_for(runner, job.id, lambda j: j.status != "running", timeout=60)
    assert cancelled.status == "cancelled"
    assert len(open_registry(registry_copy).list_versions()) == 1


@pytest.mark.slow
def test_killed_worker_is_shown_as_failed_and_the_queue_moves_on(registry_copy):
    runner = LocalProcessRunner(registry_copy)
    job = submit_retrain(registry_copy, actor="olga", now=now(), **LONG)
    running = wait_for(runner, job.id, lambda j: j.progress.get("step", 0) > 0)
    os.kill(running.pid, signal.SIGKILL)
    failed = wait_for(runner, job.id, lambda j: j.status == "failed", timeout=60)
    assert "worker process died" in failed.error
    follow_up = submit_retrain(registry_copy, actor="olga", now=now(), **QUICK)
    assert wait_for(runner, follow_up.id,
                    lambda j: j.status in ("succeeded", "failed")).status == "succeeded"
