"""The phone app in headless Chromium (``python -m bench --only phone``): on-device inference
per image for both model sizes against the server's runtime on the same file, what the
phone downloads, offline photo to answer, sync throughput, and how often the device's
answer (float, then int8 once the exports are built) agrees with the server's.

The API runs in this process (uvicorn on a free port); the app is the real one, with its
service worker, IndexedDB and LiteRT.js."""

from __future__ import annotations

import base64
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.suite import Context, _test_images, now
from bench.timing import Row, measure
from core.app import build_backends, build_exports, create_key
from core.ml.images import decode_image, encode_png
from core.serving.api import create_app
from core.serving.routers.device import STATIC

SHELL = ("index.html", "app.js", "pillow.js", "sw.js", "manifest.webmanifest", "icon.svg",
         "icon-192.png", "icon-512.png", "vendor/litertjs-core/index.js",
         "vendor/litertjs-wasm-utils/index.js")
WASM = ("vendor/litertjs-core/litert_wasm_internal.js",
        "vendor/litertjs-core/litert_wasm_internal.wasm")
AGREEMENT_IMAGES = 500
OFFLINE_PHOTOS = 20
SYNC_ROWS = 100
# In the page: each image file's top class on the device, and the milliseconds it took
# (decode, Pillow's preprocessing, LiteRT.js).
DEVICE_RUN = """async files => {
  const out = [];
  for (const f of files) {
    const started = performance.now();
    const top = await window.visionApp.deviceTopClass(f);
    out.push([top, performance.now() - started]);
  }
  return out;
}"""


@contextmanager
def _served(context: Context) -> Iterator[tuple[str, str]]:
    """The API on the row's registry behind uvicorn, and a device key: (URL, secret)."""
    from fastapi.testclient import TestClient

    from tests.serving.clients import listening

    _, secret = create_key(build_backends(context.config), actor="bench", name=f"phone-{time.time_ns()}",
                           role="device", rate_limit=None, now=now())
    app = create_app(context.config)
    with TestClient(app), listening(app) as address:
        yield f"http://{address}", secret


def _open(browser, url: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    return context, page


def _device(page, files: list[bytes]) -> tuple[list[int], list[float]]:
    done = page.evaluate(DEVICE_RUN, [base64.b64encode(f).decode() for f in files])
    return [int(top) for top, _ in done], [ms for _, ms in done]


def _server(context: Context, model: str, files: list[bytes]) -> tuple[list[int], float]:
    """The server's top classes for the same files, and its median ms per image (decode,
    preprocess, LiteRT in Python: one image at a time, as the phone does)."""
    backends = build_backends(context.config.with_overrides(model_name=model))
    predictor = backends.models.predictor(backends.registry.get_champion())

    def one(data: bytes):
        return predictor.predict_decoded(decode_image(data, max_bytes=1 << 24,
                                                      max_pixels=1 << 24), time.perf_counter())

    tops = [one(f).class_index for f in files]
    timing = measure(lambda: one(files[0]), repeats=context.repeats)
    return tops, timing.median * 1000


def _inference_rows(label: str, model: str, page, context: Context, files: list[bytes],
                    meta: dict) -> list[Row]:
    device_tops, device_ms = _device(page, files)
    _, warm = _device(page, files[:1] * 20)
    server_tops, server_ms = _server(context, model, files)
    agreement = float(np.mean(np.array(device_tops) == np.array(server_tops)))
    per_image = statistics.median(warm)
    kind = meta["file"]["kind"]
    return [
        Row(f"phone app, {label} ({kind}): on-device answer per image in headless Chromium "
            "(decode, preprocess, LiteRT.js)", per_image, "ms",
            "the server's LiteRT (Python, one image)", server_ms, server_ms / per_image,
            "informational", True, f"{len(files)} images, median of 20 warm runs; first "
            f"pass median {statistics.median(device_ms):.1f} ms"),
        Row(f"phone app, {label} ({kind}): device top class = server's", agreement * 100, "%",
            "", None, None, "≥ 99 % for the float model" if kind == "float" else "stated",
            agreement >= 0.99 or kind != "float", f"{len(files)} images"),
        Row(f"phone app, {label} ({kind}): model download", meta["file"]["bytes"] / 2**20,
            "MiB", "", None, None, "informational", True),
    ]


def _shell_row() -> Row:
    shell = sum((STATIC / name).stat().st_size for name in SHELL)
    wasm = sum((STATIC / name).stat().st_size for name in WASM)
    return Row("phone app: shell download (HTML, JS, icons, LiteRT.js) + its WebAssembly "
               "build, once", (shell + wasm) / 2**20, "MiB", "", None, None,
               "informational", True, f"shell {shell / 1024:.0f} KiB, WebAssembly "
               f"{wasm / 2**20:.1f} MiB (the browser fetches one of two builds)")


def _offline_rows(browser, url: str, secret: str, photos: list[Path]) -> list[Row]:
    """Photo chosen to answer shown, online (server) and offline (device); then the
    queue's sync once the network is back."""
    context, page = _open(browser, f"{url}/app/#key={secret}")

    def answer_ms(path: Path) -> float:
        page.evaluate("document.getElementById('answer-where').textContent = ''")
        started = time.perf_counter()
        page.set_input_files("[data-testid=photo-input]", str(path))
        page.wait_for_function("document.getElementById('answer-where').textContent !== ''")
        return (time.perf_counter() - started) * 1000

    online = statistics.median(answer_ms(p) for p in photos)
    context.set_offline(True)
    offline = statistics.median(answer_ms(p) for p in photos)
    for i in range(SYNC_ROWS - len(photos)):
        answer_ms(photos[i % len(photos)])
    started = time.perf_counter()
    context.set_offline(False)
    page.wait_for_function("document.querySelector('[data-testid=pending-count]')"
                           ".textContent === '0'", timeout=120_000)
    synced = SYNC_ROWS / (time.perf_counter() - started)
    context.close()
    return [
        Row("phone app, 28x28 CNN: photo chosen to answer shown, offline (on the device)",
            offline, "ms", "online (the server answers)", online, online / offline,
            "informational", True, f"median of {len(photos)} photos, through Playwright"),
        Row("phone app: sync of queued answers once back online (batches of 20, each "
            "stored once, committed)", synced, "rows/s", "", None, None, "informational",
            True, f"{SYNC_ROWS} rows, from the 'online' event to an empty queue"),
    ]


def phone_rows(context: Context) -> list[Row]:
    from playwright.sync_api import sync_playwright

    from bench.folder_training import make_photos
    from bench.own_model import MODEL, mobilenet, register_own
    from tests.browser import launch_chromium

    work = Path(tempfile.mkdtemp(prefix="bench-phone-"))
    try:
        images, _ = _test_images(context, 200 if context.quick else AGREEMENT_IMAGES)
        small_files = [encode_png(image) for image in images]
        photos = make_photos(work / "photos", 30)
        mobilenet(work / "mobilenet_v2.keras")
        register_own(context, work / "mobilenet_v2.keras", photos)
        big_files = [p.read_bytes() for p in sorted(photos.rglob("*.jpg"))]
        photo_paths = []
        for i, data in enumerate(small_files[:OFFLINE_PHOTOS]):
            photo_paths.append(work / f"photo-{i}.png")
            photo_paths[-1].write_bytes(data)
        rows = [_shell_row()]
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            with _served(context) as (url, secret):
                for label, model, files in (("28x28 CNN", context.config.model_name,
                                             small_files),
                                            ("224x224 MobileNetV2", MODEL, big_files)):
                    browser_context, page = _open(browser, f"{url}/app/?model={model}#key={secret}")
                    meta = page.evaluate(f"fetch('/v1/models/{model}/device', {{headers: "
                                         f"{{Authorization: 'Bearer {secret}'}}}}).then(r => r.json())")
                    rows += _inference_rows(label, model, page, context, files, meta)
                    browser_context.close()
                rows += _offline_rows(browser, url, secret, photo_paths)
            # The int8 export, where its accuracy holds, is what phones get once built.
            backends = build_backends(context.config)
            build_exports(backends, backends.registry.get_champion().version, actor="bench",
                          now=now())
            with _served(context) as (url, secret):
                browser_context, page = _open(browser, f"{url}/app/#key={secret}")
                meta = page.evaluate(f"fetch('/v1/device', {{headers: {{Authorization: "
                                     f"'Bearer {secret}'}}}}).then(r => r.json())")
                if meta["file"]["kind"] == "int8":
                    rows += _inference_rows("28x28 CNN", context.config.model_name, page,
                                            context, small_files, meta)
                browser_context.close()
            browser.close()
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
