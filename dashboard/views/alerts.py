"""Alerts: what needs a person now, what was sent to whom, and where messages go."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.app import (
    acknowledge_alert,
    add_alert_channel,
    alert_deliveries,
    alert_rules,
    list_alert_channels,
    list_alert_episodes,
    send_test_alert,
)
from core.errors import CoreError
from dashboard import state

st.title("Alerts")
backends = state.backends()
user, now = state.current_user(), state.now()
st.caption("The monitor (`python -m core monitor run`, started by `make serve`) checks the "
           "rules on every pass and sends one message when an alert starts, one when it "
           "resolves, and reminders only as often as the rule says.")

episodes = list_alert_episodes(backends, actor=user, now=now)
open_episodes = [e for e in episodes if e.open]
st.header("Open")
if not open_episodes:
    st.success("Nothing needs attention.", icon=":material/check_circle:")
for episode in open_episodes:
    with st.container(border=True):
        state_note = ("acknowledged by " + episode.acknowledged_by if episode.acknowledged_by
                      else "silenced until " + episode.silenced_until
                      if episode.silenced(now) else "firing")
        st.markdown(f"**{episode.rule}** · {episode.subject} · since {episode.started_at} · "
                    f"*{state_note}*\n\n{episode.summary}")
        if state.allowed("alerts"):
            cells = st.columns([3, 1, 1, 1])
            reason = cells[0].text_input("Reason (required; audited)",
                                         key=f"reason_{episode.id}")
            silence = cells[1].selectbox("Silence for", ["1h", "4h", "1d", "7d"],
                                         key=f"for_{episode.id}")
            try:
                if cells[2].button("Acknowledge", key=f"ack_{episode.id}",
                                   icon=":material/done:"):
                    acknowledge_alert(backends, episode.id, actor=user, reason=reason, now=now)
                    st.rerun()
                if cells[3].button("Silence", key=f"silence_{episode.id}",
                                   icon=":material/notifications_off:"):
                    hours = {"1h": 1, "4h": 4, "1d": 24, "7d": 168}[silence]
                    acknowledge_alert(backends, episode.id, actor=user, reason=reason, now=now,
                                      silence_for=timedelta(hours=hours))
                    st.rerun()
            except CoreError as error:
                st.error(str(error))
if open_episodes and not state.allowed("alerts"):
    st.caption("Operators and reviewers acknowledge or silence alerts: sign in (sidebar).")

st.header("History")
if episodes:
    st.dataframe(pd.DataFrame([{
        "episode": e.id, "rule": e.rule, "subject": e.subject, "started": e.started_at,
        "resolved": e.resolved_at or "open", "summary": e.summary} for e in episodes]),
        hide_index=True, width="stretch", height=300)
else:
    st.caption("No alert has fired yet.")

st.header("Messages")
deliveries = alert_deliveries(backends, actor=user, now=now)
if deliveries:
    st.dataframe(pd.DataFrame([{
        "message": d.id, "queued": d.created_at, "channel": d.channel, "state": d.state,
        "status": d.status, "attempts": d.attempts,
        "last attempt": attempts[-1].at if attempts else "",
        "last result": (attempts[-1].status if attempts else "")
        + (f": {attempts[-1].error}" if attempts and attempts[-1].error else "")}
        for d, attempts in deliveries]), hide_index=True, width="stretch", height=300)
else:
    st.caption("No message sent yet.")

st.header("Channels")
channels = list_alert_channels(backends, actor=user, now=now)
if channels:
    st.dataframe(pd.DataFrame([c.as_dict() for c in channels]), hide_index=True,
                 width="stretch")
else:
    st.caption("No channel yet: alerts are recorded here but sent nowhere.")
if state.allowed("manage_alerts"):
    for channel in channels:
        if st.button(f"Send a test message to {channel.name}", key=f"test_{channel.name}"):
            delivery, attempts = send_test_alert(backends, actor=user, name=channel.name,
                                                 now=now)
            if delivery.status == "delivered":
                st.success(f"Delivered to {channel.name}.")
            else:
                st.error(f"Not delivered: {attempts[-1].error}. The monitor retries it.")
    with st.form("add_channel"):
        st.markdown("**Add a channel** (admins; audited)")
        cells = st.columns([1, 1, 2])
        name = cells[0].text_input("Name")
        kind = cells[1].selectbox("Kind", ["webhook", "slack", "email"])
        target = cells[2].text_input("URL, or e-mail address")
        cells = st.columns(3)
        secret = cells[0].text_input("Webhook secret (signs X-Signature)", type="password")
        smtp = cells[1].text_input("SMTP HOST:PORT (e-mail)")
        smtp_user = cells[2].text_input("SMTP user (password: $SMTP_PASSWORD)")
        if st.form_submit_button("Add channel", icon=":material/add_alert:"):
            try:
                add_alert_channel(backends, actor=user, name=name, now=now,
                                  webhook=target if kind == "webhook" else None,
                                  secret=secret or None,
                                  slack=target if kind == "slack" else None,
                                  email=target if kind == "email" else None,
                                  smtp=smtp or None, smtp_user=smtp_user or None)
            except CoreError as error:
                st.error(str(error))
            else:
                st.rerun()
else:
    st.caption("Admins add channels (here or with `python -m core alerts add-channel`).")

with st.expander("Rules", icon=":material/rule:"):
    rules = alert_rules(backends, actor=user, now=now)
    st.dataframe(pd.DataFrame([{
        "rule": name, "kind": rule["kind"], "meaning": rule["meaning"],
        "settings": ", ".join(f"{k}={v}" for k, v in rule["settings"].items())}
        for name, rule in rules.items()]), hide_index=True, width="stretch")
    st.caption("Admins override settings per model: `python -m core alerts set-rule RULE "
               "KEY=VALUE --reason ...`.")
