"""Traffic policies (validation, routing, audit) and API keys (hashing, revocation, audit)."""

from __future__ import annotations

import pytest

from core.app import create_key, list_keys, revoke_key, set_traffic, traffic_status
from core.errors import ActionRefused, InvalidInput
from core.governance.keys import hash_secret
from core.governance.traffic import TrafficPolicy, assign, in_canary
from tests.conftest import FIXED_NOW, backends_of

# The contract holds on every database: each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.every_database


@pytest.mark.parametrize("mode, candidate, percent, message", [
    ("sideways", None, None, "unknown traffic mode"),
    ("shadow", None, None, "needs a candidate"),
    ("canary", 2, None, "out of range"),
    ("canary", 2, 0, "out of range"),
    ("canary", 2, 101, "out of range"),
    ("shadow", 2, 10, "no percent"),
    ("off", 2, None, "no candidate"),
])
def test_bad_policies_are_refused(mode, candidate, percent, message):
    with pytest.raises(InvalidInput, match=message):
        TrafficPolicy(mode, candidate, percent)


def test_routing_follows_the_policy_while_the_version_is_a_candidate():
    statuses = {1: "champion", 2: "candidate"}
    shadow = TrafficPolicy("shadow", 2)
    assert assign(shadow, 1, statuses, "a").shadow == 2
    canary = TrafficPolicy("canary", 2, 25)
    ids = [f"id-{i}" for i in range(2000)]
    share = sum(assign(canary, 1, statuses, i).version == 2 for i in ids) / len(ids)
    assert 0.2 < share < 0.3
    assert all(assign(canary, 1, statuses, i).version == (2 if in_canary(i, 25) else 1)
               for i in ids[:50])
    assert all(assign(TrafficPolicy("canary", 2, 100), 1, statuses, i).variant == "canary"
               for i in ids[:50])
    for status in ("champion", "rejected", "archived"):  # decided: the champion alone
        after = {1: "archived" if status == "champion" else "champion", 2: status}
        champion = 2 if status == "champion" else 1
        assert assign(canary, champion, after, "x").variant == "champion"
        assert assign(shadow, champion, after, "x").shadow is None


def test_setting_traffic_is_for_reviewers_and_audited(candidate_copy):
    backends = backends_of(candidate_copy)
    with pytest.raises(ActionRefused, match="traffic needs the role reviewer or admin"):
        set_traffic(backends, actor="olga", mode="shadow", candidate=2, percent=None,
                    reason="mine", now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="not a candidate"):
        set_traffic(backends, actor="rita", mode="shadow", candidate=1, percent=None,
                    reason="x", now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="reason"):
        set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                    reason=" ", now=FIXED_NOW)
    status = set_traffic(backends, actor="rita", mode="canary", candidate=2, percent=10,
                         reason="a tenth to v2", now=FIXED_NOW)
    assert status.active and status.champion == 1
    assert traffic_status(backends, actor="vic", now=FIXED_NOW).as_dict() == status.as_dict()
    entry = [e for e in backends.audit_log.read_entries("classifier") if e.action == "traffic"]
    assert [(e.actor, e.outcome, e.reason) for e in entry] == [
        ("olga", "refused", entry[0].reason), ("rita", "done", "a tenth to v2")]
    assert entry[-1].details["from"]["mode"] == "off"
    assert entry[-1].details["to"] == {"mode": "canary", "candidate": 2, "percent": 10}
    assert backends.audit_log.verify().ok


def test_keys_are_stored_hashed_listed_without_secrets_and_revoked_once(config):
    from core.app import add_user

    backends = backends_of(config)
    add_user(backends, actor="setup", name="ada", role="admin", password=None, now=FIXED_NOW)
    key, secret = create_key(backends, actor="ada", name="ci-bot", role="operator",
                             rate_limit=5, now=FIXED_NOW)
    assert secret.startswith("cmk_") and len(secret) > 40
    assert backends.keys.active_keys()[hash_secret(secret)].name == "ci-bot"
    assert secret not in str([k.as_dict() for k in list_keys(backends, actor="ada",
                                                             now=FIXED_NOW)])
    assert backends.access.resolve_actor("key:ci-bot").role == "operator"
    with pytest.raises(InvalidInput, match="already exists"):
        create_key(backends, actor="ada", name="ci-bot", role="viewer", rate_limit=None,
                   now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="rate limit"):
        create_key(backends, actor="ada", name="fast", role="viewer", rate_limit=-1,
                   now=FIXED_NOW)
    revoke_key(backends, actor="ada", name="ci-bot", reason="leaked", now=FIXED_NOW)
    assert backends.access.resolve_actor("key:ci-bot").role == "unknown"
    with pytest.raises(ActionRefused, match="revoked"):
        backends.access.authorize("key:ci-bot", "predict", FIXED_NOW)
    with pytest.raises(InvalidInput, match="no active key"):
        revoke_key(backends, actor="ada", name="ci-bot", reason=None, now=FIXED_NOW)
    assert backends.audit_log.verify().ok
