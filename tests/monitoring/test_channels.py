"""Alert channels as an attacker sees them: secrets never shown nor stored in clear,
outbound calls that cannot reach the monitor's own network, follow a redirect, outlive
their deadline, or send an SMTP password in clear."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from contextlib import closing

import pytest
from cryptography.fernet import Fernet

from core.app import (
    add_alert_channel,
    build_backends,
    export_audit_log,
    list_alert_channels,
    send_test_alert,
)
from core.audit import AuditEntry
from core.errors import InvalidInput
from core.monitoring import channels
from tests.conftest import add_users
from tests.monitoring.receivers import HttpReceiver, SmtpReceiver

TOKEN = "T0AAAAAAA/B0BBBBBBB/xoxbSecretToken99"


@pytest.fixture
def webhook():
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def test_a_slack_url_is_shown_redacted_to_everyone_and_sealed_at_rest(config, webhook, now):
    sealed = config.with_overrides(secrets_key=Fernet.generate_key().decode())
    add_users(sealed)
    backends = build_backends(sealed)
    url = f"{webhook.url}/services/{TOKEN}"
    add_alert_channel(backends, actor="ada", name="team", slack=url, now=now)
    shown = [c.as_dict() for c in list_alert_channels(backends, actor="anonymous", now=now)]
    exports = [export_audit_log(backends, fmt, actor="anonymous", now=now)
               for fmt in ("json", "csv")]
    for seen in [json.dumps(shown), *exports]:
        assert TOKEN not in seen and "xoxb" not in seen
    assert shown[0]["target"] == "http://127.0.0.1/…en99" and shown[0]["encrypted"]
    assert shown[0]["target_fingerprint"].startswith("sha256:")
    with closing(sqlite3.connect(sealed.registry_dir / "registry.db")) as db:
        stored = db.execute("SELECT * FROM alert_channels").fetchall()
    assert TOKEN not in repr(stored) and "fernet:" in repr(stored)
    # The monitor, with the key, still sends; a process without it says why it cannot.
    delivery, _ = send_test_alert(backends, actor="ada", name="team", now=now)
    assert delivery.status == "delivered" and webhook.received[0].path.endswith(TOKEN)
    _, attempts = send_test_alert(build_backends(config), actor="ada", name="team", now=now)
    assert attempts[-1].status == "unreadable" and "SECRETS_KEY" in attempts[-1].error


def test_channel_entries_written_before_redaction_are_shown_redacted(config, now):
    add_users(config)
    backends = build_backends(config)
    backends.audit_log.append_alone(AuditEntry(  # as the landed release wrote them
        at="2026-01-01T00:00:00", actor="ada", role="admin", action="add_alert_channel",
        outcome="done", model="classifier", target="alert channel old",
        details={"name": "old", "kind": "slack",
                 "target": f"https://hooks.slack.com/services/{TOKEN}"}))
    exported = export_audit_log(backends, "json", actor="anonymous", now=now)
    assert TOKEN not in exported
    assert json.loads(exported)[-1]["details"]["target"] == "https://hooks.slack.com/…en99"
    assert backends.audit_log.verify().ok  # the stored entry, which the chain hashes, is kept


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/hook",
    "http://10.1.2.3/hook", "http://[::1]/hook", "http://localhost/hook",
    "http://0.0.0.0/hook", "http://224.0.0.1/hook"])
def test_internal_addresses_are_refused_unless_allowed(config, now, target):
    strict = config.with_overrides(alert_allow_private_targets=False)
    add_users(strict)
    backends = build_backends(strict)
    with pytest.raises(InvalidInput, match="ALERT_ALLOW_PRIVATE_TARGETS"):
        add_alert_channel(backends, actor="ada", name="probe", webhook=target, secret="s",
                          now=now)
    assert list_alert_channels(backends, actor="ada", now=now) == []


def test_a_channel_turned_internal_is_refused_when_sending(config, webhook, now):
    add_users(config)  # allowed while it was added (an on-premises receiver) ...
    add_alert_channel(build_backends(config), actor="ada", name="local", slack=webhook.url,
                      now=now)
    strict = build_backends(config.with_overrides(alert_allow_private_targets=False))
    _, attempts = send_test_alert(strict, actor="ada", name="local", now=now)  # ... not now
    assert attempts[-1].status == "refused" and "not a public address" in attempts[-1].error
    assert webhook.received == []


def test_a_redirect_is_not_followed(config, now):
    inside = HttpReceiver().start()  # what the redirect points at
    redirecting = HttpReceiver(status=307, headers={"Location": inside.url}).start()
    try:
        add_users(config)
        backends = build_backends(config)
        add_alert_channel(backends, actor="ada", name="moved", slack=redirecting.url, now=now)
        _, attempts = send_test_alert(backends, actor="ada", name="moved", now=now)
    finally:
        inside.stop()
        redirecting.stop()
    assert attempts[-1].status == "307" and "not followed" in attempts[-1].error
    assert len(redirecting.received) == 1 and inside.received == []


def test_one_deadline_covers_a_receiver_that_answers_a_byte_at_a_time(monkeypatch):
    monkeypatch.setattr(channels, "TIMEOUT_SECONDS", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def dribble():  # each read gets a byte in time; the whole answer never comes
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(0.2):
            try:
                connection.sendall(b"X-Slow: y\r\n")
            except OSError:
                break
        connection.close()

    threading.Thread(target=dribble, daemon=True).start()
    started = time.monotonic()
    try:
        ok, status, error = channels.post(f"http://127.0.0.1:{listener.getsockname()[1]}/",
                                          b"{}", {}, allow_private=True)
    finally:
        stop.set()
        listener.close()
    assert (ok, status) == (False, "timeout") and "within 1 s" in error
    assert time.monotonic() - started < 3


def test_an_smtp_password_is_never_sent_without_tls(config, now):
    add_users(config)
    backends = build_backends(config.with_overrides(smtp_password="hunter2-hunter2"))
    with SmtpReceiver() as smtp:  # aiosmtpd without TLS: it offers no STARTTLS
        add_alert_channel(backends, actor="ada", name="mail", email="oncall@example.com",
                          smtp=f"127.0.0.1:{smtp.port}", smtp_user="monitor@example.com",
                          now=now)
        _, attempts = send_test_alert(backends, actor="ada", name="mail", now=now)
    assert attempts[-1].status == "refused" and "STARTTLS" in attempts[-1].error
    assert smtp.messages == []


def test_user_text_in_slack_cannot_ping_everyone_or_hide_a_link():
    body = channels.slack_body({"state": "firing", "rule": "decision_made",
                                "summary": "<!channel> see <https://evil.example|the docs>",
                                "model": "classifier", "version": 2, "at": "t"})
    text = json.dumps(body)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil.example|" not in text


def test_attempt_errors_are_for_those_who_manage_channels(config, now):
    from core.app import alert_deliveries

    add_users(config)
    backends = build_backends(config)
    add_alert_channel(backends, actor="ada", name="down", slack="http://127.0.0.1:9/hook",
                      now=now)
    send_test_alert(backends, actor="ada", name="down", now=now)
    [(_, [seen_by_admin])] = alert_deliveries(backends, actor="ada", now=now)
    [(_, [seen_by_viewer])] = alert_deliveries(backends, actor="anonymous", now=now)
    assert "127.0.0.1" in seen_by_admin.error
    assert seen_by_viewer.status == "unreachable" and "127.0.0.1" not in seen_by_viewer.error
    assert seen_by_viewer.error.startswith("could not reach the receiver")


def test_a_host_that_does_not_resolve_yet_is_taken_and_checked_at_each_send(config, now):
    strict = config.with_overrides(alert_allow_private_targets=False)
    add_users(strict)
    backends = build_backends(strict)
    add_alert_channel(backends, actor="ada", name="later", now=now,
                      slack="https://hooks.example.invalid/services/T0/B0/x")
    _, attempts = send_test_alert(backends, actor="ada", name="later", now=now)
    assert attempts[-1].status == "refused" and "does not resolve" in attempts[-1].error
