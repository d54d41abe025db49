"""The dashboard's bench rows: cold start, memory after 100 predictions, page render
times, upload to answer (the browser helpers are the end-to-end tests', tests/browser.py).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.timing import Row
from core.app import build_backends
from core.config import Config
from tests.browser import (
    DESKTOP,
    PAGES,
    launch_chromium,
    open_page,
    rss_bytes,
    running_dashboard,
    upload_and_wait,
)


def dashboard_rows(config: Config, images: list[Path], quick: bool) -> list[Row]:
    from playwright.sync_api import sync_playwright


    log = build_backends(config).prediction_log
    logged_before = log.count(config.model_name)
    started = time.perf_counter()
    with running_dashboard(config) as (url, server), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=DESKTOP)
        open_page(page, url, "predict")
        upload_and_wait(page, images[0])
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
        # Warm server: each page in a fresh session, and upload-to-answer on new images.
        renders = {name: statistics.median(open_page(page, url, name) for _ in range(3))
                   for name in PAGES}
        open_page(page, url, "predict")
        answers = [upload_and_wait(page, images[-1 - i]) for i in range(5)]
        browser.close()
    predictions = log.count(config.model_name) - logged_before
    rows = [
        Row("dashboard cold start to first prediction visible (headless Chromium)",
            cold_start, "s", "—", None, None, "≤ 15 s", cold_start <= 15,
            "from launching `streamlit run` to the answer on screen"),
        Row("dashboard server memory (RSS) after an upload run",
            memory / 1e9, "GB", "—", None, None, "≤ 1.5 GB", memory <= 1.5e9,
            f"{predictions} predictions logged for {count + 5} uploads"),
        Row("upload to prediction visible (warm server, median of 5)",
            statistics.median(answers), "s", "—", None, None, "≤ 2 s",
            statistics.median(answers) <= 2, "file chosen → label, chart and heatmap shown"),
    ]
    for name, seconds in renders.items():
        rows.append(Row(f"page '{name}': time to first render (new session, median of 3)",
                        seconds, "s", "—", None, None, "≤ 5 s", seconds <= 5,
                        "title shown and the page's script finished"))
    return rows
