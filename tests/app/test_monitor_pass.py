"""The monitor never dies of one item: a reason with line breaks, a rule or a channel that
fails, a pass that fails as a whole. Each failure is recorded where it happened and the
pass goes on; ``monitor run`` stops only when its database cannot be reached."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from core.app import (
    add_alert_channel,
    alert_deliveries,
    decide_version,
    monitor_pass,
    monitor_problems,
    monitor_rules,
)
from core.monitoring import channels
from core.monitoring.log_records import FailedRequest
from tests.conftest import FIXED_NOW, PROJECT_ROOT, add_users, backends_of, environment_of
from tests.monitoring.receivers import HttpReceiver, SmtpReceiver


def test_a_multi_line_reason_becomes_one_subject_line_and_passes_go_on(candidate_copy):
    backends = backends_of(candidate_copy)
    now = FIXED_NOW
    with SmtpReceiver() as smtp:
        add_alert_channel(backends, actor="ada", name="oncall", email="oncall@example.com",
                          smtp=f"127.0.0.1:{smtp.port}", now=now)
        monitor_pass(backends, now)  # the first pass starts reading decisions from here
        decide_version(backends, "reject", 2, actor="rita", now=now, override_gate=True,
                       reason="worse on shirts\nsee the notes\r\nBcc: someone@example.com")
        passes = [monitor_pass(backends, now + timedelta(minutes=m)) for m in (1, 2)]
    assert [p.problems for p in passes] == [{}, {}]
    decisions = [m for m in smtp.messages if "decision_made" in m["Subject"]]
    assert len(decisions) == 1
    # One header (long headers are folded by the mail standard: unfold to read it), and
    # the reason's "Bcc:" line is text in it, not a header of its own.
    subject = " ".join(decisions[0]["Subject"].split())
    assert "worse on shirts see the notes Bcc: someone@example.com" in subject
    assert decisions[0]["Bcc"] is None
    assert all(rcpt == ["oncall@example.com"] for _, rcpt in smtp.envelopes)
    assert "worse on shirts\r\nsee the notes" in decisions[0].get_payload()  # lines kept


def test_a_failing_rule_and_a_failing_channel_leave_the_rest_of_the_pass(config, monkeypatch):
    add_users(config)
    backends = backends_of(config)
    now = FIXED_NOW
    receiver = HttpReceiver().start()
    for name in ("broken", "working"):
        add_alert_channel(backends, actor="ada", name=name, slack=receiver.url, now=now)
    backends.prediction_log.append([], [FailedRequest(
        at=(now - timedelta(minutes=1)).isoformat(timespec="milliseconds"),
        model="classifier", status=500, error_kind="internal", latency_ms=1.0,
        client="c", request_id=f"r{i}") for i in range(25)])

    def verify_fails(*args, **kwargs):
        raise RuntimeError("the audit table is unreadable")

    def send(channel, payload):
        if channel.name == "broken":
            raise ValueError("a bug in a sender")
        return channels.send(channel, payload, allow_private=True)

    monkeypatch.setattr(monitor_rules, "verify_audit", verify_fails)
    try:
        result = monitor_pass(backends, now, send=send)
    finally:
        receiver.stop()
    assert list(result.problems) == ["rule audit_chain"]
    assert [e.rule for e in result.changes.fired] == ["error_rate"]  # the other rules ran
    statuses = {(d.channel, d.status, attempts[-1].status)
                for d, attempts in alert_deliveries(backends, actor="ada", now=now)}
    assert statuses == {("working", "delivered", "200"), ("broken", "pending", "error")}
    [(item, _, error)] = monitor_problems(backends, actor="olga", now=now)
    assert item == "rule audit_chain" and "unreadable" in error
    monkeypatch.undo()
    assert monitor_pass(backends, now + timedelta(minutes=1), send=send).problems == {}
    assert monitor_problems(backends, actor="olga", now=now) == []  # the last pass's only


def test_monitor_run_goes_on_after_failures_and_stops_only_without_its_database(config):
    add_users(config)
    env = environment_of(config)
    once = subprocess.run([sys.executable, "-m", "core", "monitor", "run", "--once"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert once.returncode == 0, once.stderr
    unreachable = env | {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/registry"}
    gone = subprocess.run([sys.executable, "-m", "core", "monitor", "run", "--once"],
                          cwd=PROJECT_ROOT, env=unreachable, capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 1 and "cannot be reached" in gone.stderr
    assert "Traceback" not in gone.stderr
