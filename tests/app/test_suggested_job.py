"""A retraining the monitor suggests runs, once a person starts it, as that person."""

from __future__ import annotations

from datetime import UTC, datetime

from core.app import RetrainRequest, get_job, get_version, run_jobs, start_job
from core.app.monitor_rules import MONITOR
from core.app.train import RETRAIN_JOB
from tests.conftest import FIXED_NOW, backends_of


def test_a_started_suggestion_trains_with_the_starter_as_its_submitter(registry_copy,
                                                                      monkeypatch):
    backends = backends_of(registry_copy)
    monkeypatch.setattr(backends.jobs.executor, "start", lambda: None)  # run it right here
    request = RetrainRequest(epochs=1, original_images=1000, augmented_per_scenario=200)
    suggested = backends.jobs.suggest(RETRAIN_JOB, request.as_dict(), actor=MONITOR,
                                      now=FIXED_NOW, because="drift for 6 h")
    started = start_job(backends, suggested.id, actor="olga", now=FIXED_NOW)
    assert (started.status, started.submitted_by) == ("queued", "olga")
    assert run_jobs(backends, lambda: datetime.now(UTC)) == 1
    job = get_job(backends, suggested.id, actor="olga", now=FIXED_NOW)
    assert job.status == "succeeded", job.error
    candidate = get_version(backends, job.result_version, actor="olga", now=FIXED_NOW)
    assert candidate.created_by == "olga" and candidate.status == "candidate"
    entries = [(e.action, e.actor, e.details.get("suggested_by"))
               for e in backends.audit_log.read_entries() if e.target == f"job {job.id}"]
    assert entries == [("suggest_job", "monitor", None), ("start_job", "olga", "monitor")]
