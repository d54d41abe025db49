"""Tamper evidence against someone who can write the database but not read AUDIT_KEY: the
keyed chain, its witness outside the database, a release-1 log that keeps verifying, and
exports a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from contextlib import closing

import pytest

from core import audit
from core.app import audit_head, build_backends, check_audit_log, seal_audit_log
from core.audit import AuditEntry
from core.config import load_config
from core.errors import InvalidInput
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, add_users
from tests.storage.release_1 import release_1_database

KEY = "k" * 16 + "0123456789abcdef0123"
OTHER_KEY = "x" * 40


def keyed(tmp_path, key: str = KEY):
    config = load_config({}).with_overrides(registry_dir=tmp_path / "registry", audit_key=key)
    add_users(config)  # five entries, each chained under the key
    return config


def rewrite_as_plain_chain(path, seq: int, reason: str) -> None:
    """What a database-only attacker can do: drop the guard, edit entry ``seq``, and redo
    every hash from there with plain SHA-256 (the key is not in the database)."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP TRIGGER audit_log_is_append_only_update")
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM audit_log ORDER BY seq")]
        previous = rows[seq - 2]["hash"] if seq > 1 else audit.GENESIS_HASH
        for row in rows[seq - 1:]:
            if row["seq"] == seq:
                row["reason"] = reason
            row["prev_hash"], row["hash_scheme"] = previous, None
            row["hash"] = audit.entry_hash(row)
            db.execute("UPDATE audit_log SET reason = ?, prev_hash = ?, hash = ?, "
                       "hash_scheme = NULL WHERE seq = ?",
                       (row["reason"], row["prev_hash"], row["hash"], row["seq"]))
            previous = row["hash"]
        db.execute("UPDATE audit_head SET seq = ?, hash = ?", (rows[-1]["seq"], previous))


def test_a_database_only_rewrite_is_caught_with_audit_key(tmp_path):
    config = keyed(tmp_path)
    backends = build_backends(config)
    assert check_audit_log(backends, actor="ada", now=FIXED_NOW).ok
    assert {e.hash_scheme for e in backends.audit_log.read_entries()} == {audit.KEYED}
    rewrite_as_plain_chain(config.registry_dir / "registry.db", 3, "forged")
    result = check_audit_log(backends, actor="ada", now=FIXED_NOW)
    assert not result.ok and result.first_bad == 3, result.problem
    # The control: the same rewrite of a log kept without the key passes the chain check
    # (only an anchor kept elsewhere catches it).
    plain = load_config({}).with_overrides(registry_dir=tmp_path / "plain")
    add_users(plain)
    rewrite_as_plain_chain(plain.registry_dir / "registry.db", 3, "forged")
    assert check_audit_log(build_backends(plain), actor="ada", now=FIXED_NOW).ok


def test_a_chain_rewritten_whole_without_the_key_is_refused(tmp_path):
    config = keyed(tmp_path)
    rewrite_as_plain_chain(config.registry_dir / "registry.db", 1, "forged from the start")
    result = check_audit_log(build_backends(config), actor="ada", now=FIXED_NOW)
    assert not result.ok and "not keyed although AUDIT_KEY is set" in result.problem


def test_processes_without_the_key_or_with_another_cannot_extend_a_keyed_chain(tmp_path):
    config = keyed(tmp_path)
    entry = AuditEntry(at="2026-01-02T00:00:00", actor="ada", role="admin", action="login",
                       outcome="done", model="classifier", target="user ada")
    for key, message in (("", "has no AUDIT_KEY"), (OTHER_KEY, "not the key")):
        other = build_backends(config.with_overrides(audit_key=key))
        with pytest.raises(InvalidInput, match=message):
            other.audit_log.append_alone(entry)
    unkeyed = check_audit_log(build_backends(config.with_overrides(audit_key="")),
                              actor="ada", now=FIXED_NOW)
    assert not unkeyed.ok and "AUDIT_KEY, which is not set here" in unkeyed.problem
    assert check_audit_log(build_backends(config), actor="ada", now=FIXED_NOW).ok


def test_a_release_1_log_keeps_verifying_and_is_sealed_once_the_key_is_set(tmp_path):
    folder = tmp_path / "registry"
    folder.mkdir()
    release_1_database(folder / "registry.db")
    plain = load_config({}).with_overrides(registry_dir=folder)
    assert check_audit_log(build_backends(plain), actor="ann", now=FIXED_NOW).ok
    with_key = build_backends(plain.with_overrides(audit_key=KEY))
    before = check_audit_log(with_key, actor="ann", now=FIXED_NOW)
    assert not before.ok and "audit seal" in before.problem  # nothing keyed yet
    sealed = seal_audit_log(with_key, actor="ann", reason="AUDIT_KEY introduced",
                            now=FIXED_NOW)
    assert sealed.hash_scheme == audit.KEYED
    result = check_audit_log(with_key, actor="ann", now=FIXED_NOW)
    assert result.ok and result.entries == 4, result.problem
    schemes = [e.hash_scheme for e in with_key.audit_log.read_entries()]
    assert schemes == [None, None, None, audit.KEYED]  # release 1's entries as they were


def test_the_head_kept_outside_catches_a_rewrite_with_the_cli(tmp_path):
    config = load_config({}).with_overrides(registry_dir=tmp_path / "registry")
    add_users(config)
    registry = config.registry_dir
    printed = run_cli(registry, "audit", "head", "--json", "--actor", "ada")
    witness = tmp_path / "witness.json"
    witness.write_text(printed.stdout)
    head = json.loads(printed.stdout)
    assert head == audit_head(build_backends(config), actor="ada", now=FIXED_NOW)
    assert run_cli(registry, "audit", "verify", "--anchor", str(witness)).returncode == 0
    rewrite_as_plain_chain(registry / "registry.db", head["seq"], "forged")
    assert run_cli(registry, "audit", "verify").returncode == 0  # the chain alone agrees
    caught = run_cli(registry, "audit", "verify", "--anchor", str(witness))
    assert caught.returncode == 1 and "anchored hash" in caught.stdout


def test_the_monitor_sends_the_head_to_the_channels_once_a_day(tmp_path):
    from datetime import timedelta

    from core.app import add_alert_channel, monitor_pass, set_alert_rule
    from tests.monitoring.receivers import HttpReceiver

    config = load_config({"ALERT_ALLOW_PRIVATE_TARGETS": "1"}).with_overrides(
        registry_dir=tmp_path / "registry")
    add_users(config)
    backends = build_backends(config)
    receiver = HttpReceiver().start()
    try:
        add_alert_channel(backends, actor="ada", name="witness", slack=receiver.url,
                          now=FIXED_NOW)
        set_alert_rule(backends, actor="ada", rule="audit_witness",
                       assignments=["enabled=true"], reason="a copy of the head outside",
                       now=FIXED_NOW)
        head = audit_head(backends, actor="ada", now=FIXED_NOW)
        for hours in (0, 1, 25):
            monitor_pass(backends, FIXED_NOW + timedelta(hours=hours))
    finally:
        receiver.stop()
    sent = [json.loads(r.body)["text"] for r in receiver.received]
    witnessed = [text for text in sent if "audit_witness" in text]
    assert len(witnessed) == 2  # today's and tomorrow's, not one per pass
    assert f"entry {head['seq']}, hash {head['hash']}" in witnessed[0]


def test_csv_exports_cannot_run_as_spreadsheet_formulas(tmp_path):
    entries = [AuditEntry(at="2026-01-02T00:00:00", actor="@SUM(1+1)", role="admin",
                          action="promote", outcome="done", model="classifier",
                          target="version 2", reason="=HYPERLINK(\"http://evil\",\"docs\")"),
               AuditEntry(at="2026-01-02T00:00:01", actor="ada", role="admin",
                          action="promote", outcome="done", model="classifier",
                          target="version 3", reason="-2+3")]
    rows = list(csv.DictReader(io.StringIO(audit.export(entries, "csv"))))
    cells = [value for row in rows for value in row.values() if value]
    assert not [c for c in cells if c[0] in "=+-@"]
    assert rows[0]["reason"] == "'=HYPERLINK(\"http://evil\",\"docs\")"
    assert json.loads(audit.export(entries, "json"))[1]["reason"] == "-2+3"  # kept exactly


def test_copies_keep_verifying_on_the_target(tmp_path):
    config = keyed(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(config.registry_dir, copy)
    moved = build_backends(config.with_overrides(registry_dir=copy))
    assert check_audit_log(moved, actor="ada", now=FIXED_NOW).ok
