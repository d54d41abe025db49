"""Drift: does production traffic still look like what the model was trained on?"""

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.app import (
    SCENARIOS,
    SOURCE_KINDS,
    STATISTICS,
    drift_view,
    last_prediction_id,
    simulate,
    timeline,
)
from core.errors import CoreError
from dashboard import charts, state

st.title("Drift")
versions = state.versions_or_stop()
backends = state.backends()
settings = st.columns([2, 2, 1])
chosen = state.version_selector(versions, settings[0])
sources = settings[1].multiselect(
    "Sources", list(SOURCE_KINDS), default=list(SOURCE_KINDS),
    help="api: the serving API; upload and camera: this dashboard; cli: python -m core "
         "predict; simulation: simulated traffic.")
window_size = settings[2].number_input("Window (last N predictions)", min_value=30,
                                       max_value=10_000, value=500, step=50)

with st.expander("Simulate incoming traffic", icon=":material/science:"):
    st.caption("Streams test images, transformed the way a camera could change them, "
               "through the champion as logged production traffic (with true labels).")
    form = st.columns([2, 1, 1, 1])
    scenario = form[0].selectbox("Scenario", list(SCENARIOS),
                                 format_func=lambda s: f"{s}: {SCENARIOS[s].description}")
    spec = SCENARIOS[scenario]
    severity = form[1].number_input("Severity", min_value=spec.min_severity,
                                    max_value=spec.max_severity,
                                    value=spec.default_severity, key=f"severity_{scenario}")
    count = form[2].number_input("Images", min_value=30, max_value=5_000, value=500, step=50)
    seed = form[3].number_input("Seed", min_value=0, value=0, step=1)
    allowed = state.allowed("simulate")
    if not allowed:
        st.caption("Operators simulate traffic: sign in as one (sidebar).")
    if st.button("Run simulation", type="primary", icon=":material/play_arrow:",
                 disabled=not allowed):
        bar = st.progress(0.0, text="Starting…")
        try:
            result = simulate(
                backends, actor=state.current_user(), scenario=scenario,
                n=int(count), severity=float(severity), seed=int(seed), clock=state.now,
                on_progress=lambda done, total: bar.progress(
                    done / total, text=f"{done} / {total} images"))
            st.success(f"Logged {result.n} predictions of version {result.version} "
                       f"({result.scenario}, severity {result.severity:g}); accuracy on them "
                       f"{result.accuracy:.1%}.", icon=":material/check:")
        except CoreError as error:
            st.error(str(error))


@st.cache_data(show_spinner="Computing drift statistics…", max_entries=16)
def compute(database: str, version: int, logged: int, window: int, actor: str,
            kinds: tuple[str, ...]):
    """The current window's report. ``database`` and ``logged`` are only cache keys: the
    log only grows, so a new last id means new traffic and a fresh computation."""
    return drift_view(backends, version, actor=actor, now=state.now(), window=window,
                      sources=kinds)


def show_over_time() -> None:
    """Drift over real time, from the monitor's snapshots of closed hours and days."""
    st.subheader("Over time")
    cells = st.columns([2, 3])
    choice = cells[0].segmented_control(
        "Range", ["Last 24 h", "Last 30 days", "Custom"], default="Last 24 h",
        key="drift_range")
    since = until = None
    range_ = {"Last 24 h": "24h", "Last 30 days": "30d"}.get(choice or "", "custom")
    if range_ == "custom":
        today = state.now().date()
        picked = cells[1].date_input("From, to (UTC days)",
                                     value=(today - timedelta(days=7), today))
        if not isinstance(picked, tuple) or len(picked) != 2:
            st.caption("Choose both ends of the range.")
            return
        since = datetime.combine(picked[0], time(), tzinfo=state.now().tzinfo)
        until = datetime.combine(picked[1] + timedelta(days=1), time(),
                                 tzinfo=state.now().tzinfo)
    try:
        view = timeline(backends, actor=state.current_user(), now=state.now(), range_=range_,
                        since=since, until=until)
    except CoreError as error:
        st.error(str(error))
        return
    mine = [s for s in view.snapshots if s.version == chosen]
    if not any(s.drift for s in mine):
        adjective = {"hour": "hourly", "day": "daily"}[view.period]
        st.caption(f"No {adjective} snapshots of v{chosen} in this range yet. The monitor "
                   "summarizes each closed hour and day: run `python -m core monitor run` "
                   "(`make serve` starts it beside the API).")
    else:
        st.plotly_chart(charts.snapshot_timeline(mine, list(STATISTICS), view.deployments),
                        width="stretch")
        st.caption(f"One point per {view.period} (UTC, all sources). Shaded: warn (orange) "
                   "and alert (red) bands; p-values on a log scale. Dashed lines: "
                   "promotions, rollbacks and traffic-policy changes.")
        st.plotly_chart(charts.accuracy_timeline(mine, view.deployments), width="stretch")
    if view.pending_since:
        st.caption(f"Periods from {view.pending_since} are not summarized yet.")


def show_report() -> None:
    if not sources:
        st.info("Choose at least one source.", icon=":material/info:")
        return
    try:
        logged = last_prediction_id(backends, actor=state.current_user(), now=state.now())
        view = compute(backends.config.effective_database_url, chosen, logged,
                       int(window_size), state.current_user(), tuple(sources))
    except CoreError as error:
        st.info(str(error), icon=":material/info:")
        return
    report, reference, current = view.report, view.reference, view.current
    if report.alert:
        st.error("**Drift alert** on the last {} predictions of v{}:\n\n{}".format(
            report.n, report.version, "\n".join(f"- {r}" for r in report.reasons)),
            icon=":material/warning:")
    else:
        st.success(f"No drift alert on the last {report.n} predictions of v{report.version}.",
                   icon=":material/check_circle:")
    cells = st.columns(4)
    cells[0].metric("Predictions in window", report.n)
    cells[1].metric("Reference accuracy", f"{report.reference_accuracy:.1%}",
                    help="On the validation split, when the version was registered.")
    cells[2].metric("Estimated accuracy", f"{report.estimated_accuracy:.1%}",
                    delta=f"{(report.estimated_accuracy - report.reference_accuracy) * 100:+.1f} pts",
                    help="Label-free (CBPE): the mean of confidences calibrated on validation.")
    cells[3].metric("Realized accuracy",
                    "—" if report.realized_accuracy is None else f"{report.realized_accuracy:.1%}",
                    help=f"Over the {report.labelled} predictions with a known true label.")
    st.caption(f"From {report.window_start} to {report.window_end} (UTC).")

    table = pd.DataFrame([{"statistic": s.name, "value": s.value, "warn": s.warn,
                           "alert": s.threshold, "status": s.status, "meaning": s.meaning}
                          for s in report.statistics])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(format="%.4g")})

    st.subheader("Reference versus current")
    left, right = st.columns(2)
    left.plotly_chart(charts.compare_histograms(reference.confidence, current.confidence,
                                                "top-class confidence"), width="stretch")
    right.plotly_chart(charts.compare_histograms(reference.statistics["brightness"],
                                                 current.statistics["brightness"],
                                                 "image brightness"), width="stretch")
    left, right = st.columns(2)
    class_names = next(v for v in versions if v.version == chosen).class_names
    with left:
        st.markdown("**Predicted-class mix**")
        st.plotly_chart(charts.class_mix(class_names, report.details["reference_class_mix"],
                                         report.details["current_class_counts"]),
                        width="stretch")
    with right:
        st.markdown("**Embeddings (PCA of the penultimate layer)**")
        st.plotly_chart(charts.embedding_scatter(view.reference_2d, view.current_2d),
                        width="stretch")


auto = st.toggle("Refresh every 10 s", help="Re-reads the log without blocking other pages.")
# A fragment reruns only this part of the page, on its own timer.
st.fragment(show_report, run_every="10s" if auto else None)()
show_over_time()
