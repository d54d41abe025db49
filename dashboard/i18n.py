"""The dashboard's languages: gettext catalogs (extracted and compiled with Babel), the
sidebar's language selector, and numbers and dates in the reader's locale.

Every user-facing string of the dashboard goes through ``_`` (or ``class_name`` for a
dataset's classes, ``term`` for core's fixed vocabulary). The catalogs live in
``dashboard/locale/<language>/LC_MESSAGES/dashboard.po``; ``make translations`` extracts
new strings into them and compiles the ``.mo`` files the dashboard reads (docs/languages.md).

Core stays English: its logs, CLI and API are searched and scripted in one language.
Core marks its fixed sentences with ``core.text.N_`` so they join this catalog; its
errors reach the page as a translated kind with their stable English code.
"""

from __future__ import annotations

import gettext
import html
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TypeVar

import streamlit as st
from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent

from core.app.vocabulary import GATE_FAILED_CHECK, GATE_SENTENCES, NONE_OF_THESE_CLASSES
from core.errors import CoreError
from core.text import N_, parse

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "dashboard"
K = TypeVar("K")
# Each language's name in itself: the selector must be readable whatever is chosen.
LANGUAGES = {"en": "English", "hi": "हिन्दी"}
DEFAULT_LANGUAGE = "en"
# The locale Babel formats numbers and dates for, and its digit grouping (Indian for
# Hindi: lakh and crore, 12,34,567). A pattern fixes the decimals a page asks for, and
# a pattern's grouping wins over the locale's, so each language names its own.
LOCALES = {"en": "en_US", "hi": "hi_IN"}
GROUPING = {"en": "#,##0", "hi": "#,##,##0"}
QUERY_PARAM = "lang"
LANGUAGE_KEY = "language"
# Set by the tests: a string missing from the chosen language's catalog raises instead
# of quietly showing English.
STRICT_ENV = "DASHBOARD_STRICT_TRANSLATIONS"


class Untranslated(LookupError):
    """A dashboard string that the chosen language's catalog lacks (strict mode only)."""


class _Missing(gettext.NullTranslations):
    """The fallback a catalog asks for a string it does not have."""

    def __init__(self, language: str):
        super().__init__()
        self.language = language

    def _missing(self, message: str) -> str:
        if os.environ.get(STRICT_ENV):
            raise Untranslated(
                f"{message!r} is not in the {self.language} catalog. To fix this, run "
                f"`make translations` and translate it in dashboard/locale/{self.language}/"
                f"LC_MESSAGES/{DOMAIN}.po")
        return message

    def gettext(self, message: str) -> str:
        return self._missing(message)

    def pgettext(self, context: str, message: str) -> str:
        return self._missing(f"{context}: {message}")


class _Uncompiled(gettext.NullTranslations):
    """A language whose catalog is not compiled (``streamlit run`` without ``make``):
    its pages are shown in English, with a note saying so (``selector``)."""


@cache
def catalog(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (English is the source: no catalog)."""
    if language == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    try:
        translations = gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])
    except FileNotFoundError:
        return _Uncompiled()
    translations.add_fallback(_Missing(language))
    return translations


def language() -> str:
    """The reader's language in this session (``follow_url`` settles it each run)."""
    return st.session_state.get(LANGUAGE_KEY, DEFAULT_LANGUAGE)


def follow_url() -> None:
    """Once per run, before any text: a language in the URL (``?lang=hi``: a link, a
    reload) becomes the session's, and the URL is kept in step with the session's, because
    Streamlit's page links drop query parameters."""
    asked = st.query_params.get(QUERY_PARAM)
    if asked in LANGUAGES:
        st.session_state[LANGUAGE_KEY] = asked
    show_in_url(language())


def show_in_url(chosen: str) -> None:
    """``?lang=`` for any language but the default, which needs none."""
    if chosen == DEFAULT_LANGUAGE:
        st.query_params.pop(QUERY_PARAM, None)
    elif st.query_params.get(QUERY_PARAM) != chosen:
        st.query_params[QUERY_PARAM] = chosen


def _(message: str) -> str:
    """``message`` in the reader's language."""
    return catalog(language()).gettext(message)


def class_name(dataset: str, name: str) -> str:
    """A class of ``dataset`` in the reader's language, from that dataset's table (below).
    Classes of a dataset without a table stay as the dataset names them. The label a
    person may give instead of a class ("none of these classes") is translated too."""
    if name == NONE_OF_THESE_CLASSES:
        return _(NONE_OF_THESE_CLASSES)
    if dataset not in CLASS_NAMES:
        return name
    return catalog(language()).pgettext(dataset, name)


def term(word: str) -> str:
    """One of core's fixed words (a status, role, source, action) in the reader's
    language; they are listed in TERMS so that extraction finds them."""
    return _(word)


# The formats take the language from the page unless one is given (the tests give one).
def number(value: float, digits: int = 0, language_: str | None = None) -> str:
    """``value`` with the locale's grouping and decimal mark (Hindi: 12,34,567.8)."""
    chosen = language_ or language()
    return format_decimal(value, format=GROUPING[chosen] + decimals(digits),
                          locale=LOCALES[chosen])


def percent(value: float, digits: int = 1, language_: str | None = None) -> str:
    chosen = language_ or language()
    return format_percent(value, format=GROUPING[chosen] + decimals(digits) + "%",
                          locale=LOCALES[chosen])


def decimals(digits: int) -> str:
    return "." + "0" * digits if digits else ""


def moment(value: datetime | str, language_: str | None = None) -> str:
    """A time in the locale's medium format, in the zone it carries (core's are UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return format_datetime(value, format="medium", tzinfo=value.tzinfo,
                           locale=LOCALES[language_ or language()])


def labels(values, label) -> dict:
    """Each of ``values`` with its label, worked out now. Pass ``labels(...).get`` as a
    widget's format_func: Streamlit may call that outside the page's run (AppTest does),
    where the reader's language cannot be looked up."""
    return {value: label(value) for value in values}


def error_text(error: CoreError) -> str:
    """What a page shows for a core error: its kind in the reader's language, its stable
    English code (what logs and support search for), then core's own message (which may
    quote what someone typed: shown as text, never as Markdown)."""
    return (f"{_(ERROR_KINDS.get(error.code, ERROR_KINDS['core_error']))} (`{error.code}`): "
            + plain(str(error)))


# What turns inline text into markup: emphasis, code, links and images ([...](...),
# ![...](...)), strikethrough, and Streamlit's own ($...$ formulas, :red[...]).
_MARKDOWN = re.compile(r"([\\`*_\[\]~$])")


def plain(text: str) -> str:
    """``text`` to show as it is inside Markdown: a reason saying ``[docs](https://evil)``
    or ``**urgent**`` is shown as typed, not as a link or bold."""
    return _MARKDOWN.sub(r"\\\1", text)


def selector() -> None:
    """The sidebar's language choice; it lands in the URL, so it is remembered."""
    current = language()
    if isinstance(catalog(current), _Uncompiled):
        st.sidebar.warning(_("The {language} translation is not compiled, so the pages are "
                             "in English. To fix this, run `make translations` (or `make "
                             "run`) and reload.").format(language=LANGUAGES[current]),
                           icon=":material/translate:")
    chosen = st.sidebar.segmented_control(
        _("Language"), list(LANGUAGES), format_func=shown_by(LANGUAGES), default=current,
        key="language_choice")
    if chosen and chosen != current:
        st.session_state[LANGUAGE_KEY] = chosen
        show_in_url(chosen)  # before the rerun, whose follow_url reads the URL first
        st.rerun()


def pN_(context: str, message: str) -> str:
    """Marks ``message`` for extraction in ``context`` (Babel keyword ``pN_:1c,2``)."""
    return message


# Per-dataset class tables: a dataset's class names come from its files, not from code,
# so they are listed here for extraction, each dataset its own context.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": (
        pN_("fashion_mnist", "T-shirt/top"), pN_("fashion_mnist", "Trouser"),
        pN_("fashion_mnist", "Pullover"), pN_("fashion_mnist", "Dress"),
        pN_("fashion_mnist", "Coat"), pN_("fashion_mnist", "Sandal"),
        pN_("fashion_mnist", "Shirt"), pN_("fashion_mnist", "Sneaker"),
        pN_("fashion_mnist", "Bag"), pN_("fashion_mnist", "Ankle boot")),
}

# Core's error kinds, by the code each error carries (core.errors).
ERROR_KINDS = {
    "core_error": N_("Error"),
    "invalid_input": N_("Invalid input"),
    "image_error": N_("Unusable image"),
    "dataset_error": N_("Dataset problem"),
    "model_error": N_("Model problem"),
    "not_available": N_("Not available for this model"),
    "version_not_found": N_("Unknown version"),
    "storage_unavailable": N_("Storage unavailable"),
    "registry_error": N_("Registry refused"),
    "action_refused": N_("Action refused"),
    "unauthenticated": N_("Not signed in"),
    "rate_limited": N_("Too many requests"),
    "too_large": N_("Too large"),
    "overloaded": N_("Server busy"),
}

# Core's fixed vocabulary as pages show it (statuses, roles, sources, actions, outcomes).
TERMS = (
    N_("champion"), N_("candidate"), N_("archived"), N_("rejected"),
    N_("admin"), N_("operator"), N_("reviewer"), N_("viewer"), N_("none"),
    N_("api"), N_("upload"), N_("camera"), N_("cli"), N_("device"), N_("simulation"),
    N_("ok"), N_("warn"), N_("alert"),
    N_("promote"), N_("reject"), N_("review"), N_("rollback"), N_("register"),
    N_("archive"), N_("traffic"),
    N_("shadow"), N_("canary"), N_("direct"),
    N_("done"), N_("refused"),
    N_("queued"), N_("running"), N_("succeeded"), N_("failed"), N_("cancelled"),
    N_("suggested"),
)


def core_text(text: str) -> str:
    """A sentence core stored in English (a gate reason or check), as inline HTML in the
    reader's language when it was formatted from one of core's marked templates, else as
    it is, marked English (``core_sentence``). Render with ``unsafe_allow_html=True``."""
    translated = _stored(text)
    return core_sentence(text) if translated is None else html.escape(translated)


def _stored(text: str) -> str | None:
    """``text`` in the reader's language, or None if no known template made it."""
    # A failed check's reason first ("<check>: <detail>"): a single template like
    # "gains on {holdout}" would otherwise swallow the detail into its parameter.
    parts = parse(GATE_FAILED_CHECK, text)
    if parts is not None:
        name, detail = _stored(parts["name"]), _stored(parts["detail"])
        if name is not None and detail is not None:
            return GATE_FAILED_CHECK.format(name=name, detail=detail)
    for template in GATE_SENTENCES:
        params = parse(template, text)
        if params is not None:
            return _(template).format(**params)
    return None


def core_sentence(text: str) -> str:
    """One of core's own English sentences (a gate reason, a drift reason, a measured
    detail) as inline HTML marked ``lang="en"``: screen readers pronounce it as English,
    and the language test knows it is core's, not an untranslated dashboard string.
    Pages render it with ``unsafe_allow_html=True``."""
    return f'<span lang="en">{plain(html.escape(text, quote=False))}</span>'


def points(difference: float) -> str:
    """A difference of two rates in percentage points, signed (a metric's delta)."""
    return _("{points} pts").format(points=f"{difference * 100:+.1f}")


def shown_by(names: Mapping[K, str]) -> Callable[[K], str]:
    """A widget's ``format_func``: each option shown by its name in ``names``."""
    return lambda option: names[option]
