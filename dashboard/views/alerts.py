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
    monitor_problems,
    send_test_alert,
)
from dashboard import i18n, state
from dashboard.i18n import _

st.title(_("Alerts"))
backends = state.backends()
user, now = state.current_user(), state.now()
st.caption(_("The monitor (`python -m core monitor run`, started by `make serve`) checks the "
             "rules on every pass and sends one message when an alert starts, one when it "
             "resolves, and reminders only as often as the rule says."))

if state.allowed("alerts"):
    # What failed in the monitor's last pass: the rest of the pass went on without it.
    for item, at, error in monitor_problems(backends, actor=user, now=now):
        # The item and error are core's own English (searchable in the monitor's log).
        st.warning(_("The monitor's last pass could not complete {item} ({at}): "
                     "{error}").format(item=item, at=i18n.moment(at), error=error),
                   icon=":material/warning:")

episodes = list_alert_episodes(backends, actor=user, now=now)
open_episodes = [e for e in episodes if e.open]
st.header(_("Open"))
if not open_episodes:
    st.success(_("Nothing needs attention."), icon=":material/check_circle:")
for episode in open_episodes:
    with st.container(border=True):
        state_note = (_("acknowledged by {who}").format(who=episode.acknowledged_by)
                      if episode.acknowledged_by
                      else _("silenced until {at}").format(at=i18n.moment(episode.silenced_until or now))
                      if episode.silenced(now) else _("firing"))
        # The rule and subject are names; the summary is core's own measured sentence.
        st.markdown(f"**{episode.rule}** · {i18n.core_sentence(episode.subject)} · "
                    + _("since {at}").format(at=i18n.moment(episode.started_at))
                    + f" · *{state_note}*\n\n" + i18n.core_sentence(episode.summary),
                    unsafe_allow_html=True)
        if state.allowed("alerts"):
            cells = st.columns([3, 1, 1, 1])
            reason = cells[0].text_input(_("Reason (required; audited)"),
                                         key=f"reason_{episode.id}")
            silence = cells[1].selectbox(_("Silence for"), ["1h", "4h", "1d", "7d"],
                                         key=f"for_{episode.id}")
            with state.shown_errors():
                if cells[2].button(_("Acknowledge"), key=f"ack_{episode.id}",
                                   icon=":material/done:"):
                    acknowledge_alert(backends, episode.id, actor=user, reason=reason, now=now)
                    st.rerun()
                if cells[3].button(_("Silence"), key=f"silence_{episode.id}",
                                   icon=":material/notifications_off:"):
                    hours = {"1h": 1, "4h": 4, "1d": 24, "7d": 168}[silence]
                    acknowledge_alert(backends, episode.id, actor=user, reason=reason, now=now,
                                      silence_for=timedelta(hours=hours))
                    st.rerun()
if open_episodes and not state.allowed("alerts"):
    st.caption(_("Operators and reviewers acknowledge or silence alerts: sign in (sidebar)."))

# The tables show what core recorded (rules, states, results) under translated headings.
st.header(_("History"))
if episodes:
    st.dataframe(pd.DataFrame([{
        _("episode"): e.id, _("rule"): e.rule, _("subject"): e.subject,
        _("started"): e.started_at, _("resolved"): e.resolved_at or _("open"),
        _("summary"): e.summary} for e in episodes]),
        hide_index=True, width="stretch", height=300)
else:
    st.caption(_("No alert has fired yet."))

st.header(_("Messages"))
deliveries = alert_deliveries(backends, actor=user, now=now)
if deliveries:
    st.dataframe(pd.DataFrame([{
        _("message"): d.id, _("queued"): d.created_at, _("channel"): d.channel,
        _("state"): d.state, _("status"): d.status, _("attempts"): d.attempts,
        _("last attempt"): attempts[-1].at if attempts else "",
        _("last result"): (attempts[-1].status if attempts else "")
        + (f": {attempts[-1].error}" if attempts and attempts[-1].error else "")}
        for d, attempts in deliveries]), hide_index=True, width="stretch", height=300)
else:
    st.caption(_("No message sent yet."))

st.header(_("Channels"))
channels = list_alert_channels(backends, actor=user, now=now)
if channels:
    st.dataframe(pd.DataFrame([c.as_dict() for c in channels]), hide_index=True,
                 width="stretch")
else:
    st.caption(_("No channel yet: alerts are recorded here but sent nowhere."))
if state.allowed("manage_alerts"):
    for channel in channels:
        if st.button(_("Send a test message to {name}").format(name=channel.name),
                     key=f"test_{channel.name}"):
            delivery, attempts = send_test_alert(backends, actor=user, name=channel.name,
                                                 now=now)
            if delivery.status == "delivered":
                st.success(_("Delivered to {name}.").format(name=channel.name))
            else:
                st.markdown(":red[" + _("Not delivered (the monitor retries it):") + "] "
                            + i18n.core_sentence(attempts[-1].error or ""),
                            unsafe_allow_html=True)
    with st.form("add_channel"):
        st.markdown(_("**Add a channel** (admins; audited)"))
        cells = st.columns([1, 1, 2])
        name = cells[0].text_input(_("Name"))
        kind = cells[1].selectbox(_("Kind"), ["webhook", "slack", "email"])
        target = cells[2].text_input(_("URL, or e-mail address"))
        more = st.columns(3)
        secret = more[0].text_input(_("Webhook secret (signs X-Signature)"), type="password")
        smtp = more[1].text_input(_("SMTP HOST:PORT (e-mail)"))
        smtp_user = more[2].text_input(_("SMTP user (password: $SMTP_PASSWORD)"))
        if st.form_submit_button(_("Add channel"), icon=":material/add_alert:"):
            with state.shown_errors():
                add_alert_channel(backends, actor=user, name=name, now=now,
                                  webhook=target if kind == "webhook" else None,
                                  secret=secret or None,
                                  slack=target if kind == "slack" else None,
                                  email=target if kind == "email" else None,
                                  smtp=smtp or None, smtp_user=smtp_user or None)
                st.rerun()
else:
    st.caption(_("Admins add channels (here or with `python -m core alerts add-channel`)."))

with st.expander(_("Rules"), icon=":material/rule:"):
    rules = alert_rules(backends, actor=user, now=now)
    st.dataframe(pd.DataFrame([{
        _("rule"): name, _("kind"): rule["kind"], _("meaning"): rule["meaning"],
        _("settings"): ", ".join(f"{k}={v}" for k, v in rule["settings"].items())}
        for name, rule in rules.items()]), hide_index=True, width="stretch")
    st.caption(_("Admins override settings per model: `python -m core alerts set-rule RULE "
                 "KEY=VALUE --reason ...`."))
