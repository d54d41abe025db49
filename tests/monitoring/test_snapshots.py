"""Monitoring snapshots over real traffic of the trained model: once per closed period,
late rows, resuming after SIGKILL, the timeline with its deployments, and drift alerts."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from core.app import (
    add_alert_channel,
    build_backends,
    cancel_job,
    label_prediction,
    list_jobs,
    monitor_pass,
    set_alert_rule,
    simulate,
    start_job,
    timeline,
)
from core.errors import InvalidInput
from core.monitoring.snapshots import period_start, stamp
from tests.conftest import environment_of
from tests.monitoring.receivers import HttpReceiver, SmtpReceiver

# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.every_database


T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def ticking(start: datetime, step: timedelta):
    """A clock that moves ``step`` on every reading (one reading per logged row)."""
    ticks = count()
    return lambda: start + next(ticks) * step


def traffic(backends, start: datetime, hours: int, per_hour: int = 40,
            scenario: str = "none") -> None:
    step = timedelta(hours=1) / per_hour
    # simulate reads the clock once to authorize, then once per row.
    simulate(backends, actor="olga", scenario=scenario, n=hours * per_hour,
             clock=ticking(start - step, step))


def test_each_closed_period_is_summarized_once(registry_copy):
    backends = build_backends(registry_copy)
    traffic(backends, T0, hours=3)  # 10:00-12:59
    done = monitor_pass(backends, T0 + timedelta(hours=3, seconds=30))
    # 12:00-13:00 closed 30 s ago, within the 60 s grace: not yet.
    assert done.snapshots == 2
    assert monitor_pass(backends, T0 + timedelta(hours=3, seconds=30)).snapshots == 0
    assert monitor_pass(backends, T0 + timedelta(hours=3, minutes=2)).snapshots == 1
    hours = backends.snapshots.read("hour", "2026-03-01", "2026-03-02")
    assert [(s.start, s.version, s.n) for s in hours] == [
        ("2026-03-01T10:00:00+00:00", 1, 40), ("2026-03-01T11:00:00+00:00", 1, 40),
        ("2026-03-01T12:00:00+00:00", 1, 40)]
    first = hours[0]
    assert first.end == "2026-03-01T11:00:00+00:00" and first.labelled == 40
    assert 0.5 < first.realized_accuracy <= 1 and 0.5 < first.estimated_accuracy <= 1
    assert set(first.drift) >= {"prediction_psi", "embedding_mmd", "input_ks_brightness"}
    assert first.traffic == {}  # simulated traffic, not API requests
    # The day closes at midnight (plus the grace): one roll-up of all 120 rows.
    assert monitor_pass(backends, datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)).snapshots == 0
    assert monitor_pass(backends, datetime(2026, 3, 2, 0, 1, 1, tzinfo=UTC)).snapshots == 1
    [day] = backends.snapshots.read("day", "2026-03-01", "2026-03-02")
    assert (day.start, day.n, day.labelled) == ("2026-03-01T00:00:00+00:00", 120, 120)


def test_late_rows_are_counted_on_their_period_not_recomputed(registry_copy):
    backends = build_backends(registry_copy)
    traffic(backends, T0, hours=1)
    monitor_pass(backends, T0 + timedelta(hours=2))
    # Rows dated 10:30 arrive after 10:00-11:00 was summarized.
    simulate(backends, actor="olga", scenario="none", n=7,
             clock=lambda: T0 + timedelta(minutes=30))
    monitor_pass(backends, T0 + timedelta(hours=2, minutes=1))
    [hour] = backends.snapshots.read("hour", "2026-03-01", "2026-03-02")
    assert (hour.n, hour.late_rows) == (40, 7)
    monitor_pass(backends, T0 + timedelta(hours=2, minutes=2))  # counted once
    assert backends.snapshots.read("hour", "2026-03-01", "2026-03-02")[0].late_rows == 7


def test_timeline_reads_snapshots_with_deployment_markers(candidate_copy):
    backends = build_backends(candidate_copy)
    now = T0 + timedelta(hours=4)
    traffic(backends, T0, hours=2)
    from core.app import set_traffic

    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="try v2 on live traffic", now=T0 + timedelta(hours=1, minutes=10))
    monitor_pass(backends, now)
    view = timeline(backends, actor="vic", now=now, range_="24h")
    assert view.period == "hour" and [s.start[11:16] for s in view.snapshots] == ["10:00",
                                                                                  "11:00"]
    assert [(d.action, d.summary) for d in view.deployments] == [("traffic",
                                                                  "traffic: shadow v2")]
    custom = timeline(backends, actor="vic", now=now, range_="custom",
                      since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert [s.start[11:16] for s in custom.snapshots] == ["11:00"]
    with pytest.raises(InvalidInput, match="start before its end"):
        timeline(backends, actor="vic", now=now, range_="custom", since=now, until=T0)
    with pytest.raises(InvalidInput, match="unknown range"):
        timeline(backends, actor="vic", now=now, range_="week")


def test_drift_alert_fires_and_a_retraining_is_suggested_for_a_human(registry_copy):
    backends = build_backends(registry_copy)
    receiver = HttpReceiver().start()
    try:
        add_alert_channel(backends, actor="ada", name="ops", webhook=receiver.url,
                          secret="k", now=T0)
        traffic(backends, T0, hours=1, per_hour=300, scenario="brightness")
        now = T0 + timedelta(hours=1)
        with SmtpReceiver() as smtp:
            add_alert_channel(backends, actor="ada", name="oncall", email="oncall@example.com",
                              smtp=f"127.0.0.1:{smtp.port}", now=now)
            fired = monitor_pass(backends, now).changes.fired
        # Brightness +0.3 lowers confidence too: the estimated accuracy drops with it.
        assert {(e.rule, e.version) for e in fired} == {("drift", 1), ("accuracy_drop", 1)}
        # The drift alert's e-mail carries the drift report; the other one nothing.
        attached = {mail["Subject"].split(":")[0]: [part.get_filename() for part in
                                                    mail.iter_attachments()]
                    for mail in smtp.messages}
        assert attached["[firing] accuracy_drop"] == []
        [name] = attached["[firing] drift"]
        assert name.startswith("drift-classifier-v1-") and name.endswith(".html")
        mail = next(m for m in smtp.messages if m["Subject"].startswith("[firing] drift"))
        html = next(mail.iter_attachments()).get_content()
        assert 'class="verdict alert"' in html and "input_ks_brightness" in html
        # Off by default: no job after the drift has lasted, until an admin turns it on.
        monitor_pass(backends, now + timedelta(hours=7))
        assert not list_jobs(backends, actor="vic", now=now)
        set_alert_rule(backends, actor="ada", rule="retraining_suggested",
                       assignments=["enabled=true", "after_minutes=60"], reason="try it",
                       now=now)
        suggested = monitor_pass(backends, now + timedelta(hours=8)).changes.fired
        assert [e.rule for e in suggested] == ["retraining_suggested"]
        assert not monitor_pass(backends, now + timedelta(hours=9)).changes.fired  # once
    finally:
        receiver.stop()
    [job] = list_jobs(backends, actor="vic", now=now)
    assert job.status == "suggested" and job.submitted_by == "monitor"
    assert [b for b in receiver.received if b"retraining_suggested" in b.body]
    cancel_job(backends, job.id, actor="olga", now=now)  # discarded by a human
    with pytest.raises(InvalidInput, match="not suggested"):
        start_job(backends, job.id, actor="olga", now=now)
    actions = [e.action for e in backends.audit_log.read_entries()]
    assert actions.count("suggest_job") == 1 and "discard_job" in actions


def test_a_monitor_killed_mid_pass_resumes_with_no_gap_and_no_duplicate(registry_copy):
    backends = build_backends(registry_copy)
    start = period_start(datetime.now(UTC) - timedelta(hours=30), "hour")
    traffic(backends, start, hours=24, per_hour=40)
    command = [sys.executable, "-m", "core", "--registry", str(registry_copy.registry_dir),
               "monitor", "run", "--once"]
    monitor = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               env=environment_of(registry_copy), text=True)
    assert monitor.stderr is not None
    lines = [monitor.stderr.readline() for _ in range(3)]  # three hours summarized
    monitor.send_signal(signal.SIGKILL)
    monitor.wait()
    assert all(line.startswith("hour ") for line in lines), lines
    partial = backends.snapshots.count("hour")
    assert 3 <= partial < 24
    finished = subprocess.run(command, capture_output=True, text=True,
                              env=environment_of(registry_copy), timeout=600)
    assert finished.returncode == 0, finished.stderr
    hours = backends.snapshots.read("hour", "2000", "9999")
    assert [s.start for s in hours] == [(start + timedelta(hours=h)).isoformat()
                                        for h in range(24)]  # contiguous, each once
    assert all(s.n == 40 for s in hours)


def test_traffic_over_time_reads_closed_periods_from_snapshots(registry_copy):
    from sqlalchemy import text

    from core.app import traffic_over_time
    from core.app.traffic import summarize
    from tests.log_rows import answered, failed, stamp

    backends = build_backends(registry_copy)
    log = backends.prediction_log
    log.append(answered(stamp(T0 + timedelta(minutes=10)), 10, latency_ms=4.0),
               failed(stamp(T0 + timedelta(minutes=20)), 5))
    now = T0 + timedelta(hours=1, minutes=30)
    log.append(answered(stamp(now - timedelta(minutes=1)), 3))  # the open hour
    raw = summarize(log.api_requests("classifier", stamp(T0)), "hour", now)
    assert monitor_pass(backends, now).snapshots == 2  # version 1, and failures before routing
    # The snapshots answer for 10:00-11:00 now: drop its raw failures to prove it.
    with backends.database.write() as conn:
        conn.execute(text("DELETE FROM request_failures"))
    buckets = traffic_over_time(backends, actor="vic", now=now, bucket="hour")
    assert [(b.start, b.version, b.variant, b.requests, b.errors) for b in buckets] == [
        (b.start, b.version, b.variant, b.requests, b.errors) for b in raw]
    # Failed before routing (version None) sorts first, then v1's answers, then the open hour.
    assert [(b.version, b.requests) for b in buckets] == [(None, 5), (1, 10), (1, 3)]
    assert buckets[1].p50_ms == 4.0 and buckets[1].requests_per_second == 10 / 3600


def test_retention_deletes_summarized_old_rows_in_audited_batches(registry_copy):
    from core.app import predict_image
    from core.app.retention import apply_retention
    from core.app.snapshots import compute_snapshots
    from core.ml.images import encode_png
    from tests.conftest import fashion_test_images

    backends = build_backends(registry_copy.with_overrides(prediction_log_retention_days=1))
    traffic(backends, T0, hours=3)  # 120 simulated rows, 10:00-12:59
    traffic(backends, T0 + timedelta(days=1), hours=1)  # 40 the next day, 10:00-10:59
    images, _ = fashion_test_images(1)
    upload, _ = predict_image(backends, encode_png(images[0]), actor="anonymous",
                              source="upload", now=T0 + timedelta(minutes=5))
    kept = upload.log_id
    label_prediction(backends, kept, backends.registry.get_version(1).class_names[3],
                     actor="vic", now=T0)  # a person's label
    now = T0 + timedelta(days=2)
    assert apply_retention(backends, now) == 0  # nothing summarized yet: nothing goes
    compute_snapshots(backends, now)
    summarized = backends.snapshots.count()
    assert apply_retention(backends, now, batch_rows=50, pack_grace_seconds=0) == 120
    remaining = [row[0] for row in backends.database.read("SELECT id FROM predictions")]
    assert kept in remaining and len(remaining) == 41  # the next day's rows stay
    (image, label), = backends.prediction_log.images(backends.model, [kept])
    assert label == 3 and image == encode_png(images[0])  # kept beside the log, lossless
    # The first day ended before the cutoff: its packs are gone, the labelled image moved.
    packs = backends.prediction_log.logged_images.packs(backends.model)
    assert [pack.name.split("/")[0] for pack in packs if not pack.labelled] == ["2026-03-02"]
    assert len(packs) == 2
    assert backends.snapshots.count() == summarized  # the charts keep every period
    deletions = [e for e in backends.audit_log.read_entries()
                 if e.action == "delete_predictions"]
    assert [e.details["predictions"] for e in deletions] == [50, 50, 20]
    assert all(e.actor == "monitor" and e.details["before"] <= stamp(now - timedelta(days=1))
               for e in deletions)
    (swept,) = [e for e in backends.audit_log.read_entries()
                if e.action == "delete_logged_images"]
    assert swept.details["labelled_images_kept"] == 1 and swept.details["bytes"] > 0
    assert backends.audit_log.verify().ok
    assert apply_retention(backends, now) == 0  # done: a second pass deletes nothing
