"""Sign-in as an attacker tries it: a flood of wrong passwords slows down its own address
only, never the rightful user elsewhere; admins disable accounts and reset passwords."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from core.app import (
    export_audit_log,
    predict_image,
    reset_password,
    set_user_disabled,
    sign_in,
)
from core.errors import ActionRefused, InvalidInput
from core.governance.throttle import FREE_FAILURES, FREE_FAILURES_ANY_NAME
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, PASSWORD, backends_of
from tests.serving.clients import png

ATTACKER, RITA_AT_HOME = "203.0.113.9", "198.51.100.7"


def refused_logins(backends) -> int:
    return sum(e.action == "login" and e.outcome == "refused"
               for e in backends.audit_log.read_entries())


def test_a_flood_of_wrong_passwords_never_locks_out_the_rightful_user(registry_copy):
    backends = backends_of(registry_copy)
    started = time.perf_counter()
    throttled = 0
    for second in range(60):  # one guess a second for a minute, from one address
        try:
            sign_in(backends, "rita", f"guess-{second:04d}-guess", FIXED_NOW
                    + timedelta(seconds=second), client=ATTACKER)
        except ActionRefused as error:
            throttled += "too many failed sign-ins" in str(error)
    # Only the first guesses were checked (argon2) and audited; the rest cost a lookup.
    assert throttled == 60 - FREE_FAILURES
    assert refused_logins(backends) == FREE_FAILURES
    assert time.perf_counter() - started < 10
    # Rita, from her own address, signs in at once; the attacker, even with her password,
    # still waits.
    during = FIXED_NOW + timedelta(seconds=30)
    assert sign_in(backends, "rita", PASSWORD, during, client=RITA_AT_HOME).name == "rita"
    with pytest.raises(ActionRefused, match="too many failed sign-ins"):
        sign_in(backends, "rita", PASSWORD, during, client=ATTACKER)
    # The waits grow (1, 2, 4 ... minutes) and end: then a check happens again.
    later = FIXED_NOW + timedelta(minutes=2)
    with pytest.raises(ActionRefused, match="wrong user name or password"):
        sign_in(backends, "rita", "one-more-guess-1", later, client=ATTACKER)
    with pytest.raises(ActionRefused, match="wait 120 s"):
        sign_in(backends, "rita", "one-more-guess-2", later, client=ATTACKER)


def test_guessing_across_many_names_slows_that_address_for_every_name(registry_copy):
    backends = backends_of(registry_copy)
    for i in range(FREE_FAILURES_ANY_NAME):
        with pytest.raises(ActionRefused, match="wrong user name or password"):
            sign_in(backends, f"user{i}", "Summer2026!!", FIXED_NOW, client=ATTACKER)
    with pytest.raises(ActionRefused, match="too many failed sign-ins"):
        sign_in(backends, "rex", "Summer2026!!", FIXED_NOW, client=ATTACKER)
    assert sign_in(backends, "rex", PASSWORD, FIXED_NOW, client=RITA_AT_HOME).name == "rex"


@pytest.mark.parametrize("name", ["../../etc/passwd", "a b", "", "anonymous", "x" * 200])
def test_sign_in_names_are_validated_before_any_check(registry_copy, name):
    backends = backends_of(registry_copy)
    before = refused_logins(backends)
    with pytest.raises(InvalidInput, match="user name"):
        sign_in(backends, name, PASSWORD, FIXED_NOW, client=ATTACKER)
    assert refused_logins(backends) == before


def test_an_admin_disables_an_account_and_resets_a_password(registry_copy):
    backends = backends_of(registry_copy)
    with pytest.raises(ActionRefused, match="needs the role admin"):
        set_user_disabled(backends, actor="rita", name="rex", disabled=True,
                          reason="left the team", now=FIXED_NOW)
    set_user_disabled(backends, actor="ada", name="vic", disabled=True, reason="left",
                      now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="disabled"):
        sign_in(backends, "vic", PASSWORD, FIXED_NOW)
    with pytest.raises(ActionRefused, match="disabled"):  # nor act as them
        predict_image(backends, png(__import__("numpy").zeros((28, 28, 1), "uint8")),
                      actor="vic", source="cli", now=FIXED_NOW)
    set_user_disabled(backends, actor="ada", name="vic", disabled=False, reason="back",
                      now=FIXED_NOW)
    assert sign_in(backends, "vic", PASSWORD, FIXED_NOW).role == "viewer"
    with pytest.raises(ActionRefused, match="last enabled admin"):
        set_user_disabled(backends, actor="ada", name="ada", disabled=True, reason="oops",
                          now=FIXED_NOW)
    reset_password(backends, actor="ada", name="rex", password="a brand new passphrase",
                   reason="forgot it", now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="wrong user name or password"):
        sign_in(backends, "rex", PASSWORD, FIXED_NOW)
    assert sign_in(backends, "rex", "a brand new passphrase", FIXED_NOW).name == "rex"
    exported = export_audit_log(backends, "json", actor="ada", now=FIXED_NOW)
    actions = [(e["action"], e["target"]) for e in json.loads(exported)]
    assert {("disable_user", "user vic"), ("enable_user", "user vic"),
            ("reset_password", "user rex")} <= set(actions)
    assert "brand new" not in exported


def test_users_disable_enable_and_reset_password_from_the_cli(registry_copy):
    registry = registry_copy.registry_dir
    disabled = run_cli(registry, "users", "disable", "olga", "--reason", "on leave",
                       "--actor", "ada")
    assert disabled.returncode == 0 and "olga is now disabled" in disabled.stdout
    listed = json.loads(run_cli(registry, "users", "list", "--json").stdout)
    assert [u["disabled"] for u in listed if u["name"] == "olga"] == [True]
    refused = run_cli(registry, "simulate", "--scenario", "brightness", "--n", "5", "--actor",
                      "olga")
    assert refused.returncode == 1 and "disabled" in refused.stderr
    assert run_cli(registry, "users", "enable", "olga", "--reason", "back", "--actor",
                   "ada").returncode == 0
    reset = run_cli(registry, "users", "reset-password", "olga", "--reason", "forgot",
                    "--actor", "ada", stdin="another long passphrase\n")
    assert reset.returncode == 0 and "new password" in reset.stdout
    assert sign_in(backends_of(registry_copy), "olga", "another long passphrase",
                   FIXED_NOW).name == "olga"
