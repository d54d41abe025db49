"""The dashboard in headless Chromium: cold start to first prediction, memory after 100."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.timing import Row
from core.config import PROJECT_ROOT, Config

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_dashboard(config: Config, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MODEL_REGISTRY_DIR": str(config.registry_dir),
             "MODEL_NAME": config.model_name})


def rss_bytes(process: subprocess.Popen) -> int:
    import psutil

    root = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def dashboard_rows(config: Config, images: list[Path], quick: bool) -> list[Row]:
    from playwright.sync_api import sync_playwright

    from core.lifecycle import open_prediction_log

    port = free_port()
    log = open_prediction_log(config)
    logged_before = log.count(config.model_name)
    started = time.perf_counter()
    server = start_dashboard(config, port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            deadline = time.monotonic() + 60
            while True:  # the server takes a few seconds to listen
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            page.wait_for_selector("text=Upload an image", timeout=60000)
            page.set_input_files("input[type=file]", str(images[0]))
            page.wait_for_selector("text=Answered by version", timeout=60000)
            cold_start = time.perf_counter() - started
            count = 20 if quick else 100
            for index in range(1, count):
                page.set_input_files("input[type=file]", str(images[index % len(images)]))
                # Each upload logs one row: wait for it rather than for the DOM.
                deadline = time.monotonic() + 30
                while log.count(config.model_name) < logged_before + index + 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"prediction {index + 1} never arrived")
                    time.sleep(0.05)
            memory = rss_bytes(server)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    predictions = log.count(config.model_name) - logged_before
    return [
        Row("dashboard cold start to first prediction visible (headless Chromium)",
            cold_start, "s", "—", None, None, "≤ 15 s", cold_start <= 15,
            "from launching `streamlit run` to the answer on screen"),
        Row(f"dashboard server memory (RSS) after {predictions} predictions",
            memory / 1e9, "GB", "—", None, None, "≤ 1.5 GB", memory <= 1.5e9,
            f"{predictions} predictions logged for {count} uploads"),
    ]
