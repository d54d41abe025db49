"""The phone app's server side, over HTTP: the device model a phone downloads (its file
answers as the server does), ``POST /v1/predictions:sync`` (stored once per device and id,
as source ``device``, authorized by a device key only), and every bad row or body
refused with the fix and nothing stored. The app itself: tests/e2e/test_phone_app.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from core.app import create_key, device_traffic, revoke_key
from tests.cli_runner import run_cli_process
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images
from tests.serving.clients import api_on_a_copy, b64, png, rows

IMAGES, LABELS = fashion_test_images(8)
MODEL = "classifier"


@pytest.fixture(scope="module")
def served(trained_registry, tmp_path_factory):
    """The trained registry's copy behind the API, with a device key and a viewer key:
    (config, client, {role: secret})."""
    with api_on_a_copy(trained_registry, tmp_path_factory.mktemp("device"),
                       refresh_seconds=0.2) as (config, client, session):
        backends = backends_of(config)
        secrets = {role: create_key(backends, actor="ada", name=f"{role}-1", role=role,
                                    rate_limit=None, now=FIXED_NOW)[1]
                   for role in ("device", "viewer")}
        session.refresh()
        yield config, client, secrets


def auth(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def answer(i: int, **changes) -> dict:
    """A device's answer to test image ``i`` (made-up probabilities for its true class)."""
    probabilities = np.full(10, 0.02)
    probabilities[LABELS[i]] = 0.82
    return {"id": str(uuid.uuid4()), "at": datetime.now(UTC).isoformat(),
            "model": MODEL, "version": 1, "probabilities": probabilities.tolist(),
            "latency_ms": 3.5, "image": b64(png(IMAGES[i])), "size": [640, 480]} | changes


def test_the_device_file_answers_as_the_server_does(served):
    config, client, secrets = served
    meta = client.get("/v1/device", headers=auth(secrets["device"])).json()
    assert meta["version"] == 1 and meta["file"]["kind"] == "float"  # no int8 export yet
    assert meta["input"] | {} == {"height": 28, "width": 28, "channels": 1, "range": [0, 1],
                                  "resize": "bilinear", "gray": "luma601"}
    assert client.get(f"/v1/models/{MODEL}/device").json() == meta  # anonymous viewers too
    reply = client.get(meta["file"]["url"], headers=auth(secrets["device"]))
    assert reply.status_code == 200 and "immutable" in reply.headers["cache-control"]
    assert len(reply.content) == meta["file"]["bytes"]
    # Batch 1, fixed (what LiteRT.js needs); the same answers as the server's.
    interpreter = Interpreter(model_content=reply.content)
    runner = interpreter.get_signature_runner()
    assert list(runner.get_input_details()["image"]["shape_signature"]) == [1, 28, 28, 1]
    server = client.post(f"/v1/models/{MODEL}:predict",
                         json={"instances": [b64(png(i)) for i in IMAGES]}).json()
    for image, theirs in zip(IMAGES, server["predictions"]):
        ours = runner(image=image[None].astype(np.float32) / 255)["probabilities"][0]
        np.testing.assert_allclose(ours, theirs["probabilities"], atol=1e-5)


def test_a_sync_stores_each_answer_once_as_the_devices(served):
    config, client, secrets = served
    batch = [answer(i) for i in range(5)]
    first = client.post("/v1/predictions:sync", json={"predictions": batch},
                        headers=auth(secrets["device"])).json()
    assert first["stored"] == 5 and sorted(first["acknowledged"]) == sorted(
        a["id"] for a in batch)
    # A retried batch (the reply was lost) adds nothing, and is acknowledged again.
    again = client.post("/v1/predictions:sync", json={"predictions": batch + [answer(5)]},
                        headers=auth(secrets["device"])).json()
    assert again["stored"] == 1 and again["already_stored"] == 5
    logged = rows(config, "SELECT request_id, source, client, version, predicted, width, "
                          "ood_score, latency_ms FROM predictions WHERE source = 'device'")
    assert len(logged) == 6 and len({row[0] for row in logged}) == 6
    assert {row[1:4] for row in logged} == {("device", "device-1", 1)}
    assert {row[4] for row in logged} == {int(LABELS[i]) for i in range(6)}  # the device's
    assert all(row[5] == 640 and row[6] is not None and row[7] == 3.5 for row in logged)
    # The server ran the same version on the same images: the answers it does not agree
    # with (made up here, where the model errs) are counted, and still stored as given.
    server = client.post(f"/v1/models/{MODEL}:predict",
                         json={"instances": [b64(png(i)) for i in IMAGES[:6]]}).json()
    its_own = [int(np.argmax(p["probabilities"])) for p in server["predictions"]]
    assert first["disagreed"] + again["disagreed"] == sum(
        its_own[i] != LABELS[i] for i in range(6))
    # Like any traffic for the drift statistics; counted apart from API requests.
    backends = backends_of(config)
    assert len(backends.prediction_log.window(MODEL, 1, sources=["device"])) == 6
    (phones,) = device_traffic(backends, actor="vic", now=datetime.now(UTC))
    assert (phones.version, phones.predictions) == (1, 6)


def test_only_a_device_key_may_sync_and_it_may_not_look_around(served):
    config, client, secrets = served
    batch = {"predictions": [answer(6)]}
    assert client.post("/v1/predictions:sync", json=batch).status_code == 401
    refused = client.post("/v1/predictions:sync", json=batch, headers=auth(secrets["viewer"]))
    assert refused.status_code == 403 and "device" in refused.json()["error"]
    assert client.get("/v1/models", headers=auth(secrets["device"])).status_code == 403
    wrong = client.post("/v1/predictions:sync", json=batch, headers=auth("cmk_not-a-key"))
    assert wrong.status_code == 401
    assert not rows(config, "SELECT 1 FROM predictions WHERE request_id = ?",
                    batch["predictions"][0]["id"])


def test_bad_rows_are_rejected_alone_with_the_fix(served):
    config, client, secrets = served
    now = datetime.now(UTC)
    good = answer(7)
    bad = {
        "short id": answer(1, id="x"),
        "future": answer(1, at=(now + timedelta(hours=2)).isoformat()),
        "no zone": answer(1, at=now.replace(tzinfo=None).isoformat()),
        "version": answer(1, version=99),
        "probabilities": answer(1, probabilities=[0.5] * 10),
        "size": answer(1, image=b64(png(np.zeros((32, 32, 1), np.uint8)))),
        "not an image": answer(1, image=b64(b"<html>")),
    }
    reply = client.post("/v1/predictions:sync", json={"predictions": [good, *bad.values()]},
                        headers=auth(secrets["device"])).json()
    assert reply["acknowledged"] == [good["id"]]
    errors = {r["id"]: r["error"] for r in reply["rejected"]}
    assert len(errors) == len(bad) and all("To fix this" in e for e in errors.values())
    assert "28x28" in errors[bad["size"]["id"]] and "99" in errors[bad["version"]["id"]]
    stored = {row[0] for row in rows(config, "SELECT request_id FROM predictions")}
    assert good["id"] in stored and not stored & {b["id"] for b in bad.values()}


MALFORMED = {
    "not JSON": lambda: b"{",
    "not an object": lambda: b"[]",
    "fields missing": lambda: b'{"predictions": [{"id": "abcdefgh"}]}',
    "too many rows": lambda: json.dumps({"predictions": [answer(0)] * 101}).encode(),
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_body_is_a_400_and_stores_nothing(served, kind):
    config, client, secrets = served
    before = rows(config, "SELECT COUNT(*) FROM predictions")
    reply = client.post("/v1/predictions:sync", content=MALFORMED[kind](),
                        headers=auth(secrets["device"]) | {"Content-Type": "application/json"})
    assert reply.status_code == 400 and "To fix this" in reply.json()["error"]
    assert rows(config, "SELECT COUNT(*) FROM predictions") == before


def test_a_revoked_device_key_syncs_nothing(served):
    config, client, _ = served
    backends = backends_of(config)
    _, secret = create_key(backends, actor="ada", name="lost-phone", role="device",
                           rate_limit=None, now=FIXED_NOW)
    client.app.state.session.refresh()
    batch = {"predictions": [answer(2)]}
    assert client.post("/v1/predictions:sync", json=batch, headers=auth(secret)).status_code == 200
    revoke_key(backends, actor="ada", name="lost-phone", reason="stolen", now=FIXED_NOW)
    client.app.state.session.refresh()
    batch = {"predictions": [answer(3)]}
    assert client.post("/v1/predictions:sync", json=batch, headers=auth(secret)).status_code == 401
    assert not rows(config, "SELECT 1 FROM predictions WHERE request_id = ?",
                    batch["predictions"][0]["id"])


def test_keys_create_prints_the_enrolment_link(registry_copy):
    created = run_cli_process(registry_copy.registry_dir, "keys", "create", "farm-phone",
                              "--role", "device", "--json", "--actor", "ada")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["role"] == "device" and key["enrol_url"] == f"/app/#key={key['key']}"
    person = run_cli_process(registry_copy.registry_dir, "users", "add", "dev", "--role",
                             "device", "--actor", "ada")
    assert person.returncode != 0 and "device" in person.stderr  # a key's role, not a person's


def test_the_device_gets_the_int8_file_where_its_accuracy_holds(exported_registry, tmp_path):
    with api_on_a_copy(exported_registry, tmp_path) as (config, client, session):
        folder = config.registry_dir / MODEL / "1"
        table = {row["format"]: row for row in json.loads(
            (folder / "exports.json").read_text())}
        holds = table["tflite_int8"]["accuracy"] >= table["tflite"]["accuracy"] - 0.01
        meta = client.get("/v1/device").json()
        assert meta["file"]["kind"] == ("int8" if holds else "float")
        file = client.get(meta["file"]["url"]).content
    # float32 in and out whatever the model inside (LiteRT.js has no int8 tensors), and
    # the int8 export's own answers: its quantization moved inside the file.
    assert meta["tensors"]["input"]["dtype"] == "float32"
    device = Interpreter(model_content=file).get_signature_runner()
    assert list(device.get_input_details()["image"]["shape_signature"]) == [1, 28, 28, 1]
    export = Interpreter(model_content=(folder / "model_int8.tflite").read_bytes() if holds
                         else (folder / "model.tflite").read_bytes()).get_signature_runner()
    x = IMAGES.astype(np.float32) / 255
    for image in x:
        ours = device(image=image[None])["probabilities"]
        if holds:
            given, taken = (export.get_input_details()["image"]["quantization"],
                            export.get_output_details()["probabilities"]["quantization"])
            q = np.clip(np.round(image[None] / given[0] + given[1]), -128, 127).astype(np.int8)
            theirs = taken[0] * (export(image=q)["probabilities"].astype(np.float32) - taken[1])
        else:
            theirs = export(image=image[None])["probabilities"]
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
