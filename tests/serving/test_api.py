"""The serving API in-process (FastAPI's TestClient): TF Serving's protocol, the plain
endpoints, keys and roles, limits, traffic policies, logging and metrics."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from core.app import create_key, predict_image, revoke_key, set_traffic, traffic_over_time
from core.config import Config
from core.governance.traffic import in_canary
from core.ml.data import FASHION_MNIST_CLASSES
from core.serving.api import create_app
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images, salt_noise
from tests.serving.clients import api_on_a_copy, b64, png

MODEL = "/v1/models/classifier"


IMAGES, LABELS = fashion_test_images(8)


def rows(config: Config, sql: str, args=()) -> list[tuple]:
    with closing(sqlite3.connect(config.registry_dir / "registry.db")) as db:
        return db.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def served(candidate_registry, tmp_path_factory):
    """A copy of the candidate registry (v1 champion, v2 candidate) behind one API."""
    with api_on_a_copy(candidate_registry, tmp_path_factory.mktemp("served")) as served:
        yield served


@pytest.fixture
def config(served):
    return served[0]


@pytest.fixture
def client(served):
    return served[1]


@pytest.fixture
def session(served):
    return served[2]


def test_status_labels_and_metadata(client):
    status = client.get(MODEL).json()["model_version_status"]
    assert [(s["version"], s["state"], s["status"]["error_code"]) for s in status] == [
        ("2", "AVAILABLE", "OK"), ("1", "AVAILABLE", "OK")]
    assert client.get(f"{MODEL}/versions/2").json()["model_version_status"][0]["version"] == "2"
    assert client.get(f"{MODEL}/labels/champion").json()["model_version_status"][0][
        "version"] == "1"
    assert client.get(f"{MODEL}/labels/candidate").json()["model_version_status"][0][
        "version"] == "2"
    signature = client.get(f"{MODEL}/metadata").json()["metadata"]["signature_def"][
        "signature_def"]["serving_default"]
    image = signature["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert [d["size"] for d in signature["outputs"]["probabilities"]["tensor_shape"]["dim"]] == [
        "-1", "10"]
    version2 = client.get(f"{MODEL}/versions/2/metadata").json()
    assert version2["model_spec"]["version"] == "2"


def test_row_columnar_b64_and_float_instances_agree(client):
    floats = (IMAGES[:2].astype(np.float32) / 255).tolist()
    encoded = [b64(png(image)) for image in IMAGES[:2]]
    row_b64 = client.post(f"{MODEL}:predict", json={"instances": encoded}).json()
    row_float = client.post(f"{MODEL}:predict", json={"instances": floats}).json()
    named = client.post(f"{MODEL}:predict",
                        json={"instances": [{"image": f} for f in floats]}).json()
    columnar = client.post(f"{MODEL}:predict", json={"inputs": {"image": floats}}).json()
    assert len(row_b64["predictions"]) == 2
    assert set(row_b64["predictions"][0]) == {"probabilities", "embedding", "ood_score",
                                              "unfamiliar"}
    for reply in (row_float, named):
        np.testing.assert_allclose([p["probabilities"] for p in reply["predictions"]],
                                   [p["probabilities"] for p in row_b64["predictions"]],
                                   atol=1e-6)
    np.testing.assert_allclose(columnar["outputs"]["probabilities"],
                               [p["probabilities"] for p in row_b64["predictions"]], atol=1e-6)
    assert np.asarray(columnar["outputs"]["embedding"]).shape[0] == 2
    predicted = np.argmax(columnar["outputs"]["probabilities"], axis=1)
    assert np.allclose(np.sum(columnar["outputs"]["probabilities"], axis=1), 1, atol=1e-4)
    assert predicted.shape == (2,)


def test_answers_say_whether_an_image_is_unlike_the_training_images(client, config):
    instances = [b64(png(IMAGES[0])), b64(png(salt_noise()))]
    reply = client.post(f"{MODEL}/versions/1:predict", json={"instances": instances},
                        headers={"X-Request-ID": "ood-1"}).json()
    garment, noise = reply["predictions"]
    assert (garment["unfamiliar"], noise["unfamiliar"]) == (False, True)
    assert noise["ood_score"] > garment["ood_score"]
    columnar = client.post(f"{MODEL}/versions/1:predict", json={"inputs": {"image": [
        (salt_noise().astype(np.float32) / 255).tolist()]}}).json()["outputs"]
    assert columnar["unfamiliar"] == [True]
    assert columnar["ood_score"][0] == pytest.approx(noise["ood_score"], abs=1e-5)
    plain = client.post("/v1/predict",  # the champion, version 1
                        files={"file": ("noise.png", png(salt_noise()), "image/png")}).json()
    assert plain["version"] == 1 and plain["unfamiliar"] is True
    logged = rows(config, "SELECT ood_score FROM predictions WHERE request_id = 'ood-1' "
                          "ORDER BY id")
    assert [score for (score,) in logged] == pytest.approx(
        [garment["ood_score"], noise["ood_score"]], abs=1e-6)


def test_without_a_trace_endpoint_nothing_is_traced(client, config):
    """The default (no OTEL_EXPORTER_OTLP_ENDPOINT): no trace id on the rows, a client's
    traceparent included (tests/serving/test_tracing.py: with one)."""
    reply = client.post("/v1/predict", files={"file": ("a.png", png(fashion_test_images(1)[0][0]),
                                                       "image/png")},
                        headers={"X-Request-ID": "untraced", "traceparent":
                                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert reply.status_code == 200
    assert rows(config, "SELECT DISTINCT trace_id FROM predictions WHERE request_id = "
                "'untraced'") == [
        (None,)]


def test_versions_and_labels_paths_answer_with_that_version(client, config):
    image = [b64(png(IMAGES[0]))]
    one = client.post(f"{MODEL}/versions/1:predict", json={"instances": image})
    two = client.post(f"{MODEL}/labels/candidate:predict", json={"instances": image})
    assert one.status_code == two.status_code == 200
    assert one.json() != two.json()  # two different models
    logged = rows(config, "SELECT version, variant FROM predictions WHERE request_id IN (?, ?) "
                          "ORDER BY version", (one.headers["x-request-id"],
                                               two.headers["x-request-id"]))
    assert logged == [(1, "direct"), (2, "direct")]


def test_plain_predict_matches_the_dashboards_answer(client, config):
    data = png(IMAGES[3])
    reply = client.post("/v1/predict", files={"file": ("shoe.png", data, "image/png")},
                        headers={"X-Request-ID": "plain-1"})
    assert reply.status_code == 200
    answer = reply.json()
    expected, _ = predict_image(backends_of(config), data, actor="anonymous", source="upload",
                                now=FIXED_NOW)
    assert answer["label"] == expected.label and answer["version"] == 1
    assert answer["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert answer["request_id"] == "plain-1" and answer["variant"] == "champion"
    assert rows(config, "SELECT source, client, variant, label FROM predictions WHERE "
                        "request_id = 'plain-1'") == [("api", "anonymous", "champion",
                                                       expected.label)]


def test_explain_returns_the_overlay_png(client):
    reply = client.post("/v1/explain?class=Trouser",
                        files={"file": ("x.png", png(IMAGES[0]), "image/png")})
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.headers["x-explained-class"] == "Trouser"
    overlay = np.asarray(Image.open(io.BytesIO(reply.content)))
    assert overlay.ndim == 3 and overlay.shape[2] == 3
    predicted = client.post("/v1/explain", files={"file": ("x.png", png(IMAGES[0]))})
    assert predicted.headers["x-explained-class"] == predicted.headers["x-predicted-class"]
    assert predicted.headers["x-heatmap-empty"] == "false"
    bad = client.post("/v1/explain?class=Hat", files={"file": ("x.png", png(IMAGES[0]))})
    assert bad.status_code == 400 and "Hat" in bad.json()["error"]


BAD_BODIES = {
    "not json": (b"{instances: [", 400, "not valid JSON"),
    "a list": (b"[1, 2]", 400, "not an object"),
    "both formats": (json.dumps({"instances": [1], "inputs": [1]}).encode(), 400,
                     "exactly one of"),
    "neither format": (b"{}", 400, "exactly one of"),
    "no instances": (b'{"instances": []}', 400, "non-empty list"),
    "wrong shape": (json.dumps({"instances": [[[0.5] * 27] * 28]}).encode(), 400, "dimensions"),
    "wrong size": (json.dumps({"instances": [[[[0.5]] * 27] * 28]}).encode(), 400,
                   "takes [28, 28, 1]"),
    "not numbers": (json.dumps({"instances": [[["a"]]]}).encode(), 400, "not a rectangular"),
    "ragged": (json.dumps({"instances": [[[1], [1, 2]]]}).encode(), 400, "not a rectangular"),
    "bad base64": (json.dumps({"instances": [{"b64": "***"}]}).encode(), 400, "base64"),
    "b64 of text": (json.dumps({"instances": [b64(b"hello, world")]}).encode(), 400,
                    "To fix this"),
    "unknown signature": (json.dumps({"signature_name": "x", "instances": [1]}).encode(), 400,
                          "signature_name"),
    "unknown input": (json.dumps({"instances": [{"pixels": 1}]}).encode(), 400, "input name"),
    "too many": (json.dumps({"instances": [b64(b"x")] * 300}).encode(), 400, "at most 256"),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_bodies_get_tf_servings_error_shape_and_a_4xx(client, config, name):
    body, status, message = BAD_BODIES[name]
    predictions = rows(config, "SELECT COUNT(*) FROM predictions")
    reply = client.post(f"{MODEL}:predict", content=body,
                        headers={"X-Request-ID": f"bad-{name.replace(' ', '-')}"})
    assert reply.status_code == status
    assert list(reply.json()) == ["error"]
    assert message in reply.json()["error"] and "To fix this" in reply.json()["error"]
    assert rows(config, "SELECT COUNT(*) FROM predictions") == predictions
    assert rows(config, "SELECT status, error_kind, client FROM request_failures WHERE "
                        "request_id = ?", (reply.headers["x-request-id"],)) == [
        (status, "invalid_input", "anonymous")]


@pytest.mark.parametrize("path, message", [
    ("/v1/models/other:predict", "no model 'other'"),
    (f"{MODEL}/versions/9:predict", "9"),
    (f"{MODEL}/versions/abc:predict", "abc"),
    (f"{MODEL}/labels/stable:predict", "unknown version label"),
])
def test_unknown_models_versions_and_labels_are_404(client, path, message):
    reply = client.post(path, json={"instances": [b64(png(IMAGES[0]))]})
    assert reply.status_code == 404 and message in reply.json()["error"]


def test_unknown_endpoints_answer_in_the_same_shape(client):
    reply = client.post(f"{MODEL}:classify", json={})
    assert reply.status_code in (404, 405) and "/docs" in reply.json()["error"]
    assert client.get("/docs").status_code == 200
    assert "/v1/models/{name}:predict" in client.get("/openapi.json").json()["paths"]


def test_plain_predict_without_a_file_is_400(client):
    reply = client.post("/v1/predict", json={"file": "x"})
    assert reply.status_code == 400 and "field 'file'" in reply.json()["error"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_keys_authenticate_and_revoked_keys_stop_working(config, client, session):
    backends = backends_of(config)
    key, secret = create_key(backends, actor="ada", name="scanner", role="viewer",
                             rate_limit=None, now=FIXED_NOW)
    session.refresh()
    body = {"instances": [b64(png(IMAGES[1]))]}
    ok = client.post(f"{MODEL}:predict", json=body, headers={
        "Authorization": f"Bearer {secret}", "X-Request-ID": "keyed-1"})
    assert ok.status_code == 200
    assert rows(config, "SELECT client FROM predictions WHERE request_id = 'keyed-1'") == [
        ("scanner",)]
    # Only the hash is stored.
    assert secret not in str(rows(config, "SELECT * FROM api_keys"))
    wrong = client.post(f"{MODEL}:predict", json=body,
                        headers={"Authorization": "Bearer cmk_not-a-key"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]
    assert wrong.headers["www-authenticate"] == "Bearer"
    basic = client.post(f"{MODEL}:predict", json=body, headers={"Authorization": "Basic eA=="})
    assert basic.status_code == 401 and "Bearer" in basic.json()["error"]
    revoke_key(backends, actor="ada", name="scanner", reason="rotated", now=FIXED_NOW)
    session.refresh()
    revoked = client.post(f"{MODEL}:predict", json=body,
                          headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401
    actions = [(e.action, e.target) for e in backends.audit_log.read_entries("classifier")]
    assert ("create_key", "key scanner") in actions and ("revoke_key", "key scanner") in actions


def test_keys_need_an_admin(config):
    from core.errors import ActionRefused

    with pytest.raises(ActionRefused, match="manage_users"):
        create_key(backends_of(config), actor="rita", name="mine", role="admin",
                   rate_limit=None, now=FIXED_NOW)


def test_anonymous_role_none_makes_keys_mandatory(config):
    strict = config.with_overrides(anonymous_role="none")
    backends = backends_of(strict)
    _, secret = create_key(backends, actor="ada", name="strict-client", role="viewer",
                           rate_limit=None, now=FIXED_NOW)
    audit_entries = len(backends.audit_log.read_entries())
    with TestClient(create_app(strict)) as client:
        body = {"instances": [b64(png(IMAGES[2]))]}
        refused = client.post(f"{MODEL}:predict", json=body)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
        assert client.get(MODEL).status_code == 401
        keyed = client.post(f"{MODEL}:predict", json=body,
                            headers={"Authorization": f"Bearer {secret}"})
        assert keyed.status_code == 200
    # Keyless requests do not write to the audit log (a flood must not flood it).
    assert len(backends.audit_log.read_entries()) == audit_entries


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(config, client, session):
    _, secret = create_key(backends_of(config), actor="ada", name="slow-client", role="viewer",
                           rate_limit=0.5, now=FIXED_NOW)
    session.refresh()
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"instances": [b64(png(IMAGES[1]))]}
    assert client.post(f"{MODEL}:predict", json=body, headers=headers).status_code == 200
    limited = client.post(f"{MODEL}:predict", json=body, headers=headers)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]
    assert rows(config, "SELECT error_kind, client FROM request_failures WHERE request_id = ?",
                (limited.headers["x-request-id"],)) == [("rate_limited", "slow-client")]


def test_a_body_over_the_limit_gets_413_before_it_is_read(config):
    small = config.with_overrides(max_upload_bytes=3000)
    with TestClient(create_app(small)) as client:
        big = json.dumps({"instances": [b64(bytes(100_000))]}).encode()
        reply = client.post(f"{MODEL}:predict", content=big)
        assert reply.status_code == 413 and "MAX_UPLOAD_BYTES" in reply.json()["error"]

        def chunks():  # no Content-Length: the limit is counted as the body streams in
            for start in range(0, len(big), 1000):
                yield big[start:start + 1000]

        streamed = client.post(f"{MODEL}:predict", content=chunks())
        assert streamed.status_code == 413
        upload = client.post("/v1/predict", files={"file": ("x.png", bytes(100_000))})
        assert upload.status_code == 413
        assert client.get("/healthz").status_code == 200


def test_shadow_logs_both_predictions_paired_and_answers_with_the_champion(
        config, client, session):
    backends = backends_of(config)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="see v2 on real traffic", now=FIXED_NOW)
    session.refresh()
    try:
        reply = client.post(f"{MODEL}:predict", json={"instances": [b64(png(IMAGES[4]))]},
                            headers={"X-Request-ID": "shadowed-1"})
        direct = client.post(f"{MODEL}/versions/1:predict",
                             json={"instances": [b64(png(IMAGES[4]))]})
        assert reply.json() == direct.json()  # the answer is the champion's
        assert rows(config, "SELECT version, variant FROM predictions WHERE request_id = "
                            "'shadowed-1' ORDER BY version") == [(1, "champion"), (2, "shadow")]
    finally:
        set_traffic(backends, actor="rita", mode="off", candidate=None, percent=None,
                    reason="done", now=FIXED_NOW)
        session.refresh()


def test_a_shadowed_request_pairs_each_instance_with_itself_whatever_the_client_id(
        config, client, session):
    backends = backends_of(config)
    log = backends.prediction_log
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="pairs by instance", now=FIXED_NOW)
    session.refresh()
    images, _ = fashion_test_images(15)
    try:
        before = len(log.shadow_pairs("classifier", 1, 2))
        headers = {"X-Request-ID": "chosen-by-the-client"}
        many = client.post(f"{MODEL}:predict", headers=headers,
                           json={"instances": [b64(png(image)) for image in images]})
        # The same client id again: another request, paired on its own.
        one = client.post(f"{MODEL}:predict", headers=headers,
                          json={"instances": [b64(png(images[0]))]})
        assert many.status_code == one.status_code == 200
        pairs = log.shadow_pairs("classifier", 1, 2)[before:]
    finally:
        set_traffic(backends, actor="rita", mode="off", candidate=None, percent=None,
                    reason="done", now=FIXED_NOW)
        session.refresh()
    assert len(pairs) == 16  # 15 + 1 instances, not 15 x 15 + ...
    champion_rows, shadow_rows = log.images("classifier", [int(r[0]) for r in pairs]), \
        log.images("classifier", [int(r[1]) for r in pairs])
    assert [png for png, _ in champion_rows] == [png for png, _ in shadow_rows]
    assert len({int(r[0]) for r in pairs}) == 16  # each champion row in one pair only
    # The client's id is kept, as the client's; the two requests stay two.
    assert rows(config, "SELECT COUNT(*), COUNT(DISTINCT server_request_id) FROM predictions "
                        "WHERE request_id = 'chosen-by-the-client'") == [(32, 2)]


def test_canary_answers_its_share_deterministically_per_request_id(config, client, session):
    backends = backends_of(config)
    set_traffic(backends, actor="rex", mode="canary", candidate=2, percent=30,
                reason="try v2 on 30%", now=FIXED_NOW)
    session.refresh()
    body = {"instances": [b64(png(IMAGES[5]))]}
    try:
        ids = [f"canary-{i}" for i in range(40)]
        versions = {i: client.post(f"{MODEL}:predict", json=body,
                                   headers={"X-Request-ID": i}).headers for i in ids}
        logged = dict(rows(config, "SELECT request_id, version FROM predictions WHERE "
                                   "request_id LIKE 'canary-%'"))
        assert {i: logged[i] for i in ids} == {i: 2 if in_canary(i, 30) else 1 for i in ids}
        assert 0 < sum(v == 2 for v in logged.values()) < 40
        again = client.post(f"{MODEL}:predict", json=body, headers={"X-Request-ID": ids[0]})
        assert again.status_code == 200 and versions[ids[0]]["x-request-id"] == ids[0]
        variants = dict(rows(config, "SELECT version, variant FROM predictions WHERE "
                                     "request_id LIKE 'canary-%' GROUP BY version"))
        assert variants == {1: "champion", 2: "canary"}
    finally:
        set_traffic(backends, actor="rex", mode="off", candidate=None, percent=None,
                    reason="done", now=FIXED_NOW)
        session.refresh()


def test_traffic_over_time_counts_requests_errors_and_latency(config, client):
    from datetime import UTC, datetime

    client.post(f"{MODEL}:predict", json={"instances": [b64(png(IMAGES[0]))]})
    client.post(f"{MODEL}:predict", content=b"nonsense")
    buckets = traffic_over_time(backends_of(config), actor="vic", now=datetime.now(UTC))
    answered = [b for b in buckets if b.variant == "champion"]
    failed = [b for b in buckets if b.version is None]
    assert answered and answered[-1].requests >= 1 and answered[-1].p99_ms > 0
    assert failed and failed[-1].errors == failed[-1].requests >= 1
    assert failed[-1].error_rate == 1.0


def test_metrics_can_require_a_bearer_token(trained_registry, tmp_path):
    token = "m3trics-" + "x" * 24
    with api_on_a_copy(trained_registry, tmp_path, metrics_token=token) as (_, client, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401 and "METRICS_TOKEN" in refused.json()["error"]
            assert refused.headers["WWW-Authenticate"] == "Bearer"
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "vision_requests" in allowed.text
        assert client.get("/healthz").status_code == 200  # probes need no token


def test_metrics_parse_with_prometheus_parser(client):
    reply = client.post(f"{MODEL}:predict", json={"instances": [b64(png(IMAGES[6]))]})
    answered = FASHION_MNIST_CLASSES[int(np.argmax(reply.json()["predictions"][0][
        "probabilities"]))]
    client.post(f"{MODEL}:predict", content=b"[]")
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = families["vision_requests"]
    assert requests.type == "counter"
    statuses = {(s.labels["variant"], s.labels["status"]) for s in requests.samples
                if s.name == "vision_requests_total"}
    assert ("champion", "200") in statuses and ("", "400") in statuses
    assert families["vision_request_duration_seconds"].type == "histogram"
    # The answer is counted under its class name (the process's other APIs, in other
    # tests, count theirs: metrics are per process).
    counted = {(s.labels["model"], s.labels["class_name"])
               for s in families["vision_predictions"].samples}
    assert ("classifier", answered) in counted
    assert any(s.value > 0 for s in families["vision_model_load_duration_seconds"].samples
               if s.name.endswith("_count"))
    assert any(s.value > 0 for s in families["vision_log_batch_rows"].samples
               if s.name.endswith("_count"))
    assert "vision_log_commit_duration_seconds" in families
