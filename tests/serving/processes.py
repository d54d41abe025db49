"""Real API server processes (``python -m core serve``) and the clients that load them:
shared by the server tests and the multi-machine rehearsal."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from core.config import Config
from tests.conftest import PROJECT_ROOT, backends_of, environment_of, fashion_test_images
from tests.servers import free_port
from tests.serving.clients import BOUNDARY, multipart, png

BODY = png(fashion_test_images(1)[0][0])
MULTIPART = multipart(BODY)


@contextmanager
def server(config: Config, workers: int = 1, environment: dict[str, str] | None = None):
    """``python -m core serve`` on ``config``'s registry, on a free port, until ready:
    (port, process). Killed on exit. ``environment``: more settings."""
    port = free_port()
    env = environment_of(config) | {"REFRESH_SECONDS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"} | (
        environment or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--port", str(port), "--workers",
         str(workers)], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until_ready(port, process)
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_ready(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.2)


class Load:
    """Client threads sending /v1/predict with unique request ids, recording each answer.

    Answers carry wall-clock times, to compare with the audit log's timestamps.

    Args:
        pause: seconds each thread waits between requests (0: as fast as answered).
    """

    def __init__(self, port: int, threads: int = 4, prefix: str = "load", pause: float = 0):
        self.port, self.prefix, self.pause = port, prefix, pause
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
        while not self._stop.wait(self.pause):
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
                    self.answers.append((time.time(), request_id, response.status, version))
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.errors.append(f"{request_id}: {error!r}")
                if self._stop.is_set():
                    return
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(0.05)

    def answered_ids(self) -> set[str]:
        with self._lock:
            return {request_id for _, request_id, status, _ in self.answers if status == 200}

    def versions_since(self, moment: float) -> set[int | None]:
        with self._lock:
            return {version for at, _, _, version in self.answers if at >= moment}

    def wait_until(self, condition, timeout: float) -> float:
        """Seconds until ``condition(versions answered since now)`` held."""
        started = time.time()
        while time.time() - started < timeout:
            time.sleep(0.1)
            # Answers after this check started: the last 0.3 s of traffic.
            if condition(self.versions_since(time.time() - 0.3)):
                return time.time() - started
        raise AssertionError(f"not reached within {timeout} s")


def logged_ids(config: Config) -> set[str]:
    """The request ids in the prediction log of ``config``'s registry."""
    return {row[0] for row in backends_of(config).database.read(
        "SELECT request_id FROM predictions WHERE request_id IS NOT NULL")}


def group_rss(group: int) -> int:
    """Resident memory in bytes of every process in process group ``group`` (a server
    started in a session of its own, with its decoding processes)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:  # fields after the name: state, ppid, pgrp, ...
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError):
            continue  # the process ended while being read
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class Flood:
    """Client threads sending one body over and over (each its own connection), while a
    watcher times ``/healthz`` every 20 ms and samples the server group's memory.

    Attributes:
        statuses: status -> count of the flood's answers.
        retry_after: how many 503 answers carried ``Retry-After``.
        healthz: seconds each /healthz took; rss: bytes of the server group, sampled.
    """

    def __init__(self, port: int, group: int, bodies: list[bytes], threads: int = 6):
        self.port, self.group, self.bodies = port, group, bodies
        self.statuses: dict[int, int] = {}
        self.retry_after = 0
        self.healthz: list[float] = []
        self.rss: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, args=(bodies[i % len(bodies)],),
                                          daemon=True) for i in range(threads)]
        self._threads += [threading.Thread(target=self._time_healthz, daemon=True),
                          threading.Thread(target=self._sample_memory, daemon=True)]

    def run(self, seconds: float) -> "Flood":
        for thread in self._threads:
            thread.start()
        time.sleep(seconds)
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self

    def _send(self, body: bytes) -> None:
        while not self._stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request("POST", "/v1/models/classifier:predict", body=body,
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                with self._lock:
                    self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                    self.retry_after += (response.status == 503
                                         and response.getheader("Retry-After") is not None)
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.errors.append(repr(error))
            finally:
                connection.close()

    def _time_healthz(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            self.healthz.append(time.perf_counter() - started)

    def _sample_memory(self) -> None:
        while not self._stop.wait(0.05):
            self.rss.append(group_rss(self.group))
