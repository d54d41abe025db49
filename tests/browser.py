"""The dashboard in headless Chromium: starting it, opening pages, uploading, screenshots.
The end-to-end tests drive it with these; the dashboard benchmark (bench/dashboard.py)
borrows them."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.config import PROJECT_ROOT, Config
from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 # A fake camera that needs no permission prompt (a test pattern).
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
DESKTOP = {"width": 1280, "height": 900}
# An iPhone 12-15 sized screen, as a phone browser reports itself.
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
         "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                       "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 "
                       "Safari/604.1"}
# URL path and title of every page (st.navigation names pages after their files).
PAGES = {"predict": ("", "Predict"), "versions": ("versions", "Versions"),
         "drift": ("drift", "Drift"), "review_queue": ("review_queue", "Review queue"),
         "traffic": ("traffic", "Traffic"),
         "alerts": ("alerts", "Alerts"), "retrain": ("retrain", "Retrain"),
         "governance": ("governance", "Governance")}
TIMEOUT_MS = 90_000


def start_dashboard(config: Config, port: int,
                    settings: dict[str, str] | None = None) -> subprocess.Popen:
    """``streamlit run`` on ``config``'s registry (folder, database, artifacts), with
    ``settings`` (environment variables, e.g. ``JOB_EXECUTOR``) on top."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=config.child_environment() | (settings or {}))


@contextmanager
def running_dashboard(config: Config, settings: dict[str, str] | None = None
                      ) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run`` on a free local port, stopped afterwards: (base URL, process)."""
    port = free_port()
    server = start_dashboard(config, port, settings)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # the server takes a few seconds to listen
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the dashboard did not start") from None
                time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def wait_until_idle(page) -> None:
    """Until the page's script run is over (Streamlit marks its root element's state).

    After a click the rerun starts a moment later, so callers that acted first
    also wait for the content they expect.
    """
    page.wait_for_timeout(150)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def open_page(page, base_url: str, name: str) -> float:
    """Loads a page in a new session; seconds until its title shows and its script ends."""
    path, title = PAGES[name]
    started = time.perf_counter()
    page.goto(f"{base_url}/{path}", timeout=TIMEOUT_MS)
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    return time.perf_counter() - started


def switch_page(page, name: str) -> None:
    """Follows the sidebar link (same session: a signed-in user stays signed in)."""
    path, title = PAGES[name]
    page.locator("[data-testid='stSidebarNavLink']").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=TIMEOUT_MS)
    wait_until_idle(page)


ANSWER = "text=Answered by version"


def upload_and_wait(page, image: Path) -> float:
    """Seconds from choosing a file to its answer on screen."""
    answers = page.locator(ANSWER)
    previous = answers.first.inner_text() if answers.count() else None
    started = time.perf_counter()
    page.set_input_files("input[type=file]", str(image))
    # A new answer replaces the old one: its caption names its own prediction-log number.
    page.wait_for_function(
        """previous => [...document.querySelectorAll('p')].some(
               p => p.innerText.startsWith('Answered by version') && p.innerText !== previous)""",
        arg=previous, timeout=TIMEOUT_MS)
    wait_until_idle(page)
    return time.perf_counter() - started


def screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main container, so grow the viewport
    to that container's height for the shot, then put it back."""
    size = page.viewport_size
    height = page.evaluate("Math.max(...[...document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stAppViewContainer]')]"
                           ".map(e => e.scrollHeight), window.innerHeight)")
    page.set_viewport_size({"width": size["width"], "height": min(int(height), 12_000)})
    page.wait_for_timeout(300)  # charts re-lay out to the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def rss_bytes(process: subprocess.Popen) -> int:
    import psutil

    root = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

# What Streamlit draws for an exception raised by a page.
EXCEPTION = "[data-testid='stException']"
