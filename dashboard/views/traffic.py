"""Traffic: what the serving API answered, how fast and how often it failed, per version and
variant; and the traffic policy (shadow or canary a candidate), set by reviewers."""

from datetime import timedelta

import pandas as pd
import plotly.express as px
import streamlit as st

from core.app import (
    TRAFFIC_MODES,
    alert_rules,
    set_traffic,
    timeline,
    traffic_over_time,
    traffic_status,
)
from core.errors import CoreError
from dashboard import charts as draw
from dashboard import state

st.title("Traffic")
versions = state.versions_or_stop()
backends = state.backends()
st.caption("Requests to the serving API (`python -m core serve`): TF Serving's "
           "`/v1/models/...:predict` and `/v1/predict`. Closed hours and days come from the "
           "monitor's snapshots; dashed lines mark promotions, rollbacks and policy changes.")

status = traffic_status(backends, actor=state.current_user(), now=state.now())
policy = status.policy
what = {"off": "the champion answers every request",
        "shadow": f"the champion answers; v{policy.candidate} also predicts every request "
                  "(logged, never answered)",
        "canary": f"v{policy.candidate} answers {policy.percent}% of requests"}
line = f"**Policy: {policy.mode}** — {what[policy.mode]}."
if policy.mode != "off" and not status.active:
    line += f" Inactive: v{policy.candidate} is no longer a candidate, so the champion answers."
if policy.set_by:
    line += f" Set {policy.set_at} by {policy.set_by}: “{policy.reason}”"
st.markdown(line)

candidates = [v.version for v in versions if v.status == "candidate"]
if state.allowed("traffic"):
    with st.form("traffic"):
        st.markdown("**Change the policy** (every server follows within a few seconds)")
        cells = st.columns([1, 1, 1])
        mode = cells[0].selectbox("Mode", TRAFFIC_MODES, index=TRAFFIC_MODES.index(policy.mode))
        candidate = cells[1].selectbox("Candidate", candidates or [None],
                                       format_func=lambda n: "—" if n is None else f"v{n}")
        percent = cells[2].number_input("Canary percent", min_value=1, max_value=100,
                                        value=policy.percent or 10)
        reason = st.text_input("Reason (required; kept in the audit log)")
        if st.form_submit_button("Set policy", icon=":material/alt_route:"):
            try:
                set_traffic(backends, actor=state.current_user(), mode=mode,
                            candidate=None if mode == "off" else candidate,
                            percent=int(percent) if mode == "canary" else None,
                            reason=reason, now=state.now())
            except CoreError as error:
                st.error(str(error))
            else:
                st.rerun()
else:
    st.caption("Reviewers set the traffic policy: sign in as one (sidebar).")

bucket = st.segmented_control("Bucket", ["hour", "day"], default="hour")
span = timedelta(days=1) if bucket == "hour" else timedelta(days=30)
try:
    buckets = traffic_over_time(backends, actor=state.current_user(), now=state.now(),
                                bucket=bucket or "hour", span=span)
except CoreError as error:
    st.error(str(error))
    st.stop()
if not buckets:
    st.info("No API traffic in this period. Start the API with `python -m core serve` and "
            "send it requests (see the README).", icon=":material/info:")
    st.stop()
markers = timeline(backends, actor=state.current_user(), now=state.now(),
                   range_="24h" if bucket == "hour" else "30d").deployments
table = pd.DataFrame([{
    "start": pd.to_datetime(b.start), "series": ("failed before routing" if b.version is None
                                 else f"v{b.version} {b.variant}"),
    "requests": b.requests, "requests/s": b.requests_per_second, "errors": b.errors,
    "error rate": b.error_rate, "p50 ms": b.p50_ms, "p95 ms": b.p95_ms, "p99 ms": b.p99_ms}
    for b in buckets])
answered = table[table["series"] != "failed before routing"]
totals = st.columns(4)
totals[0].metric("Requests", int(table["requests"].sum()))
totals[1].metric("Error rate", f"{table['errors'].sum() / table['requests'].sum():.1%}")
totals[2].metric("Worst p99", "—" if answered.empty else f"{answered['p99 ms'].max():.1f} ms")
totals[3].metric("Series", table["series"].nunique())


rules = {name: rule["settings"] for name, rule in
         alert_rules(backends, actor=state.current_user(), now=state.now()).items()}


def with_markers(figure, alert_above: float | None = None):
    """Promotions, rollbacks and policy changes as vertical lines on a time axis; the
    alert rule's level, if given, as a red band above it."""
    draw.add_deployments(figure, markers)
    if alert_above is not None:
        highest = max((float(y) for trace in figure.data for y in trace.y
                       if y is not None and y == y), default=0.0)  # y == y: not NaN
        figure.add_hrect(y0=alert_above, y1=max(alert_above * 1.5, highest),
                         fillcolor=draw.STATUS_COLOURS["alert"], opacity=0.12, line_width=0)
    return figure


def level(rule: str, key: str) -> float | None:
    return rules[rule][key] if rules[rule]["enabled"] else None


charts = st.columns(2)
charts[0].plotly_chart(with_markers(px.bar(table, x="start", y="requests/s", color="series",
                                           title="Requests per second")), width="stretch")
errors = table.groupby("start", as_index=False)[["errors", "requests"]].sum()
errors["error rate"] = errors["errors"] / errors["requests"]
charts[1].plotly_chart(with_markers(px.line(errors, x="start", y="error rate", markers=True,
                                            title="Error rate (all requests)"),
                                    level("error_rate", "max_rate")), width="stretch")
latency = answered.melt(id_vars=["start", "series"], value_vars=["p50 ms", "p95 ms", "p99 ms"],
                        var_name="percentile", value_name="ms")
st.plotly_chart(with_markers(px.line(latency, x="start", y="ms", color="series",
                                     line_dash="percentile", markers=True,
                                     title="Latency of answered requests (red: above the "
                                           "p95 alert level)"),
                             level("latency_p95", "max_ms")), width="stretch")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"requests/s": st.column_config.NumberColumn(format="%.3g"),
                            "error rate": st.column_config.NumberColumn(format="%.1%%")})
