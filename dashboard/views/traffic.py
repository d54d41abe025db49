"""Traffic: what the serving API answered, how fast and how often it failed, per version and
variant; and the traffic policy (shadow or canary a candidate), set by reviewers."""

from datetime import timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from core.app import (
    alert_rules,
    device_traffic,
    set_traffic,
    timeline,
    traffic_over_time,
    traffic_status,
)
from core.app.vocabulary import TRAFFIC_MODES
from core.errors import CoreError
from dashboard import charts as draw
from dashboard import i18n, state
from dashboard.i18n import _, term

st.title(_("Traffic"))
versions = state.versions_or_stop()
backends = state.backends()
st.caption(_("Requests to the serving API (`python -m core serve`): TF Serving's "
             "`/v1/models/...:predict` and `/v1/predict`. Closed hours and days come from the "
             "monitor's snapshots; dashed lines mark promotions, rollbacks and policy "
             "changes."))

status = state.act(traffic_status)
policy = status.policy
MODES = {"off": _("off"), "shadow": _("shadow"), "canary": _("canary")}
what = {"off": _("the champion answers every request"),
        "shadow": _("the champion answers; v{candidate} also predicts every request (logged, "
                    "never answered)"),
        "canary": _("v{candidate} answers {percent} of requests")}
line = _("**Policy: {mode}** — {what}.").format(
    mode=MODES[policy.mode],
    what=what[policy.mode].format(candidate=policy.candidate, percent=f"{policy.percent}%"))
if policy.mode != "off" and not status.active:
    line += " " + _("Inactive: v{candidate} is no longer a candidate, so the champion "
                    "answers.").format(candidate=policy.candidate)
if policy.set_by:  # the reason is the reviewer's own words, in their language
    line += " " + _("Set {at} by {who}:").format(at=i18n.moment(policy.set_at),
                                                  who=policy.set_by)
    line += " “" + i18n.core_sentence(policy.reason) + "”"
st.markdown(line, unsafe_allow_html=True)

candidates = [v.version for v in versions if v.status == "candidate"]
if state.allowed("traffic"):
    with st.form("traffic"):
        st.markdown(_("**Change the policy** (every server follows within a few seconds)"))
        cells = st.columns([1, 1, 1])
        mode = cells[0].selectbox(_("Mode"), TRAFFIC_MODES, format_func=i18n.shown_by(MODES),
                                  index=TRAFFIC_MODES.index(policy.mode))
        options: list[int | None] = [*candidates] or [None]
        candidate = cells[1].selectbox(_("Candidate"), options,
                                       format_func=lambda n: "—" if n is None else f"v{n}")
        percent = cells[2].number_input(_("Canary percent"), min_value=1, max_value=100,
                                        value=policy.percent or 10)
        reason = st.text_input(_("Reason (required; kept in the audit log)"))
        if st.form_submit_button(_("Set policy"), icon=":material/alt_route:"):
            with state.shown_errors():
                set_traffic(backends, actor=state.current_user(), mode=mode,
                            candidate=None if mode == "off" else candidate,
                            percent=int(percent) if mode == "canary" else None,
                            reason=reason, now=state.now())
                st.rerun()
else:
    st.caption(_("Reviewers set the traffic policy: sign in as one (sidebar)."))

# Phones' offline answers are predictions, not API requests: counted here, charted on Drift.
for phones in state.act(device_traffic):
    st.caption(_("Phones answered {n} photos on the device with v{version} in the last 24 "
                 "hours, synced since (the newest at {at}); the Drift and Review queue pages "
                 "include them.").format(n=i18n.number(phones.predictions),
                                         version=phones.version,
                                         at=i18n.moment(phones.last_at)))

bucket = st.segmented_control(_("Bucket"), ["hour", "day"], default="hour",
                              format_func=i18n.shown_by({"hour": _("hour"), "day": _("day")}))
span = timedelta(days=1) if bucket == "hour" else timedelta(days=30)
try:
    buckets = state.act(traffic_over_time, bucket=bucket or "hour", span=span)
except CoreError as error:
    st.error(i18n.error_text(error))
    st.stop()
if not buckets:
    st.info(_("No API traffic in this period. Start the API with `python -m core serve` and "
              "send it requests (see the README)."), icon=":material/info:")
    st.stop()
markers = state.act(timeline, range_="24h" if bucket == "hour" else "30d").deployments
# Column names are the charts' axis and legend titles: they are in the reader's language.
START, SERIES, REQUESTS, RATE, ERRORS, ERROR_RATE = (
    _("start"), _("series"), _("requests"), _("requests/s"), _("errors"), _("error rate"))
P50, P95, P99 = _("p50 ms"), _("p95 ms"), _("p99 ms")
UNROUTED = _("failed before routing")
table = pd.DataFrame([{
    START: pd.to_datetime(b.start),
    SERIES: UNROUTED if b.version is None else f"v{b.version} {term(b.variant)}",
    REQUESTS: b.requests, RATE: b.requests_per_second, ERRORS: b.errors,
    ERROR_RATE: b.error_rate, P50: b.p50_ms, P95: b.p95_ms, P99: b.p99_ms}
    for b in buckets])
answered = table[table[SERIES] != UNROUTED]
totals = st.columns(4)
totals[0].metric(_("Requests"), i18n.number(int(table[REQUESTS].sum())))
totals[1].metric(_("Error rate"), i18n.percent(table[ERRORS].sum() / table[REQUESTS].sum()))
totals[2].metric(_("Worst p99"), "—" if answered.empty
                 else _("{ms} ms").format(ms=i18n.number(answered[P99].max(), 1)))
totals[3].metric(_("Series"), table[SERIES].nunique())


rules = {name: rule["settings"] for name, rule in
         state.act(alert_rules).items()}


def with_markers(figure, alert_above: float | None = None):
    """Promotions, rollbacks and policy changes as vertical lines on a time axis; the
    alert rule's level, if given, as a red band above it."""
    draw.add_deployments(figure, markers)
    draw.numeric_dates(figure)
    if alert_above is not None:
        highest = max((float(y) for trace in figure.data for y in trace.y
                       if y is not None and y == y), default=0.0)  # y == y: not NaN
        figure.add_hrect(y0=alert_above, y1=max(alert_above * 1.5, highest),
                         fillcolor=draw.STATUS_COLOURS["alert"], opacity=0.12, line_width=0)
    return figure


def level(rule: str, key: str) -> float | None:
    return rules[rule][key] if rules[rule]["enabled"] else None


charts = st.columns(2)
charts[0].plotly_chart(with_markers(px.bar(table, x=START, y=RATE, color=SERIES,
                                           title=_("Requests per second"))), width="stretch")
errors = table.groupby(START, as_index=False)[[ERRORS, REQUESTS]].sum()
errors[ERROR_RATE] = errors[ERRORS] / errors[REQUESTS]
charts[1].plotly_chart(with_markers(px.line(errors, x=START, y=ERROR_RATE, markers=True,
                                            title=_("Error rate (all requests)")),
                                    level("error_rate", "max_rate")), width="stretch")
PERCENTILE, MS = _("percentile"), _("ms")
latency = answered.melt(id_vars=[START, SERIES], value_vars=[P50, P95, P99],
                        var_name=PERCENTILE, value_name=MS)
st.plotly_chart(with_markers(px.line(latency, x=START, y=MS, color=SERIES,
                                     line_dash=PERCENTILE, markers=True,
                                     title=_("Latency of answered requests (red: above the "
                                             "p95 alert level)")),
                             level("latency_p95", "max_ms")), width="stretch")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={RATE: st.column_config.NumberColumn(format="%.3g"),
                            ERROR_RATE: st.column_config.NumberColumn(format="%.1%%")})
