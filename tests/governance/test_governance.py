"""Roles, decisions and the audit chain, through the core API (no UI involved)."""

import json
import random
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
from sqlalchemy.exc import DBAPIError

from core import audit
from core.app import (
    DecisionDetails,
    RetrainRequest,
    add_user,
    check_audit_log,
    decide_version,
    predict_image,
    set_role,
    sign_in,
    simulate,
    submit_retrain,
)
from core.errors import ActionRefused, InvalidInput
from core.ml.images import encode_png
from tests.conftest import (
    FIXED_NOW,
    PASSWORD,
    PROJECT_ROOT,
    backends_of,
    environment_of,
    fashion_test_images,
)
from tests.consistency import assert_consistent, kill_after, kill_moments
from tests.tampering import run_sql, tamper

DECISION_KILLS = 6


# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = [pytest.mark.slow, pytest.mark.every_database]


def verify_audit(config, anchor=None):
    return check_audit_log(backends_of(config), actor="ada", now=FIXED_NOW, anchor=anchor)


def entries(config):
    return backends_of(config).audit_log.read_entries()


def statuses(config):
    return {v.version: v.status for v in backends_of(config).registry.list_versions()}


def last(config):
    return entries(config)[-1]


# --- roles ----------------------------------------------------------------------------

@pytest.mark.parametrize("actor, permission, message", [
    ("vic", "simulate", "vic is a viewer; simulate needs the role operator or admin"),
    ("vic", "promote", "vic is a viewer; promote needs the role reviewer or admin"),
    ("olga", "promote", "olga is an operator; promote needs the role reviewer or admin"),
    ("rita", "retrain", "rita is a reviewer; retrain needs the role operator or admin"),
    ("rita", "manage_users", "needs the role admin"),
    ("anonymous", "retrain", "signing in is required to retrain"),
    ("mallory", "predict", "there is no user 'mallory'"),
])
def test_roles_are_checked_in_core_and_refusals_logged(registry_copy, actor, permission,
                                                       message):
    with pytest.raises(ActionRefused, match=message):
        backends_of(registry_copy).access.authorize(actor, permission, FIXED_NOW)
    refusal = last(registry_copy)
    assert (refusal.actor, refusal.action, refusal.outcome) == (actor, permission, "refused")
    assert message in refusal.reason and "To fix this" in refusal.reason


def test_every_role_may_do_its_own_work(registry_copy):
    for actor, permission in [("vic", "predict"), ("olga", "retrain"), ("rita", "promote"),
                              ("ada", "manage_users"), ("ada", "promote"),
                              ("anonymous", "predict")]:
        assert backends_of(registry_copy).access.authorize(actor, permission, FIXED_NOW).name == actor
    assert all(e.outcome == "done" for e in entries(registry_copy))  # nothing refused


def test_actions_refuse_the_wrong_role_before_doing_anything(registry_copy):
    image = encode_png(fashion_test_images(1)[0][0])
    with pytest.raises(ActionRefused, match="vic is a viewer"):
        simulate(backends_of(registry_copy), actor="vic", scenario="none", n=50,
                 clock=lambda: FIXED_NOW)
    with pytest.raises(ActionRefused, match="rita is a reviewer"):
        submit_retrain(backends_of(registry_copy), RetrainRequest(), actor="rita", now=FIXED_NOW)
    assert backends_of(registry_copy).prediction_log.count("classifier") == 0
    # The demo audience predicts without signing in, unless the deployment says otherwise.
    predict_image(backends_of(registry_copy), image, actor="anonymous", source="upload",
                  now=FIXED_NOW)
    private = replace(registry_copy, anonymous_role="none")
    with pytest.raises(ActionRefused, match="signing in is required to predict"):
        predict_image(backends_of(private), image, actor="anonymous", source="upload",
                      now=FIXED_NOW)
    assert backends_of(registry_copy).prediction_log.count("classifier") == 1


# --- users and sign-in ------------------------------------------------------------------

def test_first_user_must_be_an_admin_and_only_admins_add_more(config):
    backends = backends_of(config)
    with pytest.raises(InvalidInput, match="first user must be an admin"):
        add_user(backends, actor="root", name="bob", role="viewer", password=PASSWORD,
                 now=FIXED_NOW)
    add_user(backends, actor="root", name="ann", role="admin", password=PASSWORD, now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="there is no user 'root'"):
        add_user(backends, actor="root", name="eve", role="admin", password=PASSWORD,
                 now=FIXED_NOW)
    add_user(backends, actor="ann", name="bob", role="viewer", password=PASSWORD, now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="bob is a viewer"):
        add_user(backends, actor="bob", name="eve", role="admin", password=PASSWORD,
                 now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="too short"):
        add_user(backends, actor="ann", name="cy", role="viewer", password="short", now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="invalid user name"):
        add_user(backends, actor="ann", name="../x", role="viewer", password=PASSWORD,
                 now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="last admin"):
        set_role(backends, actor="ann", name="ann", role="viewer", reason="x", now=FIXED_NOW)
    assert [(u.name, u.role) for u in backends.users.list_users()] == [("ann", "admin"),
                                                                        ("bob", "viewer")]
    log = [(e.actor, e.role, e.action, e.outcome) for e in entries(config)]
    assert log[:3] == [("root", "setup", "add_user", "done"),
                       ("root", "unknown", "manage_users", "refused"),
                       ("ann", "admin", "add_user", "done")]
    # Passwords are stored as argon2 hashes only.
    rows = backends.database.read("SELECT * FROM users")
    stored = repr(rows) + repr(backends.database.read("SELECT * FROM audit_log"))
    assert PASSWORD not in stored and all(row[2].startswith("$argon2id$") for row in rows)


def test_sign_in_refuses_wrong_passwords_logs_them_and_locks_out(registry_copy):
    backends = backends_of(registry_copy)
    assert sign_in(backends, "rita", PASSWORD, FIXED_NOW).role == "reviewer"
    assert (last(registry_copy).action, last(registry_copy).outcome) == ("login", "done")
    for name in ("rita", "nobody"):  # a wrong password and an unknown name read the same
        with pytest.raises(ActionRefused, match="wrong user name or password"):
            sign_in(backends, name, "guess-guess-guess", FIXED_NOW)
        failed = last(registry_copy)
        assert (failed.actor, failed.action, failed.outcome) == (name, "login", "refused")
        assert "guess" not in str(failed.as_dict())  # the attempt's password is never kept
    for _ in range(4):
        with pytest.raises(ActionRefused, match="wrong user name or password"):
            sign_in(backends, "rex", "guess-guess-guess", FIXED_NOW)
    with pytest.raises(ActionRefused, match="wrong user name"):
        sign_in(backends, "rex", "guess-guess-guess", FIXED_NOW)
    # Five failures in a row: even the right password is refused for a while.
    with pytest.raises(ActionRefused, match="too many failed sign-ins"):
        sign_in(backends, "rex", PASSWORD, FIXED_NOW)
    from datetime import timedelta
    assert sign_in(backends, "rex", PASSWORD, FIXED_NOW + timedelta(minutes=16)).name == "rex"


# --- decisions --------------------------------------------------------------------------

def test_promote_archives_the_champion_and_keeps_the_evidence(candidate_copy):
    entry = decide_version(backends_of(candidate_copy), "promote", 2, actor="rita", now=FIXED_NOW,
                           reason="fixes the brightness drift; clean accuracy held")
    assert statuses(candidate_copy) == {1: "archived", 2: "champion"}
    assert (entry.actor, entry.role, entry.action, entry.version) == ("rita", "reviewer",
                                                                      "promote", 2)
    details = entry.details
    assert (details["from_status"], details["to_status"]) == ("candidate", "champion")
    assert details["champion_before"] == 1 and details["gate_overridden"] is False
    assert details["gate"]["recommendation"] == "promote" and details["gate"]["checks"]
    assert details["comparison"]["holdouts"]["drifted:brightness"]["mcnemar_p"] < 0.05
    assert details["drift"]["available"] and details["drift"]["n"] == 300
    archive = last(candidate_copy)
    assert (archive.action, archive.version, archive.reason) == (
        "archive", 1, "replaced by version 2 (promote)")
    assert verify_audit(candidate_copy).ok


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_decision_needs_a_reason(candidate_copy, reason):
    with pytest.raises(InvalidInput, match="needs a written reason"):
        decide_version(backends_of(candidate_copy), "promote", 2, actor="rita", reason=reason, now=FIXED_NOW)
    assert statuses(candidate_copy) == {1: "champion", 2: "candidate"}


def test_separation_of_duties(candidate_copy):
    """olga retrained v2; made a reviewer, she still may not approve her own candidate."""
    set_role(backends_of(candidate_copy), actor="ada", name="olga", role="reviewer", reason="covers rita",
             now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="olga submitted the retraining that produced "
                                            "version 2, so cannot approve it"):
        decide_version(backends_of(candidate_copy), "promote", 2, actor="olga", reason="mine", now=FIXED_NOW)
    refusal = last(candidate_copy)
    assert (refusal.outcome, refusal.details["reason_given"]) == ("refused", "mine")
    assert statuses(candidate_copy)[2] == "candidate"
    # She may reject it, and with the rule switched off she may approve.
    relaxed = replace(candidate_copy, separation_of_duties=False)
    decide_version(backends_of(relaxed), "promote", 2, actor="olga", reason="team of one", now=FIXED_NOW)
    assert statuses(candidate_copy)[2] == "champion"


def test_going_against_the_gate_needs_an_acknowledgement(candidate_copy):
    backends = backends_of(candidate_copy)
    with pytest.raises(ActionRefused, match="the gate recommends promote for version 2"):
        decide_version(backends, "reject", 2, actor="rita", reason="I don't trust it",
               now=FIXED_NOW)
    refused = last(candidate_copy)
    details = DecisionDetails.from_dict(refused.details)  # what the reviewer saw, typed
    assert refused.outcome == "refused" and details.reason_given == "I don't trust it"
    assert details.to_status is None and details.gate_overridden is False
    assert details.gate is not None and details.gate.recommendation == "promote"
    assert json.loads(json.dumps(details.as_dict())) == refused.details
    entry = decide_version(backends, "reject", 2, actor="rita", reason="I don't trust it",
                   now=FIXED_NOW, override_gate=True)
    assert entry.details["gate_overridden"] is True
    assert statuses(candidate_copy)[2] == "rejected"


def test_promoting_against_a_reject_advice(candidate_copy):
    backends = backends_of(candidate_copy)
    registry = backends.registry
    comparison = registry.catalog.find_comparison("classifier", 1, 2)
    rejecting = replace(comparison.advice, recommendation="reject",
                        reasons=["clean accuracy fell"])
    registry.catalog.save_comparison("classifier", comparison.advised(rejecting, "t"))
    with pytest.raises(ActionRefused, match=r"recommends reject .*clean accuracy fell"):
        decide_version(backends, "promote", 2, actor="rita", reason="ok", now=FIXED_NOW)
    decide_version(backends, "promote", 2, actor="rita", reason="the drop is noise",
           now=FIXED_NOW, override_gate=True)
    assert statuses(candidate_copy)[2] == "champion"


def test_rollback_and_state_rules(candidate_copy):
    backends = backends_of(candidate_copy)
    with pytest.raises(ActionRefused, match="version 2 is candidate; only a archived"):
        decide_version(backends, "rollback", 2, actor="rita", reason="x", now=FIXED_NOW)
    decide_version(backends, "promote", 2, actor="rita", reason="better", now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="version 2 is champion; only a candidate"):
        decide_version(backends, "reject", 2, actor="rex", reason="x", now=FIXED_NOW)
    decide_version(backends, "rollback", 1, actor="rex", reason="v2 fails on real photos",
           now=FIXED_NOW)
    assert statuses(candidate_copy) == {1: "champion", 2: "archived"}
    history = [(h.version, h.action, h.to_status)
               for h in backends.registry.status_history()]
    assert history == [(1, "register", "champion"), (2, "register", "candidate"),
                       (2, "promote", "champion"), (1, "archive", "archived"),
                       (1, "rollback", "champion"), (2, "archive", "archived")]
    assert verify_audit(candidate_copy).ok


def test_promotion_needs_a_comparison_with_the_current_champion(candidate_copy):
    backends = backends_of(candidate_copy)
    add_candidate_copy(candidate_copy, compared=False)
    with pytest.raises(ActionRefused, match="has not been compared with the champion"):
        decide_version(backends, "promote", 3, actor="rita", reason="x", now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="the champion is now version 1, not version 2"):
        decide_version(backends, "reject", 3, actor="rita", reason="x", now=FIXED_NOW,
               expected_champion=2)


def add_candidate_copy(config, compared=True) -> int:
    """Registers v2's artifacts again as a new candidate (optionally with v2's comparison)."""
    import shutil

    from core.audit import Actor
    registry = backends_of(config).registry
    source = registry.get_version(2)
    version = registry.register_version(
        lambda folder: [shutil.copy(p, folder / p.name) if p.is_file()
                        else shutil.copytree(p, folder / p.name)
                        for p in registry.files(2).iterdir() if p.name != "metadata.json"],
        source.metadata, actor=Actor("olga", "operator"), now=FIXED_NOW, parent=1).version
    if compared:
        comparison = registry.catalog.find_comparison("classifier", 1, 2)
        registry.catalog.save_comparison("classifier", replace(comparison, candidate=version))
    return version


# --- concurrency and crashes --------------------------------------------------------------

DECIDER = textwrap.dedent("""
    import os, sys, time
    from datetime import datetime, timezone
    from pathlib import Path
    # A decision's drift evidence imports scipy on first use; import it before "ready",
    # so that the kill window covers deciding, not importing.
    import scipy.stats
    from core.app import build_backends, decide_version
    from core.config import load_config
    from core.errors import ActionRefused
    root, action, version, actor, start = sys.argv[1:6]
    backends = build_backends(load_config().with_overrides(registry_dir=Path(root)))
    if start == "loop":  # roll back and forth until killed
        def flip():
            for target in (1, 2):
                try:
                    decide_version(backends, "rollback", target, actor=actor, reason="flip",
                           now=datetime.now(timezone.utc))
                except ActionRefused:
                    pass
        flip()  # warm (connections, evidence): the kill window covers deciding at speed
        print("ready", flush=True)
        while True:
            flip()
    while not os.path.exists(start):  # both processes leave the line together
        time.sleep(0.001)
    try:
        decide_version(backends, action, int(version), actor=actor, reason="race",
               now=datetime.now(timezone.utc), expected_champion=1)
        print("won")
    except ActionRefused as error:
        print("lost:", error)
""")


def test_two_reviewers_promoting_at_once_leave_one_champion(candidate_copy, tmp_path):
    third = add_candidate_copy(candidate_copy)
    start = tmp_path / "go"
    deciders = [subprocess.Popen([sys.executable, "-c", DECIDER, str(candidate_copy.registry_dir),
                                  "promote", str(version), actor, str(start)],
                                 cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
                                 env=environment_of(candidate_copy))
                for version, actor in ((2, "rita"), (third, "rex"))]
    time.sleep(3)  # both have imported core and are waiting at the line
    start.touch()
    outputs = [d.communicate(timeout=120)[0].strip() for d in deciders]
    assert sorted(o.split(":")[0] for o in outputs) == ["lost", "won"], outputs
    loser = next(o for o in outputs if o.startswith("lost"))
    # Told why: whether it lost inside the transaction or just before it.
    assert ("version 1 is archived now, no longer champion" in loser
            or "the champion is now version" in loser), loser
    assert list(statuses(candidate_copy).values()).count("champion") == 1
    promotions = [(e.actor, e.outcome) for e in entries(candidate_copy) if e.action == "promote"]
    assert sorted(outcome for _, outcome in promotions) == ["done", "refused"]
    assert verify_audit(candidate_copy).ok


def test_a_decider_killed_at_any_moment_leaves_a_consistent_registry(candidate_copy):
    decide_version(backends_of(candidate_copy), "promote", 2, actor="rita", reason="start", now=FIXED_NOW)
    for moment in kill_moments(random.Random(5), DECISION_KILLS, 0.0, 1.0):
        process = subprocess.Popen([sys.executable, "-c", DECIDER,
                                    str(candidate_copy.registry_dir), "-", "0", "rex", "loop"],
                                   cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
                                   env=environment_of(candidate_copy))
        assert process.stdout.readline().strip() == "ready"
        kill_after(process, moment)
        assert_consistent(candidate_copy)  # one champion, the chain verifies, ...
        verification = verify_audit(candidate_copy)  # ... and no status changed outside it
        assert verification.ok, verification.problem
    flips = [e for e in entries(candidate_copy) if e.action == "rollback" and e.outcome == "done"]
    assert len(flips) > DECISION_KILLS  # the loops really were deciding when killed


# --- the audit chain --------------------------------------------------------------------


def test_the_log_refuses_updates_and_deletes(registry_copy):
    statements = ["UPDATE audit_log SET actor = 'eve' WHERE seq = 1",
                  "DELETE FROM audit_log WHERE seq = 1"]
    if backends_of(registry_copy).database.dialect == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            run_sql(registry_copy, statement)
    assert verify_audit(registry_copy).entries == 6


COLUMNS = "at, actor, role, action, outcome, model, target, version, reason, details"


@pytest.mark.parametrize("statements, first_bad, problem", [
    (["UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3"], 3, "was edited"),
    (["DELETE FROM audit_log WHERE seq = 3"], 3, "is missing"),
    # Removing entry 3 and renumbering the rest keeps the numbers tidy; the links break.
    (["DELETE FROM audit_log WHERE seq = 3",
      "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3"], 3, "was edited"),
    ([f"INSERT INTO audit_log (seq, {COLUMNS}, prev_hash, hash) SELECT 100, {COLUMNS}, "
      "prev_hash, hash FROM audit_log WHERE seq = 2"], 7, "is missing"),
    # Swapping the content of entries 2 and 3 (reordering them).
    (["UPDATE audit_log SET seq = -2 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 3",
      "UPDATE audit_log SET seq = 3 WHERE seq = -2"], 2, "was edited"),
    (["DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)"], 6,
     "deleted from or added to the end"),
])
def test_verify_names_the_first_tampered_entry(registry_copy, statements, first_bad, problem):
    """The shared registry's log: 1 registration, then 5 users added (entries 1-6)."""
    assert verify_audit(registry_copy).ok and verify_audit(registry_copy).entries == 6
    tamper(registry_copy, *statements)
    result = verify_audit(registry_copy)
    assert not result.ok
    assert result.first_bad == first_bad and problem in result.problem


def test_a_forged_but_well_chained_tail_is_caught_by_an_anchor(registry_copy):
    anchor = (6, verify_audit(registry_copy).head_hash)
    # Rewrite entry 6 with a correct hash and head: the chain alone cannot tell.
    rows = backends_of(registry_copy).audit_log.raw_rows()
    forged = rows[5] | {"reason": "forged"}
    forged["hash"] = audit.entry_hash(forged)
    tamper(registry_copy, f"UPDATE audit_log SET reason = 'forged', hash = '{forged['hash']}' "
                          "WHERE seq = 6", f"UPDATE audit_head SET hash = '{forged['hash']}'")
    assert verify_audit(registry_copy).ok
    result = verify_audit(registry_copy, anchor)
    assert not result.ok and result.first_bad == 6 and "anchored hash" in result.problem


def test_a_status_changed_outside_a_decision_is_detected(candidate_copy):
    run_sql(candidate_copy, "UPDATE versions SET status = 'rejected' WHERE version = 2")
    result = verify_audit(candidate_copy)
    assert not result.ok
    assert "version 2 is rejected in the catalog, but the audit log records it as candidate" \
        in result.problem


def test_export_round_trips(candidate_copy):
    import csv
    import io
    import json
    logged = entries(candidate_copy)
    as_json = json.loads(audit.export(logged, "json"))
    assert [e["seq"] for e in as_json] == list(range(1, len(logged) + 1))
    assert as_json[-1]["details"] == logged[-1].details
    rows = list(csv.DictReader(io.StringIO(audit.export(logged, "csv"))))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in as_json]
    assert all(audit.entry_hash(r | {"seq": int(r["seq"]),
                                     "version": int(r["version"]) if r["version"] else None})
               == r["hash"] for r in rows)  # anyone can re-check an exported log
