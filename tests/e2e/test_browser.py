"""What stakeholders see, in headless Chromium against ``streamlit run``, laptop and phone.

The tests run in file order against one server: predicting and simulating come
before the promotion, which comes before the retraining that fine-tunes the new
champion, and an operator registers a model trained elsewhere last (version 3).
"""

import json
import re
import time
from datetime import UTC, datetime

import pytest

from core.app import encode_png
from tests import imported_models
from tests.browser import (
    EXCEPTION,
    PAGES,
    TIMEOUT_MS,
    open_page,
    screenshot,
    switch_page,
    upload_and_wait,
    wait_until_idle,
)
from tests.cli_runner import run_cli
from tests.conftest import PASSWORD, USERS, backends_of, salt_noise
from tests.dashboard.translations import KEPT_IN_LATIN
from tests.e2e.conftest import SCREENSHOTS, sign_in

pytestmark = pytest.mark.slow
UNFAMILIAR = "This image is unlike the training images"


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_every_page_renders_without_errors(request, dashboard_url, timings, device):
    page = request.getfixturevalue(device)
    for name in PAGES:
        seconds = open_page(page, dashboard_url, name)
        timings[f"render {name} ({device})"] = round(seconds, 2)
        assert page.locator(EXCEPTION).count() == 0, name
        assert no_horizontal_scroll(page), f"{name} scrolls sideways on a {device}"
        screenshot(page, SCREENSHOTS / f"{name}-{device}.png")


def test_predict_shows_label_chart_and_heatmap_like_the_cli(desktop, dashboard_url, e2e_config,
                                                           test_pngs, timings):
    boot_png = test_pngs[0]
    open_page(desktop, dashboard_url, "predict")
    timings["upload to prediction visible (first, loads the model)"] = round(
        upload_and_wait(desktop, boot_png), 2)
    answer = desktop.get_by_role("heading", level=3).filter(has_text="·").first.inner_text()
    cli = json.loads(run_cli(e2e_config.registry_dir, "predict", str(boot_png),
                             "--json").stdout)[0]
    assert answer.startswith(cli["label"] + " · ")
    # The chart's element comes once the browser has loaded Plotly, after the run ends.
    charts = desktop.locator("[data-testid='stPlotlyChart']")
    charts.first.wait_for(timeout=TIMEOUT_MS)
    assert charts.count() == 1
    images = desktop.locator("[data-testid='stImage'] img")
    assert images.count() == 2  # the upload and its Grad-CAM overlay
    assert all(images.nth(i).evaluate("img => img.naturalWidth") >= 224 for i in range(2))
    assert desktop.get_by_text(UNFAMILIAR).count() == 0  # a garment like the training images
    timings["upload to prediction visible (warm)"] = round(
        upload_and_wait(desktop, test_pngs[1]), 2)
    screenshot(desktop, SCREENSHOTS / "predict-answer-desktop.png")


def test_an_image_unlike_the_training_images_gets_a_warning(desktop, dashboard_url,
                                                            e2e_config, tmp_path):
    noise = tmp_path / "noise.png"
    noise.write_bytes(encode_png(salt_noise()))
    open_page(desktop, dashboard_url, "predict")
    upload_and_wait(desktop, noise)
    warning = desktop.get_by_text(UNFAMILIAR)
    assert warning.count() == 1 and "treat the answer with caution" in warning.inner_text()
    logged = backends_of(e2e_config).prediction_log.window("classifier", 1, last=1)
    assert logged.ood_scores[0] > 0  # the score shown was logged with the prediction
    assert f"{logged.ood_scores[0]:.2f}" in warning.inner_text()
    screenshot(desktop, SCREENSHOTS / "predict-unfamiliar-desktop.png")


def test_the_review_queue_takes_a_label_for_the_unfamiliar_upload(desktop, dashboard_url,
                                                                 e2e_config):
    log = backends_of(e2e_config).prediction_log
    noise = int(log.window("classifier", 1, last=1, sources=["upload"]).ids[0])  # just above
    before = log.none_of_these_scores("classifier", 1).size
    open_page(desktop, dashboard_url, "review_queue")
    sign_in(desktop, "vic")  # people's uploads are for signed-in users
    card = desktop.locator(f".st-key-queue-{noise}")
    assert "unfamiliar" in card.inner_text()
    screenshot(desktop, SCREENSHOTS / "review-queue-desktop.png")
    card.locator("[data-testid='stSelectbox'] input").click()
    desktop.keyboard.type("none of these")
    desktop.keyboard.press("Enter")
    card.get_by_role("button", name="Save the label").click()
    wait_until_idle(desktop)
    assert log.none_of_these_scores("classifier", 1).size == before + 1
    assert desktop.locator(f".st-key-queue-{noise}").count() == 0  # labelled: off the queue
    desktop.get_by_role("tab", name="Top losses on the holdout").click()
    desktop.get_by_role("button", name="Find the top losses").click()
    desktop.get_by_text("holdout images wrong").wait_for(timeout=TIMEOUT_MS)
    wait_until_idle(desktop)
    assert desktop.locator("[data-testid='stImage']").count() == 12
    desktop.mouse.move(0, 0)  # no button tooltip over the captions
    screenshot(desktop, SCREENSHOTS / "review-top-losses-desktop.png")


def test_phone_camera_photo_gets_a_prediction(phone, dashboard_url, e2e_config):
    log = backends_of(e2e_config).prediction_log
    before = log.count("classifier")
    open_page(phone, dashboard_url, "predict")
    # On a phone the camera comes first: no toggling needed. Shoot once frames arrive.
    phone.wait_for_function("() => { const v = document.querySelector('video'); "
                            "return v && v.readyState >= 2 && v.videoWidth > 0; }",
                            timeout=TIMEOUT_MS)
    phone.get_by_role("button", name="Take Photo").click(timeout=TIMEOUT_MS)
    phone.get_by_text("Answered by version").wait_for(timeout=TIMEOUT_MS)
    wait_until_idle(phone)
    assert "source: camera" in phone.get_by_text("Answered by version").inner_text()
    assert log.count("classifier") == before + 1
    assert no_horizontal_scroll(phone)
    screenshot(phone, SCREENSHOTS / "predict-camera-phone.png")


def test_versions_page_downloads_the_model_card(desktop, dashboard_url, e2e_config):
    newest = backends_of(e2e_config).registry.list_versions()[-1]  # the details' default
    open_page(desktop, dashboard_url, "versions")
    with desktop.expect_download(timeout=TIMEOUT_MS) as download:
        desktop.get_by_role("button", name="Model card (HTML)").click()
    assert download.value.suggested_filename == f"model-card-v{newest.version}.html"
    card = open(download.value.path(), encoding="utf-8").read()
    assert (f"<h1>Model card: classifier version {newest.version} ({newest.status})</h1>"
            in card)
    assert "<h2>Robustness to drift</h2>" in card and "<svg" in card


def choose(page, label: str, option: str) -> None:
    """Picks an option of a select box by typing it, as a keyboard user would."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).locator("input").click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    wait_until_idle(page)


def test_drift_simulation_from_the_page_raises_the_alert(desktop, dashboard_url):
    open_page(desktop, dashboard_url, "drift")
    sign_in(desktop, "olga")
    desktop.get_by_text("Simulate incoming traffic").click()
    choose(desktop, "Scenario", "invert")
    desktop.get_by_role("button", name="Run simulation").click()
    desktop.get_by_text("Logged 500 predictions").wait_for(timeout=TIMEOUT_MS)
    desktop.get_by_text("Drift alert").first.wait_for(timeout=TIMEOUT_MS)
    screenshot(desktop, SCREENSHOTS / "drift-alert-desktop.png")


def test_drift_over_time_and_the_alert_the_monitor_raised(desktop, dashboard_url,
                                                          e2e_config):
    from datetime import timedelta
    from itertools import count

    from core.app import monitor_pass, simulate
    from core.monitoring.snapshots import period_start

    backends = backends_of(e2e_config)
    start = period_start(datetime.now(UTC) - timedelta(hours=6), "hour")
    ticks = count()
    # Six past hours of traffic, brighter from the fourth on: hourly snapshots tell when.
    for hour, scenario in enumerate(["none"] * 3 + ["brightness"] * 3):
        simulate(backends, actor="olga", scenario=scenario, n=120,
                 clock=lambda h=hour: start + timedelta(hours=h, seconds=next(ticks) % 3600))
    result = monitor_pass(backends, datetime.now(UTC))
    assert result.snapshots >= 6
    open_page(desktop, dashboard_url, "drift")
    desktop.get_by_text("One point per hour").wait_for(timeout=TIMEOUT_MS)
    assert desktop.locator(EXCEPTION).count() == 0
    screenshot(desktop, SCREENSHOTS / "drift-over-time-desktop.png")
    open_page(desktop, dashboard_url, "alerts")
    desktop.get_by_text(re.compile(r"drift · version \d+ · since")).first.wait_for(
        timeout=TIMEOUT_MS)
    assert desktop.locator(EXCEPTION).count() == 0
    screenshot(desktop, SCREENSHOTS / "alerts-open-desktop.png")


def test_governance_shows_a_shadowed_candidates_live_evidence(desktop, dashboard_url,
                                                             e2e_config):
    from core.app import set_traffic, simulate

    backends = backends_of(e2e_config)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="see v2 on live traffic", now=datetime.now(UTC))
    simulate(backends, actor="olga", scenario="brightness", n=60,
             clock=lambda: datetime.now(UTC))
    open_page(desktop, dashboard_url, "governance")
    desktop.get_by_text("Live evidence").first.wait_for(timeout=TIMEOUT_MS)
    seen = desktop.locator("[data-testid='stMetric']").filter(has_text="Requests seen by both")
    assert seen.first.inner_text().endswith("60")
    assert desktop.locator(EXCEPTION).count() == 0
    screenshot(desktop, SCREENSHOTS / "governance-live-desktop.png")


# Text a person reads, less what is not the dashboard's to translate: code and commands,
# core's own English sentences (marked lang="en"), icon ligatures, and Streamlit's file
# drop zone, whose words Streamlit offers no way to set.
VISIBLE_TEXT = """() => {
  const skip = 'code, pre, span[lang="en"], [data-testid="stFileUploaderDropzone"], header';
  const roots = document.querySelectorAll('[data-testid="stMain"], [data-testid="stSidebar"]');
  const texts = [];
  for (const root of roots) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const element = node.parentElement;
      if (!element || element.closest(skip) || !node.textContent.trim()) continue;
      // Icons are words drawn as glyphs by the Material Symbols font ("upload").
      if (getComputedStyle(element).fontFamily.includes('Material')) continue;
      if (element.closest('svg') === null && element.offsetParent === null) continue;
      texts.push(node.textContent.trim());
    }
  }
  return texts;
}"""


def untranslated_words(texts: list[str], identifiers: set[str]) -> set[str]:
    """English words left in a Hindi page: runs of 3+ Latin letters that are neither a
    name kept in Latin script nor one of core's identifiers (scenarios, statistics, users)."""
    words = set()
    for text in texts:
        # A kept name becomes "_", which marks its word as written-as-is (metadata.json).
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_.:/-]*", KEPT_IN_LATIN.sub("_", text)):
            bare = word.strip(".:-/")
            # An identifier or a file name (metadata.json) is written as it is.
            if (len(re.sub("[^A-Za-z]", "", bare)) >= 3 and not re.search(r"_|\w\.\w", bare)
                    and not re.search(r"\d", bare) and bare not in identifiers
                    and not set(re.split("[:./]", bare)) <= identifiers):
                words.add(bare)
    return words


def test_every_page_in_hindi_has_no_untranslated_string(desktop, dashboard_url, test_pngs):
    """With the server strict (a string missing from the catalog is an exception), an
    admin walks every page in Hindi; the screen holds no English word of the dashboard's."""
    from core.app.vocabulary import ALERT_RULES, EXPORT_FORMATS, SCENARIOS, STATISTICS
    from dashboard.i18n import catalog

    hindi = catalog("hi")
    # Names a user types or reads as they are elsewhere (the CLI, the API, file names).
    identifiers = {*SCENARIOS, *STATISTICS, *EXPORT_FORMATS, *ALERT_RULES, *USERS, "clean",
                   "drifted", "feedback", "fashion_mnist", "classifier", "tensorboard"}
    desktop.goto(f"{dashboard_url}/?lang=hi", timeout=TIMEOUT_MS)
    desktop.get_by_role("heading", name=hindi.gettext("Predict")).wait_for(timeout=TIMEOUT_MS)
    desktop.get_by_label(hindi.gettext("User name")).fill("ada")
    desktop.get_by_label(hindi.gettext("Password"), exact=True).fill(PASSWORD)
    desktop.get_by_role("button", name=hindi.gettext("Sign in")).click()
    desktop.get_by_role("button", name=hindi.gettext("Sign out")).wait_for(timeout=TIMEOUT_MS)
    wait_until_idle(desktop)
    # An answer too: its class names, chart and captions are checked with the page.
    desktop.set_input_files("input[type=file]", str(test_pngs[0]))
    desktop.get_by_text(re.compile("के रूप में दर्ज")).wait_for(timeout=TIMEOUT_MS)
    wait_until_idle(desktop)
    assert desktop.get_by_role("heading", name=re.compile("^एंकल बूट · ")).count() == 1
    for name, (_path, title) in PAGES.items():
        link = desktop.locator("[data-testid='stSidebarNavLink']").get_by_text(
            hindi.gettext(title), exact=True)
        link.click()
        desktop.get_by_role("heading", name=hindi.gettext(title), exact=True).first.wait_for(
            timeout=TIMEOUT_MS)
        wait_until_idle(desktop)
        assert desktop.locator(EXCEPTION).count() == 0, name
        assert "lang=hi" in desktop.url, (name, desktop.url)  # the choice stays in the URL
        # The shot first: it grows the viewport to the whole page, so every chart is drawn.
        screenshot(desktop, SCREENSHOTS / f"{name}-hindi-desktop.png")
        words = untranslated_words(desktop.evaluate(VISIBLE_TEXT), identifiers)
        assert not words, (name, sorted(words))


def decision_controls(page) -> int:
    return page.get_by_role("button", name="Promote to champion").count()


def test_governance_viewer_cannot_and_reviewer_does_promote(desktop, dashboard_url, e2e_config):
    open_page(desktop, dashboard_url, "governance")
    assert decision_controls(desktop) == 0  # not signed in: a viewer
    sign_in(desktop, "vic")
    assert decision_controls(desktop) == 0
    desktop.get_by_role("button", name="Sign out").click()
    wait_until_idle(desktop)
    sign_in(desktop, "rita")
    assert decision_controls(desktop) == 1
    desktop.get_by_label("Reason (required; kept in the audit log)").first.fill(
        "fixes the brightness drift; clean accuracy held")
    desktop.get_by_role("button", name="Promote to champion").click()
    desktop.get_by_text("Version 2: candidate → champion by rita").wait_for(timeout=TIMEOUT_MS)
    wait_until_idle(desktop)
    # The audit table is drawn on a canvas: check its rows through core, its banner here.
    promote = [e for e in backends_of(e2e_config).audit_log.read_entries() if e.action == "promote"]
    assert [(e.actor, e.outcome, e.reason) for e in promote] == [
        ("rita", "done", "fixes the brightness drift; clean accuracy held")]
    assert desktop.get_by_text("Chain verified").count() == 1
    screenshot(desktop, SCREENSHOTS / "governance-promoted-desktop.png")
    switch_page(desktop, "versions")
    statuses = desktop.locator("[data-testid='stMetric']").filter(has_text="Status")
    assert "champion" in statuses.first.inner_text()  # details open on the newest: v2


def test_retrain_progress_is_live_while_another_page_works(desktop, chromium, dashboard_url,
                                                           test_pngs, e2e_config):
    open_page(desktop, dashboard_url, "retrain")
    sign_in(desktop, "olga")
    desktop.get_by_role("button", name="Start retraining").click()
    desktop.get_by_text("Queued job").wait_for(timeout=TIMEOUT_MS)
    progress = desktop.get_by_text(re.compile(r"epoch \d+/\d+, step \d+/\d+"))
    progress.first.wait_for(timeout=TIMEOUT_MS)
    first = progress.first.inner_text()
    # Nobody touches the page: the fragment reruns itself and the step moves on.
    deadline = time.monotonic() + 60
    while progress.first.inner_text() == first:
        assert time.monotonic() < deadline, f"progress stuck at {first!r}"
        desktop.wait_for_timeout(500)
    # Meanwhile another visitor predicts on another page.
    other = chromium.new_page()
    open_page(other, dashboard_url, "predict")
    upload_and_wait(other, test_pngs[2])
    other.close()
    job = backends_of(e2e_config).jobs.list(datetime.now(UTC))[0]
    assert job.status == "running" and job.submitted_by == "olga"
    screenshot(desktop, SCREENSHOTS / "retrain-progress-desktop.png")
    desktop.get_by_role("button", name=f"Cancel job {job.id}").click()
    desktop.get_by_text(f"Job {job.id}: cancelled").wait_for(timeout=TIMEOUT_MS)
    assert [v.version for v in backends_of(e2e_config).registry.list_versions()] == [1, 2]


def test_an_operator_registers_a_model_trained_elsewhere_and_it_answers(
        desktop, dashboard_url, e2e_config, test_pngs, tmp_path):
    model_file = imported_models.fashion(e2e_config.fashion_mnist_dir, tmp_path / "team.keras")
    open_page(desktop, dashboard_url, "versions")
    sign_in(desktop, "olga")
    desktop.get_by_text("Register a model trained elsewhere").click()
    desktop.locator("[data-testid='stFileUploader'] input[type=file]").set_input_files(
        str(model_file))
    desktop.get_by_text("team.keras").wait_for(timeout=TIMEOUT_MS)
    desktop.get_by_label("Pixel values the model expects").click()
    desktop.get_by_role("option", name="0,255").click()
    desktop.get_by_label("Reason (required; kept in the audit log)").fill(
        "the team's notebook model")
    desktop.get_by_role("button", name="Register", exact=True).click()
    desktop.get_by_text(re.compile(r"Registered team\.keras as version 3 \(candidate\)")).wait_for(
        timeout=2 * TIMEOUT_MS)
    screenshot(desktop, SCREENSHOTS / "versions-registered-desktop.png")
    version = backends_of(e2e_config).registry.get_version(3)
    assert version.metadata.source["file"] == "team.keras"
    assert version.metadata.source["outputs"] == "logits"
    # It answers on the Predict page when chosen.
    switch_page(desktop, "predict")
    desktop.get_by_role("combobox", name="Model version").click()
    desktop.get_by_role("option", name=re.compile(r"^v3")).click()
    wait_until_idle(desktop)
    upload_and_wait(desktop, test_pngs[0])
    assert desktop.get_by_text("Answered by version 3").count() == 1
