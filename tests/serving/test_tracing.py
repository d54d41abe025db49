"""Traces over OTLP/HTTP to a real receiver: each API request's span with its decode,
predict, shadow and log steps as children and its trace id on its log rows; a caller's
trace continued; a job's and a monitor pass's spans. (Without the setting:
tests/serving/test_api.py.)"""

from __future__ import annotations

import http.client
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from core.app import set_traffic
from core.audit import Actor
from tests.conftest import PROJECT_ROOT, backends_of, environment_of
from tests.serving.clients import BOUNDARY, multipart
from tests.serving.processes import BODY, server
from tests.traces import OtlpReceiver

pytestmark = pytest.mark.slow
# Batches leave every 100 ms instead of 5 s: the test waits less.
QUICK_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


STEPS = ("decode", "predict", "shadow", "log")


def within(spans: list, root) -> list:
    """Every span under ``root`` (children, their children, ...)."""
    found, parents = [], {root.span_id}
    while True:
        more = [s for s in spans if s.parent_span_id in parents and s not in found]
        if not more:
            return found
        found += more
        parents |= {s.span_id for s in more}


def post(port: int, body: bytes, request_id: str, headers: dict | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/v1/predict", body=multipart(body), headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "X-Request-ID": request_id, **(headers or {})})
    response = connection.getresponse()
    response.read()
    return response.status


def test_a_request_is_one_trace_with_its_steps_and_its_log_rows_name_it(candidate_copy):
    backends = backends_of(candidate_copy)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="compare v2", now=datetime.now(UTC))
    receiver = OtlpReceiver().start()
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        with server(candidate_copy, environment={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **QUICK_EXPORT}) as (
                port, process):
            assert post(port, BODY, "traced-ok") == 200
            assert post(port, b"not an image", "traced-bad") == 400
            # Only the trace is taken from the caller: its baggage (9 KB, over OpenTelemetry's
            # 8 KB limit) is neither parsed nor written whole to the server's log.
            assert post(port, BODY, "traced-continued", {
                "traceparent": f"00-{caller_trace}-{caller_span}-01",
                "baggage": "k=" + "v" * 9000}) == 200
            spans = receiver.wait_for(lambda found: sum(
                s.kind == 2 for s in found) >= 4 and sum(s.name == "log" for s in found) >= 2)
    finally:
        receiver.stop()
    assert b"v" * 9000 not in process.stderr.read()
    servers = {s.attributes["vision.request_id"]: s for s in spans
               if s.kind == 2 and "vision.request_id" in s.attributes}
    ok = servers["traced-ok"]
    assert ok.name == "POST /v1/predict" and ok.service == "vision-api"
    assert ok.attributes | {"http.response.status_code": 200, "vision.version": 1,
                            "vision.variant": "champion", "http.route": "/v1/predict",
                            "vision.model": "classifier"} == ok.attributes and not ok.failed
    # FastAPI's server span holds its endpoint's span, which holds the request's steps.
    children = {s.name: s for s in within(spans, ok)}
    assert set(children) >= {"fastapi.endpoint", "decode", "predict", "shadow", "log"}
    endpoint = children["fastapi.endpoint"]
    assert {s.parent_span_id for s in children.values() if s.name in STEPS} == {
        endpoint.span_id}
    assert {s.trace_id for s in children.values()} == {ok.trace_id}
    assert children["predict"].attributes["vision.version"] == 1
    assert children["shadow"].attributes["vision.version"] == 2
    for child in children.values():  # inside the request's span
        assert ok.start_ns <= child.start_ns <= child.end_ns <= ok.end_ns
    assert children["predict"].end_ns <= children["shadow"].start_ns

    bad = servers["traced-bad"]
    assert bad.attributes["http.response.status_code"] == 400 and not bad.failed
    assert {s.name for s in within(spans, bad)} & set(STEPS) == {"decode"}
    # A caller's trace is continued: same trace id, its span as the parent.
    continued = servers["traced-continued"]
    assert (continued.trace_id, continued.parent_span_id) == (caller_trace, caller_span)

    # The log's rows name their request's trace: the answer's and the shadow's.
    rows = backends.database.read(
        "SELECT request_id, variant, trace_id FROM predictions WHERE request_id LIKE "
        "'traced-%' ORDER BY id")
    assert {(r[0], r[1], r[2]) for r in rows} == {
        ("traced-ok", "champion", ok.trace_id), ("traced-ok", "shadow", ok.trace_id),
        ("traced-continued", "champion", caller_trace),
        ("traced-continued", "shadow", caller_trace)}
    [failure] = backends.database.read(
        "SELECT trace_id FROM request_failures WHERE request_id = 'traced-bad'")
    assert failure[0] == bad.trace_id


def test_a_job_and_a_monitor_pass_are_traced_by_their_own_processes(registry_copy):
    backends = backends_of(registry_copy)
    # A real job through the real worker, that fails at once (no epoch to train).
    job = backends.jobs.store.submit("retrain", {"epochs": 0}, now=datetime.now(UTC),
                                     actor=Actor("olga", "operator"))
    receiver = OtlpReceiver().start()
    env = environment_of(registry_copy) | {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                           **QUICK_EXPORT}
    try:
        for command in (["core.worker"], ["core", "monitor", "run", "--once"]):
            done = subprocess.run([sys.executable, "-m", *command], cwd=PROJECT_ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
        spans = receiver.wait_for(lambda found: len(found) >= 2)
    finally:
        receiver.stop()
    by_name = {s.name: s for s in spans}
    retrain = by_name["job retrain"]
    assert retrain.service == "vision-worker" and retrain.failed
    assert retrain.attributes["vision.job.id"] == job.id
    assert retrain.attributes["vision.job.submitted_by"] == "olga"
    monitor = by_name["monitor pass"]
    assert monitor.service == "vision-monitor" and not monitor.failed
    assert monitor.attributes["vision.model"] == "classifier"
    assert monitor.attributes["vision.problems"] == []
