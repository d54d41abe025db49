"""A real dashboard (``streamlit run``) and Debian's Chromium, started and stopped by the tests.

Screenshots and timings go to ``tests/e2e/screenshots/`` (not committed) for a person
to look at.
"""

import json
from pathlib import Path

import pytest

from core.config import load_config
from core.ml.images import encode_png
from dashboard.i18n import STRICT_ENV
from tests import browser as browser_tools
from tests.conftest import PASSWORD, copy_registry, fashion_test_images

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


@pytest.fixture(scope="session")
def e2e_config(candidate_registry, tmp_path_factory):
    """A private copy of the registry with a candidate (v2) and the users of every role.

    One server for every e2e module: ``test_browser.py`` runs first (file order) and
    changes the registry in its documented order; later modules only predict."""
    root = tmp_path_factory.mktemp("e2e") / "registry"
    copy_registry(candidate_registry, root)
    return load_config({}).with_overrides(registry_dir=root)


@pytest.fixture(scope="session")
def dashboard_url(e2e_config):
    # Strict: a page asking for a string the Hindi catalog lacks shows an exception.
    with browser_tools.running_dashboard(e2e_config, {STRICT_ENV: "1"}) as (url, _):
        yield url


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = browser_tools.launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def desktop(chromium):
    context = chromium.new_context(viewport=browser_tools.DESKTOP)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(chromium):
    context = chromium.new_context(**browser_tools.PHONE)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def timings():
    """Seconds per measured step; written next to the screenshots when the run ends."""
    measured = {}
    yield measured
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "timings.json").write_text(json.dumps(measured, indent=2))


@pytest.fixture
def test_pngs(tmp_path) -> list[Path]:
    """The first three Fashion-MNIST test images as PNG files (the first: an ankle boot)."""
    paths = []
    for index, image in enumerate(fashion_test_images(3)[0]):
        paths.append(tmp_path / f"test{index}.png")
        paths[-1].write_bytes(encode_png(image))
    return paths


def sign_in(page, name: str) -> None:
    """Through the sidebar form, as a person would."""
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(timeout=browser_tools.TIMEOUT_MS)
    browser_tools.wait_until_idle(page)
