"""The phone app on the dashboard: its address as a QR code (Predict page), and enrolling
a phone with a device key as a QR code (admins, Governance page). docs/phone.md."""

from __future__ import annotations

from urllib.parse import urlsplit

import segno
import streamlit as st

from core.app import create_key, enrol_url
from dashboard import state
from dashboard.i18n import _

API_PORT = 8500  # make serve's


def api_address() -> str:
    """Where phones reach the API: API_URL, else this dashboard's host on port 8500 (the
    scheme as the dashboard's: a phone runs the app only over HTTPS or on localhost)."""
    configured = state.config().api_url
    if configured:
        return configured.rstrip("/")
    here = urlsplit(st.context.url or "http://localhost")
    return f"{here.scheme}://{here.hostname}:{API_PORT}"


def qr_code(link: str) -> None:
    st.image(segno.make(link, error="m").svg_data_uri(scale=6, border=2), width=220)


def app_link_panel() -> None:
    """The app's address and QR code, for a phone to open (Predict page)."""
    link = f"{api_address()}/app/"
    with st.expander(_("On a phone, even offline: the phone app"),
                     icon=":material/smartphone:"):
        st.caption(_("Scan this with the phone's camera. The app answers on the server when "
                     "it can and on the phone when offline; what it answered offline reaches "
                     "this dashboard once the phone is back online (after an operator has "
                     "enrolled it)."))
        qr_code(link)
        st.code(link, language=None)


def enrol_panel() -> None:
    """Admins: a device key for a phone, shown once as the QR code that enrols it."""
    st.markdown(_("**Enrol a phone** (a device key: it may only predict and sync what it "
                  "answered offline)"))
    with st.form("enrol_phone"):
        name = st.text_input(_("The phone's name (a key name, e.g. farm-phone-3)"))
        if st.form_submit_button(_("Create its key"), icon=":material/qr_code_2:"):
            with state.shown_errors():
                key, secret = state.act(create_key, name=name, role="device", rate_limit=None)
                link = api_address() + enrol_url(secret)
                st.success(_("Open this on the phone (scan it): the link holds the key and is "
                             "shown only now. Revoke the key if the phone is lost."),
                           icon=":material/key:")
                qr_code(link)
                st.code(link, language=None)
