"""What pages share: the backends, the signed-in user, and drawing helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import streamlit as st

from core.app import (
    Actor,
    Backends,
    Comparison,
    ModelVersion,
    build_backends,
    current_actor,
    find_champion_in,
    list_models,
    list_versions,
    may,
    sign_in,
)
from core.app.vocabulary import ANONYMOUS
from core.config import Config, load_config
from core.errors import CoreError
from dashboard import i18n
from dashboard.i18n import _

T = TypeVar("T")


# The model a session works on: chosen in the sidebar, kept in the URL (?model=NAME) like
# the language, so that a link or a reload opens the same model.
MODEL_QUERY_PARAM = "model"
MODEL_KEY = "model_name"


def config() -> Config:
    """The configuration (read on every run: cheap, and a changed environment is seen at
    once), on the model the session chose (default: MODEL_NAME's)."""
    base = load_config()
    chosen = st.session_state.get(MODEL_KEY)
    if not chosen or chosen == base.model_name:
        return base
    return base.with_overrides(model_name=chosen)


def follow_model_in_url() -> None:
    """Once per run, before any page: a model named in the URL becomes the session's (a
    name no model can have is refused with the reason), and the URL keeps the session's,
    because Streamlit's page links drop query parameters."""
    base = load_config()
    asked = st.query_params.get(MODEL_QUERY_PARAM)
    if asked:
        try:
            base.with_overrides(model_name=asked)  # validates the name
            st.session_state[MODEL_KEY] = asked
        except CoreError as error:
            st.query_params.pop(MODEL_QUERY_PARAM, None)
            st.sidebar.error(i18n.error_text(error), icon=":material/block:")
    chosen = config().model_name
    if chosen == base.model_name:
        st.query_params.pop(MODEL_QUERY_PARAM, None)
    elif st.query_params.get(MODEL_QUERY_PARAM) != chosen:
        st.query_params[MODEL_QUERY_PARAM] = chosen


def model_selector() -> None:
    """The sidebar's choice of model, when the registry holds more than one."""
    if not allowed("view"):
        return
    current = config().model_name
    models = sorted({*list_models(backends(), actor=current_user(), now=now()), current})
    if len(models) < 2:
        return
    chosen = st.sidebar.selectbox(_("Model"), models, index=models.index(current),
                                  help=_("The registry's models; every page works on the one "
                                         "chosen here."))
    if chosen != current:
        st.session_state[MODEL_KEY] = chosen
        st.query_params[MODEL_QUERY_PARAM] = chosen
        st.rerun()


def backends() -> Backends:
    """The backends of the current configuration, built once per server process."""
    return _backends(config())


@st.cache_resource(show_spinner=False)
def _backends(current: Config) -> Backends:
    # One per configuration: each version's model is loaded once and shared by sessions.
    return build_backends(current)


def keep_keras_state_between_runs() -> None:
    """Stops Streamlit from calling ``keras.backend.clear_session()`` after every run.

    Streamlit does that for apps that build Keras models inside the script. This app
    builds none: its models are loaded once and shared by every session (``model_cache``).
    Clearing cost ~0.12 s per page run (a full garbage collection, and TensorFlow's
    kernel cache, so the next Grad-CAM recompiled) -- two thirds of the server's time
    under load -- and it ran while other sessions' threads were computing heatmaps.
    """
    import keras  # TensorFlow: paid once per server process, as the first Grad-CAM would

    keras.backend.clear_session = _keep_session


def _keep_session(free_memory: bool = True) -> None:
    """Replaces ``keras.backend.clear_session`` in the dashboard's process (see above)."""


def has_versions() -> bool:
    """Whether the model has a version the signed-in user may see."""
    return allowed("view") and bool(list_versions(backends(), actor=current_user(),
                                                   now=now()))


def versions_or_stop() -> list[ModelVersion]:
    """The model's versions; with none (or no right to see them), says what to do and stops."""
    if not allowed("view"):
        st.info(_("Sign in to use this dashboard (sidebar)."), icon=":material/lock:")
        st.stop()
    versions = list_versions(backends(), actor=current_user(), now=now())
    if not versions:
        st.info(_("The registry at `{folder}` has no model yet. Train the baseline with "
                  "`python -m core bootstrap` (about two minutes), or register a model "
                  "trained elsewhere (`python -m core register`, or the Versions page's form "
                  "for operators), then reload this page.")
                .format(folder=config().registry_dir), icon=":material/model_training:")
        st.stop()
    return versions


def champion_of(versions: list[ModelVersion]) -> ModelVersion:
    """The champion (a registry with versions has one: the first is registered as it)."""
    champion = find_champion_in(versions)
    assert champion is not None, "a registry with versions has a champion"
    return champion


def version_selector(versions: list[ModelVersion], container=st, **options) -> int:
    """A select box of versions, newest first, defaulting to the champion."""
    labels = {v.version: f"v{v.version} · {i18n.term(v.status)}" for v in reversed(versions)}
    champion = find_champion_in(versions)
    default = list(labels).index(champion.version) if champion else 0
    return container.selectbox(_("Model version"), list(labels), format_func=i18n.shown_by(labels),
                               index=default, **options)


SIGNED_IN = "signed_in_user"


def oidc_configured() -> bool:
    """Whether ``[auth]`` is set in secrets.toml: then Streamlit's st.login signs people in."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than returning empty
        return False


def current_user() -> str:
    """The signed-in user's name, or 'anonymous'. Core checks this name's role on every action."""
    if oidc_configured():
        return (verified_email(st.user) or ANONYMOUS) if st.user.is_logged_in else ANONYMOUS
    return st.session_state.get(SIGNED_IN, ANONYMOUS)


def verified_email(claims) -> str | None:
    """The e-mail address an identity provider vouches for, or None. Its ``email`` claim
    alone is not enough: some providers let anyone put any address on an account, so only
    one the provider says it verified (``email_verified``) names a user here."""
    email = claims.get("email")
    verified = claims.get("email_verified")
    return email if email and (verified is True or verified == "true") else None


def signed_in_actor() -> Actor:
    """The current user with the role they hold now (a changed role applies at once)."""
    return current_actor(backends(), current_user())


def allowed(permission: str) -> bool:
    """Whether to show a control. Only a hint for the page: core checks again anyway."""
    return may(backends(), current_user(), permission)


def sign_in_panel() -> None:
    """The sidebar's sign-in form (or OIDC button), or who is signed in with a sign-out."""
    with st.sidebar:
        actor = signed_in_actor()
        if actor.name != ANONYMOUS:
            st.markdown(_("Signed in as **{name}** ({role})").format(
                name=actor.name, role=i18n.term(actor.role)))
            if st.button(_("Sign out"), icon=":material/logout:"):
                if oidc_configured():
                    st.logout()
                st.session_state.pop(SIGNED_IN, None)
                st.rerun()
            return
        if oidc_configured() and st.user.is_logged_in:
            st.warning(_("Your identity provider has not verified your e-mail address, so "
                         "you act as a visitor. To fix this, verify it with the provider, "
                         "then sign in again."), icon=":material/mark_email_unread:")
        st.caption(_("Not signed in: you act as a {role} visitor.").format(
            role=i18n.term(actor.role)) if actor.role != "none"
            else _("Sign in to use this dashboard."))
        if oidc_configured():
            st.button(_("Sign in"), icon=":material/login:", on_click=st.login)
            return
        with st.form("sign_in", border=False):
            name = st.text_input(_("User name"), autocomplete="username")
            password = st.text_input(_("Password"), type="password",
                                     autocomplete="current-password")
            if st.form_submit_button(_("Sign in"), icon=":material/login:"):
                with shown_errors():
                    signed = sign_in(backends(), name, password, now(),
                                     client=client_address())
                    st.session_state[SIGNED_IN] = signed.name
                    st.rerun()


def client_address() -> str:
    """Who is signing in, as far as the server can tell (the browser's address; behind a
    proxy, the proxy's): failed sign-ins slow down this address only."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "unknown"


def now() -> datetime:
    """The time of an action (UTC). Pages take it from here, so one place could fix it."""
    return datetime.now(UTC)


def act(use_case: Callable[..., T], *args: Any, **options: Any) -> T:
    """``use_case(backends, *args, actor=<the signed-in user>, now=<now>, **options)``: a
    use case run as whoever uses the page, now."""
    return use_case(backends(), *args, actor=current_user(), now=now(), **options)


@contextmanager
def shown_errors(icon: str | None = None) -> Iterator[None]:
    """A refusal or bad input raised in the block is shown as the page's error, in the
    reader's language; the rest of the block is skipped, the page goes on after it."""
    try:
        yield
    except CoreError as error:
        st.error(i18n.error_text(error), icon=icon)


def show_comparison(comparison: Comparison, dataset: str) -> None:
    """The gate's advice, its checks, and the holdout table of a stored comparison
    (``dataset``: whose class names the per-class chart shows)."""
    from dashboard import charts

    if comparison.advice is not None:
        advice = comparison.advice.recommendation
        icon = {"promote": ":material/thumb_up:", "reject": ":material/thumb_down:",
                "review": ":material/help:"}[advice]
        {"promote": st.success, "reject": st.error, "review": st.warning}[advice](
            _("The gate recommends **{advice}** (advice for a human; nothing is promoted "
              "automatically).").format(advice=i18n.term(advice)), icon=icon)
        # The reasons and checks are sentences core stored when it compared.
        st.markdown(_("Why:") + " " + "; ".join(
            i18n.core_text(reason) for reason in comparison.advice.reasons),
            unsafe_allow_html=True)
        for check in comparison.advice.checks:
            badge = (":green-badge[" + _("pass") + "]" if check.passed
                     else ":red-badge[" + _("fail") + "]")
            st.markdown(f"{badge} **{i18n.core_text(check.name)}**: "
                        + i18n.core_text(check.detail), unsafe_allow_html=True)
    st.dataframe(charts.comparison_table(comparison), hide_index=True, width="stretch",
                 column_config={_("difference (points)"): st.column_config.NumberColumn(
                     format="%+.2f"), _("McNemar p"): st.column_config.NumberColumn(
                     format="%.3g")})
    st.plotly_chart(charts.per_class_deltas(
        comparison, lambda name: i18n.class_name(dataset, name)), width="stretch")


def is_phone() -> bool:
    """Whether the browser says it is a phone (its user agent has "Mobi", per MDN's advice)."""
    return "Mobi" in (st.context.headers.get("User-Agent") or "")


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def camera_blocked_reason(url: str | None) -> str | None:
    """Why a browser will refuse the camera at ``url``, or None if it can work.

    Browsers allow the camera only in a secure context: HTTPS, or the local machine.
    """
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.hostname or "") in LOCAL_HOSTS:
        return None
    return _("Your browser blocks the camera on {address}: cameras are only allowed over "
             "HTTPS (or on the machine itself). To fix this, start the dashboard with "
             "`make https` and open the https:// address it prints, accepting the "
             "certificate warning once. Uploading a photo works as it is.").format(
        address=f"{parsed.scheme}://{parsed.hostname}")
