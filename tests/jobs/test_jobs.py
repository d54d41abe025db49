"""Job records and a real worker process: run, queue, cancel, and a killed worker."""

import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.app import RetrainRequest, cancel_job, submit_retrain
from core.audit import Actor, AuditLog
from core.config import load_config
from core.errors import InvalidInput
from core.jobs.executor import worker_alive
from core.jobs.records import FINISHED, WORKER_START_GRACE_SECONDS, JobStore
from core.jobs.worker import JobCancelled, progress_tracker
from core.ml.params import Progress
from core.registry.records import Recipe
from core.storage.database import SQLiteDatabase
from tests.conftest import (
    FIXED_NOW,
    PROJECT_ROOT,
    backends_of,
    environment_of,
    sample_metadata,
)
from tests.consistency import assert_consistent, kill_after, kill_moments
from tests.jobs.waiting import wait_for

# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.every_database


QUICK = dict(epochs=1, original_images=1000, augmented_per_scenario=200)
LONG = dict(epochs=50, original_images=20000)
WORKER_KILLS = 2
ANN, BOB = Actor("ann", "operator"), Actor("bob", "admin")


def now():
    return datetime.now(UTC)


def database_at(folder) -> SQLiteDatabase:
    return SQLiteDatabase(f"sqlite:///{folder / 'registry.db'}")


def is_running(job) -> bool:
    return worker_alive(job.pid)


def test_store_runs_one_job_at_a_time_and_finishes_atomically(tmp_path):
    store = JobStore(database_at(tmp_path), "m")
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
    audited = AuditLog(database_at(tmp_path)).read_entries()
    assert [(e.action, e.target, e.actor, e.role) for e in audited] == [
        ("submit_job", f"job {first.id}", "ann", "operator"),
        ("submit_job", f"job {second.id}", "bob", "admin")]


def test_cancel_queued_and_flag_running(tmp_path):
    store = JobStore(database_at(tmp_path), "m")
    queued = store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    assert store.request_cancel(queued.id, actor=BOB, now=FIXED_NOW).status == "cancelled"
    with pytest.raises(InvalidInput, match="already cancelled"):
        store.request_cancel(queued.id, actor=BOB, now=FIXED_NOW)
    running = store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    store.finish_and_claim_next(1, FIXED_NOW)
    assert store.request_cancel(running.id, actor=ANN, now=FIXED_NOW).cancel_requested
    cancels = [(e.target, e.actor, e.details["status_before"])
               for e in AuditLog(database_at(tmp_path)).read_entries() if e.action == "cancel_job"]
    assert cancels == [(f"job {queued.id}", "bob", "queued"),
                       (f"job {running.id}", "ann", "running")]
    tracker = progress_tracker(store, running.id, now)
    with pytest.raises(JobCancelled):
        tracker(Progress(1, 2, 3, 10, {"loss": 0.5}))
    assert store.get(running.id).progress["step"] == 3
    with pytest.raises(InvalidInput, match="no job 99"):
        store.get(99)


def test_recover_marks_dead_workers_failed(tmp_path):
    store = JobStore(database_at(tmp_path), "m")
    job = store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    store.finish_and_claim_next(999_999, FIXED_NOW)  # a pid that does not exist
    assert store.recover(FIXED_NOW, is_running) == [job.id]
    failed = store.get(job.id)
    assert failed.status == "failed" and "worker process died" in failed.error
    assert not worker_alive(os.getpid())  # pytest is not a worker


@pytest.mark.slow
def test_running_job_can_be_cancelled(registry_copy):
    runner = backends_of(registry_copy).jobs
    job = submit_retrain(backends_of(registry_copy), RetrainRequest(**LONG), actor="olga",
                         now=now())
    wait_for(runner, job.id, lambda j: j.progress.get("step", 0) > 0)
    cancel_job(backends_of(registry_copy), job.id, actor="ada", now=now())
    cancelled = wait_for(runner, job.id, lambda j: j.status != "running", timeout=60)
    assert cancelled.status == "cancelled"
    assert len(backends_of(registry_copy).registry.list_versions()) == 1


def start_worker(config) -> subprocess.Popen:
    """A worker as the runner starts one, but with its process in our hands."""
    return subprocess.Popen([sys.executable, "-m", "core.worker", "--registry",
                             str(config.registry_dir)], cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=environment_of(config))


@pytest.mark.slow
def test_worker_killed_at_random_moments_leaves_consistent_records(registry_copy):
    """SIGKILL a worker anywhere between starting and recording its job's end: no job says
    running without a process, only complete candidates exist, the queue moves on."""
    runner = backends_of(registry_copy).jobs
    store = runner.store
    # An undisturbed job first: what it produces, and how long the window to kill in is.
    started = time.monotonic()
    job = submit_retrain(backends_of(registry_copy),
                         RetrainRequest(include=("brightness",), **QUICK), actor="olga",
                         now=now())
    done = wait_for(runner, job.id, lambda j: j.status in FINISHED)
    duration = time.monotonic() - started
    assert done.status == "succeeded", done.error
    assert done.progress["epoch"] == 1 and done.progress["history"]
    candidate = backends_of(registry_copy).registry.get_version(done.result_version)
    assert (candidate.status, candidate.parent, candidate.created_by) == ("candidate", 1,
                                                                         "olga")
    assert candidate.metadata.recipe.include == ["brightness"]
    assert candidate.metadata.recipe.job == job.id
    assert candidate.metadata.dataset.retraining_data["augmented"] == {"brightness": 200}
    assert backends_of(registry_copy).registry.get_champion().version == 1  # never auto-promoted
    assert_consistent(registry_copy)

    outcomes = []
    for moment in kill_moments(random.Random(3), WORKER_KILLS, 0.0, duration):
        # A job a kill left queued is the one the next worker claims.
        queued = [j for j in store.list_jobs() if j.status == "queued"]
        job = queued[-1] if queued else store.submit("retrain", QUICK, now=now(),
                                                     actor=Actor("olga", "operator"))
        kill_after(start_worker(registry_copy), moment)
        assert_consistent(registry_copy)  # looking at the jobs recovers them
        killed = runner.status(job.id, now())
        outcomes.append(killed.status)
        if killed.status == "failed":
            assert "worker process died" in killed.error
        if killed.result_version is not None:  # it got as far as registering its candidate
            version = backends_of(registry_copy).registry.get_version(killed.result_version)
            assert version.metadata.recipe.job == job.id
    assert "failed" in outcomes  # the kills did land mid-job
    # The queue moves on: a new job (and anything a kill left queued) runs to the end.
    follow_up = submit_retrain(backends_of(registry_copy), RetrainRequest(**QUICK),
                               actor="olga", now=now())
    assert wait_for(runner, follow_up.id,
                    lambda j: j.status in FINISHED).status == "succeeded"
    assert all(j.status in FINISHED for j in runner.list(now()))
    assert_consistent(registry_copy)


def test_a_worker_killed_after_registering_links_its_candidate(tmp_path):
    config = load_config({}).with_overrides(registry_dir=tmp_path)
    runner = backends_of(config).jobs
    job = runner.store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    runner.store.finish_and_claim_next(999_999, FIXED_NOW)  # running; that pid is no worker
    registry = backends_of(config).registry
    for recipe_job in (None, job.id):  # another version, then the job's own candidate
        registry.register_version(lambda folder: (folder / "model.tflite").write_bytes(b"t"),
                                  sample_metadata(recipe=Recipe(
                                      kind="fine-tune", parent=1, params={}, include=[],
                                      use_feedback=False, job=recipe_job)),
                                  actor=ANN, now=FIXED_NOW)
    failed = runner.status(job.id, FIXED_NOW)
    assert (failed.status, failed.result_version) == ("failed", 2)
    assert "died after registering candidate version 2" in failed.error


def test_a_job_left_queued_by_a_dead_worker_gets_a_new_one(tmp_path, monkeypatch):
    config = load_config({}).with_overrides(registry_dir=tmp_path)
    runner = backends_of(config).jobs
    started = []
    monkeypatch.setattr(runner.executor, "start", lambda: started.append(True))
    runner.store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    runner.list(FIXED_NOW + timedelta(seconds=5))
    assert started == []  # a worker just started is still on its way to claim it
    runner.list(FIXED_NOW + timedelta(seconds=WORKER_START_GRACE_SECONDS + 1))
    assert started == [True]
    runner.store.finish_and_claim_next(999_999, FIXED_NOW)  # running, its worker dead
    runner.store.submit("retrain", {}, actor=ANN, now=FIXED_NOW)
    runner.list(FIXED_NOW + timedelta(seconds=WORKER_START_GRACE_SECONDS + 1))
    # The dead one is marked failed and the waiting one gets a worker.
    assert [j.status for j in runner.list(FIXED_NOW)] == ["queued", "failed"]
    assert len(started) >= 2


def test_a_suggested_job_waits_for_a_human_to_start_it(tmp_path, monkeypatch):
    config = load_config({}).with_overrides(registry_dir=tmp_path)
    runner = backends_of(config).jobs
    started = []
    monkeypatch.setattr(runner.executor, "start", lambda: started.append(True))
    job = runner.suggest("retrain", {}, actor=Actor("monitor", "system"), now=FIXED_NOW,
                         because="drift for 6 h")
    assert job.status == "suggested"
    # No worker claims it, and an idle queue does not call for one, however long it waits.
    assert runner.store.finish_and_claim_next(os.getpid(), FIXED_NOW) is None
    runner.list(FIXED_NOW + timedelta(days=1))
    assert started == []
    started_job = runner.start_suggested(job.id, actor=ANN, now=FIXED_NOW)
    assert started_job.status == "queued" and started == [True]
    with pytest.raises(InvalidInput, match="only a suggested job can be started"):
        runner.start_suggested(job.id, actor=ANN, now=FIXED_NOW)
    entries = AuditLog(database_at(tmp_path)).read_entries()
    assert [(e.action, e.actor, e.reason) for e in entries] == [
        ("suggest_job", "monitor", "drift for 6 h"), ("start_job", "ann", "")]
