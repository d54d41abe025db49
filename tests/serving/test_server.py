"""Real server processes (``python -m core serve``) under load: policy changes and hot
swaps without a failed request, and SIGKILL at random moments without losing an
answered prediction."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime

import pytest

from core.app import decide_version, set_traffic
from tests.conftest import backends_of
from tests.serving.processes import Load, logged_ids, server

pytestmark = pytest.mark.slow


def test_policy_changes_and_hot_swaps_reach_the_server_without_a_failed_request(
        candidate_copy):
    backends = backends_of(candidate_copy)
    now = datetime.now(UTC)
    with server(candidate_copy, workers=2) as (port, _), Load(port) as load:
        load.wait_until(lambda seen: seen == {1}, 30)
        set_traffic(backends, actor="rita", mode="canary", candidate=2, percent=50,
                    reason="half the traffic to v2", now=now)
        canary = load.wait_until(lambda seen: seen == {1, 2}, 5)
        decide_version(backends, "promote", 2, actor="rita", reason="canary went well",
                       now=now, override_gate=True)
        promoted = load.wait_until(lambda seen: seen == {2}, 5)
        decide_version(backends, "rollback", 1, actor="rex", reason="back to v1", now=now)
        rolled_back = load.wait_until(lambda seen: seen == {1}, 5)
    statuses = {status for _, _, status, _ in load.answers}
    assert load.errors == [] and statuses == {200}, (load.errors[:3], statuses)
    assert max(canary, promoted, rolled_back) <= 5
    assert len(load.answers) > 100
    assert {request_id for _, request_id, _, _ in load.answers} <= logged_ids(candidate_copy)


def test_a_server_killed_under_load_loses_no_answered_prediction(registry_copy):
    rng = random.Random(14)
    answered: set[str] = set()
    for round_number in range(3):
        with server(registry_copy) as (port, process), \
                Load(port, prefix=f"kill{round_number}") as load:
            time.sleep(rng.uniform(0.5, 2.5))
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        answered |= load.answered_ids()
        assert {status for _, _, status, _ in load.answers} <= {200}
    assert len(answered) > 50
    with closing(sqlite3.connect(registry_copy.registry_dir / "registry.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert answered - logged_ids(registry_copy) == set()
