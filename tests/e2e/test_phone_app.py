"""The phone app in Debian's Chromium (real service worker, IndexedDB and WebAssembly)
against the API served by uvicorn: enrol online, answer offline on the device, start
again offline from the cache, sync into the prediction log exactly once, agree with the
server's TFLite answers, follow a promotion, and keep its queue when its key is refused.

One module-scoped server and browser; the tests run in file order (each builds on the
queue and the registry the previous one left)."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from core.app import create_key, decide_version, revoke_key
from tests import browser as browser_tools
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images
from tests.e2e.conftest import SCREENSHOTS
from tests.serving.clients import api_on_a_copy, b64, listening, png, rows

MODEL = "classifier"
AGREEMENT_IMAGES = 500
OFFLINE_IMAGES = 20


@pytest.fixture(scope="module")
def app_server(candidate_registry, tmp_path_factory):
    """A copy of the candidate registry (v1 champion, v2 candidate) behind uvicorn, with a
    device key: (config, client, base URL, secret)."""
    folder = tmp_path_factory.mktemp("phone")
    with api_on_a_copy(candidate_registry, folder, refresh_seconds=0.5) as (
            config, client, session), listening(client.app) as address:
        _, secret = create_key(backends_of(config), actor="ada", name="farm-phone",
                               role="device", rate_limit=None, now=FIXED_NOW)
        session.refresh()
        yield config, client, f"http://{address}", secret


@pytest.fixture(scope="module")
def phone_context(chromium):
    context = chromium.new_context(**browser_tools.PHONE)
    yield context
    context.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    images, _ = fashion_test_images(OFFLINE_IMAGES)
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"photo-{i}.png")
        paths[-1].write_bytes(png(image))
    return paths


def open_app(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    return page


def photograph(page, path) -> dict:
    """Chooses a photo; waits for its answer: {label, version, where}."""
    page.evaluate("document.getElementById('answer-where').textContent = ''")
    page.set_input_files("[data-testid=photo-input]", str(path))
    page.wait_for_function(
        "document.querySelector('[data-testid=answer-where]').textContent !== ''",
        timeout=30_000)
    return {name: page.text_content(f"[data-testid=answer-{name}]")
            for name in ("label", "version", "where")}


def pending(page) -> int:
    return int(page.text_content("[data-testid=pending-count]"))


def test_offline_answers_are_the_devices_and_wait_in_the_queue(app_server, phone_context,
                                                               files):
    config, client, base, secret = app_server
    page = open_app(phone_context, f"{base}/app/#key={secret}")
    assert "#key" not in page.url  # the key leaves the address bar once kept
    assert "enrolled" in page.text_content("[data-testid=enrolment]")
    online = photograph(page, files[0])
    assert online["where"] == "server" and online["version"] == "1"
    phone_context.set_offline(True)
    started = time.perf_counter()
    answers = [photograph(page, path) for path in files]
    seconds = (time.perf_counter() - started) / len(files)
    assert {a["where"] for a in answers} == {"device"} and {a["version"] for a in answers} == {"1"}
    assert pending(page) == OFFLINE_IMAGES
    print(f"offline photo to answer: {seconds * 1000:.0f} ms each")
    page.screenshot(path=SCREENSHOTS / "phone-app-offline-phone.png")
    page.close()


def test_the_app_starts_offline_from_its_cache(app_server, phone_context, files):
    config, client, base, secret = app_server
    page = open_app(phone_context, f"{base}/app/")
    # The service worker is offline too: a file it never cached cannot be fetched.
    assert page.evaluate("fetch('/app/never-cached.js').then(() => 'fetched', () => 'failed')"
                         ) == "failed"
    again = photograph(page, files[1])
    assert again["where"] == "device" and pending(page) == OFFLINE_IMAGES + 1
    page.close()
    hindi = open_app(phone_context, f"{base}/app/?lang=hi")  # from the cache too
    assert hindi.evaluate("document.documentElement.lang") == "hi"
    assert hindi.text_content("[data-text=take_photo]") == "फ़ोटो लें या चुनें"
    hindi.close()


def test_back_online_the_queue_is_logged_once(app_server, phone_context):
    config, client, base, secret = app_server
    page = open_app(phone_context, f"{base}/app/")
    synced_bodies = []
    page.on("request", lambda r: synced_bodies.append(r.post_data)
            if r.url.endswith("/v1/predictions:sync") else None)
    phone_context.set_offline(False)
    page.wait_for_function(
        "document.querySelector('[data-testid=pending-count]').textContent === '0'",
        timeout=10_000)
    logged = rows(config, "SELECT request_id, version, client FROM predictions WHERE "
                          "source = 'device'")
    assert len(logged) == OFFLINE_IMAGES + 1 == len({r[0] for r in logged})
    assert {r[1:] for r in logged} == {(1, "farm-phone")}
    # A retried sync (the same batch again, as after a lost reply) adds nothing.
    replay = client.post("/v1/predictions:sync", content=synced_bodies[0],
                         headers={"Authorization": f"Bearer {secret}",
                                  "Content-Type": "application/json"}).json()
    assert replay["stored"] == 0 and replay["already_stored"] == len(
        json.loads(synced_bodies[0])["predictions"])
    assert len(rows(config, "SELECT 1 FROM predictions WHERE source = 'device'")) == len(logged)
    page.close()


def test_device_answers_agree_with_the_servers(app_server, phone_context):
    config, client, base, secret = app_server
    images, _ = fashion_test_images(AGREEMENT_IMAGES)
    files = [png(image) for image in images]
    server = []
    for start in range(0, len(files), 100):
        reply = client.post(f"/v1/models/{MODEL}/versions/1:predict",
                            json={"instances": [b64(f) for f in files[start:start + 100]]})
        server += [int(np.argmax(p["probabilities"])) for p in reply.json()["predictions"]]
    page = open_app(phone_context, f"{base}/app/")
    device = page.evaluate("async files => { const out = []; for (const f of files) "
                           "out.push(await window.visionApp.deviceTopClass(f)); return out; }",
                           [base64.b64encode(f).decode() for f in files])
    agreement = float(np.mean(np.array(device) == np.array(server)))
    print(f"device and server agree on {agreement:.1%} of {AGREEMENT_IMAGES} test images")
    assert agreement >= 0.99
    page.close()


def test_a_promotion_reaches_the_app(app_server, phone_context, files):
    config, client, base, secret = app_server
    decide_version(backends_of(config), "promote", 2, actor="rita", reason="phone test",
                   now=FIXED_NOW, override_gate=True)
    deadline = time.monotonic() + 10
    while client.app.state.session.model(MODEL).champion.version != 2:
        assert time.monotonic() < deadline, "the server did not follow the promotion"
        time.sleep(0.1)
    # v1's file is no longer handed out: only the champion's weights are (exports are
    # operators' and audited).
    refused = client.get(f"/v1/models/{MODEL}/versions/1/device.tflite",
                         headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 404 and "champion" in refused.json()["error"]
    page = open_app(phone_context, f"{base}/app/")  # online: it checks the champion
    page.wait_for_function("document.querySelector('[data-testid=device-model]')"
                           ".textContent.includes('v2')", timeout=20_000)
    phone_context.set_offline(True)
    answer = photograph(page, files[2])
    assert answer == answer | {"where": "device", "version": "2"}
    phone_context.set_offline(False)
    page.wait_for_function(
        "document.querySelector('[data-testid=pending-count]').textContent === '0'",
        timeout=10_000)
    page.close()


def test_a_revoked_key_syncs_nothing_and_the_queue_keeps_its_rows(app_server, phone_context,
                                                                  files):
    config, client, base, secret = app_server
    revoke_key(backends_of(config), actor="ada", name="farm-phone", reason="phone lost",
               now=FIXED_NOW)
    client.app.state.session.refresh()
    page = open_app(phone_context, f"{base}/app/")
    phone_context.set_offline(True)
    photograph(page, files[3])
    photograph(page, files[4])
    phone_context.set_offline(False)
    before = len(rows(config, "SELECT 1 FROM predictions WHERE source = 'device'"))
    page.click("[data-testid=sync-now]")
    page.wait_for_function("document.querySelector('[data-testid=sync-status]')"
                           ".textContent.includes('401')", timeout=10_000)
    assert pending(page) == 2
    assert len(rows(config, "SELECT 1 FROM predictions WHERE source = 'device'")) == before
    # A wrong key (another enrolment link mistyped) is refused the same way.
    page.goto(f"{base}/app/?lang=en#key=cmk_wrong")
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    page.click("[data-testid=sync-now]")
    page.wait_for_function("document.querySelector('[data-testid=sync-status]')"
                           ".textContent.includes('401')", timeout=10_000)
    assert pending(page) == 2
    page.close()
