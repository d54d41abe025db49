"""The awkward-upload corpus through a real dashboard in Chromium: each file gets an answer
or one clear message, the page never shows an exception, and the server keeps serving."""

import urllib.request

import pytest

from tests import upload_corpus
from tests.browser import EXCEPTION, TIMEOUT_MS, open_page, upload_and_wait, wait_until_idle
from tests.conftest import backends_of

pytestmark = pytest.mark.slow
CASES = upload_corpus.build(upload_corpus.fashion_base())
WAITING = "Upload an image or take a photo"
ANSWER, REFUSED = "Answered by version", "Cannot use this image"
CHIP_ERROR = "[data-testid='stFileChip'] [data-testid='stFileChipIconError']"
# The uploader itself refuses (in the browser, before anything is sent) what its
# type list and the 20 MB limit exclude; the server refuses everything else it cannot use.
REFUSED_BY_THE_BROWSER = {"svg": "image/svg+xml files are not allowed",
                          "over_upload_limit": "File must be 20.0MB or smaller"}


def remove_uploads(page) -> None:
    """Deletes every file chip, as a person clicking their x would: back to the start."""
    buttons = page.locator("[data-testid='stFileChipDeleteBtn']")
    while buttons.count():
        buttons.first.click()
        wait_until_idle(page)
    page.get_by_text(WAITING).wait_for(timeout=TIMEOUT_MS)


def outcome(page) -> tuple[str, str]:
    """What the page shows after an upload: ("answer", label), ("refused", message) or
    ("browser", message). Exactly one must be on screen."""
    page.wait_for_function(
        """([answer, refused, chipError]) => {
               const text = [...document.querySelectorAll('p, div[role=alert]')]
                   .map(e => e.innerText).join('\\n');
               return text.includes(answer) || text.includes(refused)
                   || document.querySelector(chipError) !== null; }""",
        arg=[ANSWER, REFUSED, CHIP_ERROR], timeout=TIMEOUT_MS)
    wait_until_idle(page)
    shown = {
        "answer": page.get_by_text(ANSWER).count(),
        "refused": page.get_by_text(REFUSED).count(),
        "browser": page.locator(CHIP_ERROR).count(),
    }
    assert sum(shown.values()) == 1, shown  # one outcome, never a pile of messages
    kind = next(k for k, n in shown.items() if n)
    if kind == "answer":
        heading = page.get_by_role("heading", level=3).filter(has_text="·").first.inner_text()
        return kind, heading.split(" · ")[0]
    if kind == "refused":
        return kind, page.locator("[data-testid='stAlert']").filter(
            has_text=REFUSED).inner_text()
    return kind, page.locator("[data-testid='stFileChip']").inner_text()


def test_every_corpus_file_gets_an_answer_or_one_clear_message(desktop, dashboard_url,
                                                                e2e_config, tmp_path,
                                                                test_pngs):
    log = backends_of(e2e_config).prediction_log
    logged = log.count("classifier")
    open_page(desktop, dashboard_url, "predict")
    labels = {}
    for case in CASES:
        path = tmp_path / case.filename
        path.write_bytes(case.data)
        remove_uploads(desktop)
        desktop.set_input_files("input[type=file]", str(path))
        kind, shown = outcome(desktop)
        assert desktop.locator(EXCEPTION).count() == 0, case.name
        if case.name in REFUSED_BY_THE_BROWSER:
            assert kind == "browser" and REFUSED_BY_THE_BROWSER[case.name] in shown
        elif case.expect == "error":
            assert kind == "refused", (case.name, shown)
            assert case.message in shown and "To fix this" in shown
        else:
            assert kind == "answer", (case.name, shown)
            labels[case.name] = shown
    for case in CASES:
        if case.expect == "same":
            assert labels[case.name] == labels[case.same_as], case.name
    # One logged prediction per answer; nothing for a refusal.
    assert log.count("classifier") == logged + len(labels)
    # The server kept serving: healthy, and a new visitor still gets answers.
    with urllib.request.urlopen(f"{dashboard_url}/_stcore/health", timeout=10) as response:
        assert response.status == 200
    open_page(desktop, dashboard_url, "predict")
    upload_and_wait(desktop, test_pngs[1])
    assert log.count("classifier") == logged + len(labels) + 1
