"""Drift: does production traffic still look like what the model was trained on?"""

import pandas as pd
import streamlit as st

from core.app import SCENARIOS, SOURCE_KINDS, STATISTICS, drift_view, prediction_count, simulate
from core.errors import CoreError
from dashboard import charts, state

st.title("Drift")
versions = state.versions_or_stop()
backends = state.backends()
settings = st.columns([2, 2, 1, 1])
chosen = state.version_selector(versions, settings[0])
sources = settings[1].multiselect(
    "Sources", list(SOURCE_KINDS), default=list(SOURCE_KINDS),
    help="api: the serving API; upload and camera: this dashboard; cli: python -m core "
         "predict; simulation: simulated traffic.")
window_size = settings[2].number_input("Window (last N predictions)", min_value=30,
                                       max_value=10_000, value=500, step=50)
chunk_size = settings[3].number_input("Points over time: N per point", min_value=30,
                                      max_value=5_000, value=100, step=10)

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
def compute(database: str, version: int, logged: int, window: int, chunk: int, actor: str,
            kinds: tuple[str, ...]):
    """Everything the page draws. ``database`` and ``logged`` are only cache keys: the log
    only grows, so a new count means new traffic and a fresh computation."""
    return drift_view(backends, version, actor=actor, now=state.now(), window=window,
                      chunk=chunk, sources=kinds)


def show_report() -> None:
    if not sources:
        st.info("Choose at least one source.", icon=":material/info:")
        return
    try:
        logged = prediction_count(backends, actor=state.current_user(), now=state.now(),
                                  version=chosen)
        view = compute(backends.config.effective_database_url, chosen, logged,
                       int(window_size), int(chunk_size), state.current_user(),
                       tuple(sources))
    except CoreError as error:
        st.info(str(error), icon=":material/info:")
        return
    report, series, reference, current = view.report, view.series, view.reference, view.current
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

    st.subheader("Over time")
    if len(series) >= 2:
        st.plotly_chart(charts.drift_over_time(series, list(STATISTICS)), width="stretch")
        st.caption(f"Each point: {int(chunk_size)} consecutive predictions. Dotted lines: "
                   "warn (orange) and alert (red) levels; p-values on a log scale.")
    else:
        st.caption("Log more predictions to see the statistics over time.")

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
