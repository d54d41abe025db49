"""The dashboard in English and Hindi: the catalogs against the code, every page rendered
in each language with untranslated strings made fatal, the sidebar choice, the URL,
locale formats and core errors with their stable English code."""

import re
import string
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from core.app.vocabulary import GATE_FAILED_CHECK, GATE_SENTENCES
from core.errors import CoreError, ImageError
from core.text import parse
from dashboard import i18n
from dashboard.state import SIGNED_IN
from tests.browser import PAGES
from tests.conftest import PROJECT_ROOT
from tests.dashboard.translations import KEPT_IN_LATIN

APP = str(PROJECT_ROOT / "dashboard" / "app.py")
HINDI_PO = i18n.LOCALE_DIR / "hi" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
PLACEHOLDER = re.compile(r"\{[^}]*\}")


def extracted(tmp_path) -> list:
    """What ``make translations`` would extract from the code now (babel.cfg, keywords)."""
    pot = tmp_path / "now.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "-q", "extract",
                    "-F", "babel.cfg", "--no-default-keywords", "-k", "_", "-k", "N_",
                    "-k", "pN_:1c,2", "-o", str(pot), "."], cwd=PROJECT_ROOT, check=True)
    return [m for m in read_po(pot.open("rb")) if m.id]


def test_every_string_in_the_code_has_a_hindi_translation(tmp_path):
    in_code = {(m.context, m.id) for m in extracted(tmp_path)}
    catalog = read_po(HINDI_PO.open("rb"))
    translated = {(m.context, m.id): m for m in catalog if m.id}
    # A new string, or a changed one, needs `make translations` and a translator.
    assert sorted(in_code - set(translated), key=str) == []
    assert sorted(set(translated) - in_code, key=str) == []  # left-over strings go too
    for key, message in translated.items():
        assert message.string and not message.fuzzy, key
        # Every placeholder the code fills in survives translation, none is invented.
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(
            PLACEHOLDER.findall(message.id)), key
        assert re.search("[\u0900-\u097f]", message.string) or not re.search(
            "[A-Za-z]{3}", KEPT_IN_LATIN.sub("", PLACEHOLDER.sub("", message.id))), key
    assert not list(catalog.check())  # Babel's own checks (format strings)


def test_the_extraction_sees_core_and_dashboard_strings_and_the_class_table(tmp_path):
    ids = {(m.context, m.id) for m in extracted(tmp_path)}
    from core.app.vocabulary import NONE_OF_THESE_CLASSES, STATISTICS
    from core.ml.data import FASHION_MNIST_CLASSES
    assert (None, "Sign in") in ids and (None, NONE_OF_THESE_CLASSES) in ids
    assert all((None, spec.meaning) in ids for spec in STATISTICS.values())
    assert {("fashion_mnist", name) for name in FASHION_MNIST_CLASSES} <= ids
    assert {(None, kind) for kind in i18n.ERROR_KINDS.values()} <= ids


def start(monkeypatch, registry, user="ada", language=None):
    """The app signed in as ``user``, opened at ``?lang=<language>`` if given."""
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(registry))
    monkeypatch.setenv(i18n.STRICT_ENV, "1")  # a string missing from the catalog raises
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state[SIGNED_IN] = user
    if language:
        app.query_params[i18n.QUERY_PARAM] = language
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.mark.slow
def test_every_page_in_hindi_from_the_sidebar_choice_and_back(monkeypatch, candidate_copy):
    """Strict mode: a string a page asks for that the catalog lacks is an exception. (The
    browser suite renders every page in both languages; this walk is the fast check.)"""
    hindi = i18n.catalog("hi")
    app = start(monkeypatch, candidate_copy.registry_dir)
    assert app.title[0].value == "Predict" and i18n.QUERY_PARAM not in app.query_params
    app.sidebar.button_group[0].set_value("hi").run()
    assert not app.exception, app.exception
    assert app.query_params.get(i18n.QUERY_PARAM) == "hi"  # a link or reload keeps it
    # Core's names are shown in Hindi too: the version selector's status, the role.
    assert "v1 · चैंपियन" in app.selectbox[0].options
    assert "**ada** के रूप में साइन इन (एडमिन)" in app.sidebar.markdown[0].value
    for name, (_path, english) in PAGES.items():
        app.switch_page(f"views/{name}.py").run()
        assert not app.exception, (name, app.exception)
        assert app.title[0].value == hindi.gettext(english) != english, name
        assert app.query_params.get(i18n.QUERY_PARAM) == "hi", name
    app.sidebar.button_group[0].set_value("en").run()
    assert app.title[0].value == "Governance" and i18n.QUERY_PARAM not in app.query_params


@pytest.mark.slow
def test_a_bad_upload_in_hindi_names_the_problem_with_the_english_code(monkeypatch,
                                                                      registry_copy):
    app = start(monkeypatch, registry_copy.registry_dir, language="hi")
    app.file_uploader[0].set_value(("notes.png", b"not an image", "image/png"))
    app.run()
    assert not app.exception, app.exception
    shown = app.error[0].value
    # The kind in Hindi, the stable code logs are searched by, and core's own message.
    assert shown.startswith("यह छवि उपयोग नहीं की जा सकती: अनुपयोगी छवि (`image_error`):")
    assert "To fix this" in shown


def test_core_errors_carry_a_stable_code_with_a_translated_kind():
    codes = {cls.code for cls in [CoreError, *all_subclasses(CoreError)]}
    assert set(i18n.ERROR_KINDS) <= codes
    assert {c.code for c in all_subclasses(CoreError) if c.__module__ == "core.errors"} <= set(
        i18n.ERROR_KINDS)
    assert ImageError("truncated file. To fix this, upload it again.").code == "image_error"


def all_subclasses(cls) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in [direct, *all_subclasses(direct)]]


def test_a_template_gives_back_the_parameters_a_stored_sentence_was_formatted_with():
    template = "{diff} points, McNemar p = {p} (needs > 0 and p < {alpha})"
    stored = template.format(diff="+12.24", p="7.2e-72", alpha=0.05)
    assert parse(template, stored) == {"diff": "+12.24", "p": "7.2e-72", "alpha": "0.05"}
    assert parse(template, stored + ".") is None and parse("gains on {x}", stored) is None
    assert parse("{a} and {a}", "x and x") == {"a": "x"} and parse("{a} and {a}", "x and y") is None


def test_the_gate_sentences_core_stores_are_shown_in_hindi(monkeypatch):
    """Reasons and checks are stored in English with each comparison; the dashboard finds
    the template each came from and shows it translated, with the same numbers."""
    from core.governance.gate import ALL_PASSED, GAIN_DETAIL, GAINS_ON

    monkeypatch.setattr(i18n, "language", lambda: "hi")
    for template in GATE_SENTENCES:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        stored = template.format(**{name: f"P{index}" for index, name in enumerate(names)})
        shown = i18n.core_text(stored)
        assert re.search("[\u0900-\u097f]", shown), template
        assert all(f"P{index}" in shown for index in range(len(names))), template
    # A failed check's reason: both halves translated, the holdout's name kept.
    reason = GATE_FAILED_CHECK.format(name=GAINS_ON.format(holdout="drifted:blur"),
                                      detail=GAIN_DETAIL.format(diff="-0.40", p="0.31",
                                                                alpha=0.05))
    assert i18n.core_text(reason) == (
        "drifted:blur पर सुधार: -0.40 अंक, McNemar p = 0.31 (ज़रूरी: &gt; 0 और p &lt; 0.05)")
    assert i18n.core_text(ALL_PASSED) == "हर जाँच सफल रही"
    # A sentence from no template (an older record, say) stays English, marked so.
    assert i18n.core_text("the gate said <so>") == '<span lang="en">the gate said &lt;so&gt;</span>'


def test_numbers_and_dates_follow_the_locale():
    assert i18n.number(1234567.891, 1, "hi") == "12,34,567.9"  # lakh grouping
    assert i18n.number(1234567.891, 1, "en") == "1,234,567.9"
    assert i18n.percent(0.9212, 1, "hi") == "92.1%"
    moment = datetime(2026, 11, 25, 14, 3, tzinfo=UTC)
    assert i18n.moment(moment, "en") == "Nov 25, 2026, 2:03:00\u202fPM"  # CLDR: narrow space
    hindi = i18n.moment(moment.isoformat(), "hi")
    assert hindi.startswith("25 नव") and "2026" in hindi


def test_a_language_whose_catalog_is_not_compiled_is_shown_in_english(monkeypatch, tmp_path,
                                                                       trained_registry):
    """`streamlit run dashboard/app.py` on a fresh clone, before `make`: ?lang=hi works,
    in English, and says why and how to fix it."""
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)  # no compiled catalog in it
    i18n.catalog.cache_clear()
    try:
        app = start(monkeypatch, trained_registry, language="hi")
        assert app.title[0].value == "Predict"
        [note] = app.sidebar.warning
        assert "not compiled" in note.value and "make translations" in note.value
    finally:
        i18n.catalog.cache_clear()
