"""Alerts end to end without a model: rules on API traffic, episodes, and messages to real
local receivers (HTTP webhook with its signature checked, Slack's format, SMTP)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest

from core.app import (
    acknowledge_alert,
    add_alert_channel,
    alert_deliveries,
    alert_rules,
    build_backends,
    list_alert_channels,
    list_alert_episodes,
    monitor_pass,
    remove_alert_channel,
    send_test_alert,
    set_alert_rule,
)
from core.errors import ActionRefused, InvalidInput
from tests.conftest import add_users
from tests.log_rows import answered, failed, stamp
from tests.monitoring.receivers import HttpReceiver, SmtpReceiver

# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.every_database


SECRET = "s3cret-for-hmac"


@pytest.fixture
def backends(config):
    add_users(config)
    return build_backends(config)


@pytest.fixture
def webhook():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def verified(received) -> dict:
    """The webhook body, after checking its signature as a receiver would."""
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-Signature"] == expected
    return json.loads(received.body)


def error_messages(webhook) -> list[dict]:
    return [body for body in map(verified, webhook.received) if body["rule"] == "error_rate"]


def test_one_episode_sends_one_message_then_one_on_resolve(backends, webhook, now):
    add_alert_channel(backends, actor="ada", name="ops", webhook=webhook.url, secret=SECRET,
                      now=now)
    log = backends.prediction_log
    log.append(answered(stamp(now - timedelta(minutes=5)), 10),
               failed(stamp(now - timedelta(minutes=4)), 20))
    first = monitor_pass(backends, now)
    assert [e.rule for e in first.changes.fired] == ["error_rate"] and first.sent == 1
    for minutes in (1, 2, 3):  # the condition holds: no storm
        assert monitor_pass(backends, now + timedelta(minutes=minutes)).sent == 0
    [message] = error_messages(webhook)
    assert message["state"] == "firing" and message["model"] == "classifier"
    assert set(message) >= {"rule", "state", "model", "version", "summary", "details", "at"}
    assert "66.7% of 30 API requests" in message["summary"]

    log.append(answered(stamp(now + timedelta(minutes=4)), 400))  # errors now 20 / 430
    resolved = monitor_pass(backends, now + timedelta(minutes=5))
    assert [e.rule for e in resolved.changes.resolved] == ["error_rate"]
    assert [m["state"] for m in error_messages(webhook)] == ["firing", "resolved"]
    [episode] = list_alert_episodes(backends, actor="vic", now=now)
    assert not episode.open and episode.resolved_at == (now + timedelta(minutes=5)).isoformat()


def test_reminders_follow_the_interval_until_acknowledged(backends, webhook, now):
    add_alert_channel(backends, actor="ada", name="ops", webhook=webhook.url, secret=SECRET,
                      now=now)
    set_alert_rule(backends, actor="ada", rule="error_rate",
                   assignments=["reminder_minutes=30", "minutes=600"], reason="page often",
                   now=now)
    backends.prediction_log.append([], failed(stamp(now), 25))
    monitor_pass(backends, now)
    monitor_pass(backends, now + timedelta(minutes=29))
    monitor_pass(backends, now + timedelta(minutes=31))  # a reminder
    assert [m["state"] for m in error_messages(webhook)] == ["firing", "firing"]
    [episode] = list_alert_episodes(backends, actor="vic", now=now, open_only=True)
    with pytest.raises(ActionRefused, match="needs the role operator"):
        acknowledge_alert(backends, episode.id, actor="vic", reason="mine", now=now)
    acknowledge_alert(backends, episode.id, actor="olga", reason="looking into it",
                      now=now + timedelta(minutes=32))
    monitor_pass(backends, now + timedelta(minutes=90))
    assert len(error_messages(webhook)) == 2  # acknowledged: no more reminders
    actions = [e.action for e in backends.audit_log.read_entries()]
    assert "acknowledge_alert" in actions and "set_alert_rule" in actions


def test_a_silenced_episode_sends_nothing_not_even_its_resolution(backends, webhook, now):
    add_alert_channel(backends, actor="ada", name="ops", webhook=webhook.url, secret=SECRET,
                      now=now)
    backends.prediction_log.append([], failed(stamp(now), 25))
    monitor_pass(backends, now)
    [episode] = list_alert_episodes(backends, actor="vic", now=now, open_only=True)
    acknowledge_alert(backends, episode.id, actor="rita", reason="known outage", now=now,
                      silence_for=timedelta(hours=2))
    backends.prediction_log.append(answered(stamp(now + timedelta(minutes=1)), 600))
    monitor_pass(backends, now + timedelta(minutes=2))
    assert [m["state"] for m in error_messages(webhook)] == ["firing"]
    assert not list_alert_episodes(backends, actor="vic", now=now, open_only=True)


def test_receiver_down_is_retried_with_backoff_and_nothing_is_lost(backends, now):
    receiver = HttpReceiver()  # not started: connections are refused
    add_alert_channel(backends, actor="ada", name="ops", webhook=receiver.url, secret=SECRET,
                      now=now)
    backends.prediction_log.append([], failed(stamp(now), 25))
    assert monitor_pass(backends, now).failed == 1
    assert monitor_pass(backends, now + timedelta(seconds=5)).failed == 0  # not due yet
    assert monitor_pass(backends, now + timedelta(seconds=11)).failed == 1  # 2nd try
    assert monitor_pass(backends, now + timedelta(seconds=25)).failed == 0  # backoff: 20 s
    receiver.start()
    try:
        assert monitor_pass(backends, now + timedelta(seconds=32)).sent == 1
        assert monitor_pass(backends, now + timedelta(minutes=10)).sent == 0  # once only
    finally:
        receiver.stop()
    [message] = map(verified, receiver.received)
    assert message["rule"] == "error_rate"
    [(delivery, attempts)] = alert_deliveries(backends, actor="vic", now=now)
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [a.ok for a in attempts] == [False, False, True]
    assert attempts[0].status == "unreachable" and "could not reach" in attempts[0].error


def test_a_message_is_given_up_after_a_day_of_failures(backends, now):
    receiver = HttpReceiver(status=500).start()
    try:
        add_alert_channel(backends, actor="ada", name="ops", webhook=receiver.url,
                          secret=SECRET, now=now)
        backends.prediction_log.append([], failed(stamp(now), 25))
        monitor_pass(backends, now)
        monitor_pass(backends, now + timedelta(days=1, minutes=1))
    finally:
        receiver.stop()
    [(delivery, attempts)] = alert_deliveries(backends, actor="vic", now=now)
    assert delivery.status == "gave_up" and [a.status for a in attempts] == ["500", "500"]
    assert "answered 500" in attempts[0].error


def test_slack_channel_gets_slacks_incoming_webhook_body(backends, webhook, now):
    add_alert_channel(backends, actor="ada", name="team", slack=webhook.url, now=now)
    delivery, attempts = send_test_alert(backends, actor="ada", name="team", now=now)
    assert delivery.status == "delivered" and attempts[0].status == "200"
    body = json.loads(webhook.received[0].body)
    assert set(body) == {"text", "blocks"} and "[TEST]" in body["text"]
    assert body["blocks"][0]["type"] == "section" and "X-Signature" not in \
        webhook.received[0].headers


def test_email_channel_through_a_real_smtp_server(backends, now):
    with SmtpReceiver() as smtp:
        add_alert_channel(backends, actor="ada", name="oncall", email="oncall@example.com",
                          smtp=f"127.0.0.1:{smtp.port}", now=now)
        backends.prediction_log.append([], failed(stamp(now), 25))
        assert monitor_pass(backends, now).sent == 1
    [mail] = smtp.messages
    assert smtp.envelopes[0][1] == ["oncall@example.com"]
    assert mail["Subject"].startswith("[firing] error_rate:")
    assert "rule: error_rate" in mail.get_payload()


def test_channels_are_for_admins_listed_without_secrets_and_audited(backends, webhook, now):
    with pytest.raises(ActionRefused, match="needs the role admin"):
        add_alert_channel(backends, actor="rita", name="x", webhook=webhook.url, secret="s",
                          now=now)
    for bad, match in ((dict(webhook="ftp://x"), "not an http"),
                       (dict(webhook=webhook.url), "--secret"),
                       (dict(email="nobody"), "not an e-mail address"),
                       (dict(email="a@b.c"), "--smtp HOST:PORT"),
                       (dict(email="a@b.c", smtp="host"), "not HOST:PORT"),
                       (dict(), "exactly one")):
        with pytest.raises(InvalidInput, match=match):
            add_alert_channel(backends, actor="ada", name="x", now=now, **bad)
    add_alert_channel(backends, actor="ada", name="ops", webhook=webhook.url, secret=SECRET,
                      now=now)
    with pytest.raises(InvalidInput, match="already"):
        add_alert_channel(backends, actor="ada", name="ops", slack=webhook.url, now=now)
    [listed] = list_alert_channels(backends, actor="vic", now=now)
    assert SECRET not in json.dumps(listed.as_dict()) and listed.as_dict()["signed"]
    remove_alert_channel(backends, actor="ada", name="ops", now=now)
    assert not list_alert_channels(backends, actor="vic", now=now)
    actions = [e.action for e in backends.audit_log.read_entries() if e.outcome == "done"]
    assert actions[-2:] == ["add_alert_channel", "remove_alert_channel"]
    assert SECRET not in json.dumps([e.details for e in backends.audit_log.read_entries()])


def test_rule_overrides_are_checked(backends, now):
    for assignment, match in (("max_rate", "KEY=VALUE"), ("nope=1", "KEY=VALUE"),
                              ("max_rate=lots", "must be a number"),
                              ("max_rate=-1", "negative"), ("enabled=maybe", "number")):
        with pytest.raises(InvalidInput, match=match):
            set_alert_rule(backends, actor="ada", rule="error_rate", assignments=[assignment],
                           reason="r", now=now)
    with pytest.raises(InvalidInput, match="unknown alert rule"):
        set_alert_rule(backends, actor="ada", rule="nope", assignments=["a=1"], reason="r",
                       now=now)
    set_alert_rule(backends, actor="ada", rule="error_rate", assignments=["enabled=false"],
                   reason="noisy", now=now)
    assert alert_rules(backends, actor="vic", now=now)["error_rate"]["settings"]["enabled"] \
        is False
    backends.prediction_log.append([], failed(stamp(now), 25))
    assert not monitor_pass(backends, now).changes.fired  # disabled


def test_latency_rule_fires_on_slow_answers(backends, webhook, now):
    add_alert_channel(backends, actor="ada", name="ops", webhook=webhook.url, secret=SECRET,
                      now=now)
    backends.prediction_log.append(answered(stamp(now), 18, latency_ms=5.0)
                                   + answered(stamp(now - timedelta(seconds=1)), 4,
                                              latency_ms=900.0))
    fired = monitor_pass(backends, now).changes.fired
    assert [e.rule for e in fired] == ["latency_p95"] and "p95" in fired[0].summary
