"""Real server processes (``python -m core serve``) under load: policy changes and hot
swaps without a failed request, and SIGKILL at random moments without losing an
answered prediction."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing, contextmanager
from datetime import UTC, datetime

import pytest

from bench.http_serving import BOUNDARY, multipart
from bench.servers import free_port
from core.app import decide_version, set_traffic
from tests.conftest import PROJECT_ROOT, backends_of, fashion_test_images
from tests.serving.test_api import png

pytestmark = pytest.mark.slow
BODY = png(fashion_test_images(1)[0][0])
MULTIPART = multipart(BODY)


@contextmanager
def server(config, workers: int = 1):
    port = free_port()
    env = os.environ | {"REFRESH_SECONDS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "--registry", str(config.registry_dir), "serve",
         "--port", str(port), "--workers", str(workers)], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Load:
    """Client threads sending /v1/predict with unique request ids, recording each answer."""

    def __init__(self, port: int, threads: int = 4, prefix: str = "load"):
        self.port, self.prefix = port, prefix
        self.answers: list[tuple[float, str, int, int | None]] = []  # time, id, status, version
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        while not self._stop.is_set():
            request_id = f"{self.prefix}-{index}-{n}"
            n += 1
            try:
                connection.request("POST", "/v1/predict", body=MULTIPART, headers={
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    "X-Request-ID": request_id})
                response = connection.getresponse()
                body = response.read()
                version = json.loads(body).get("version") if response.status == 200 else None
                with self._lock:
                    self.answers.append((time.monotonic(), request_id, response.status,
                                         version))
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.errors.append(f"{request_id}: {error!r}")
                if self._stop.is_set():
                    return
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(0.05)

    def versions_since(self, moment: float) -> set[int | None]:
        with self._lock:
            return {version for at, _, _, version in self.answers if at >= moment}

    def wait_until(self, condition, timeout: float) -> float:
        """Seconds until ``condition(versions answered since now)`` held."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            time.sleep(0.1)
            # Answers after this check started: the last 0.3 s of traffic.
            if condition(self.versions_since(time.monotonic() - 0.3)):
                return time.monotonic() - started
        raise AssertionError(f"not reached within {timeout} s")


def logged_ids(config) -> set[str]:
    with closing(sqlite3.connect(config.registry_dir / "registry.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {row[0] for row in db.execute(
            "SELECT request_id FROM predictions WHERE request_id IS NOT NULL")}


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
        answered |= {request_id for _, request_id, status, _ in load.answers if status == 200}
        assert {status for _, _, status, _ in load.answers} <= {200}
    assert len(answered) > 50
    assert answered - logged_ids(registry_copy) == set()
