"""Drift: does production traffic still look like what the model was trained on?"""

import functools
from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.app import drift_report_html, drift_view, last_prediction_id, simulate, timeline
from core.app.vocabulary import SCENARIOS, SOURCE_KINDS, STATISTICS
from core.errors import CoreError
from dashboard import charts, i18n, state
from dashboard.i18n import _, class_name, term

st.title(_("Drift"))
versions = state.versions_or_stop()
backends = state.backends()
settings = st.columns([2, 2, 1])
chosen = state.version_selector(versions, settings[0])
sources = settings[1].multiselect(
    _("Sources"), list(SOURCE_KINDS), default=list(SOURCE_KINDS),
    format_func=i18n.shown_by(i18n.labels(SOURCE_KINDS, term)), placeholder=_("Choose at least one"),
    help=_("api: the serving API; upload and camera: this dashboard; cli: python -m core "
           "predict; simulation: simulated traffic."))
window_size = settings[2].number_input(_("Window (last N predictions)"), min_value=30,
                                       max_value=10_000, value=500, step=50)

with st.expander(_("Simulate incoming traffic"), icon=":material/science:"):
    st.caption(_("Streams test images, transformed the way a camera could change them, "
                 "through the champion as logged production traffic (with true labels)."))
    form = st.columns([2, 1, 1, 1])
    scenario = form[0].selectbox(_("Scenario"), list(SCENARIOS),
                                 format_func=i18n.shown_by({s: f"{s}: {_(spec.description)}"
                                              for s, spec in SCENARIOS.items()}))
    spec = SCENARIOS[scenario]
    severity = form[1].number_input(_("Severity"), min_value=spec.min_severity,
                                    max_value=spec.max_severity,
                                    value=spec.default_severity, key=f"severity_{scenario}")
    count = form[2].number_input(_("Images"), min_value=30, max_value=5_000, value=500,
                                 step=50)
    seed = form[3].number_input(_("Seed"), min_value=0, value=0, step=1)
    allowed = state.allowed("simulate")
    if not allowed:
        st.caption(_("Operators simulate traffic: sign in as one (sidebar)."))
    if st.button(_("Run simulation"), type="primary", icon=":material/play_arrow:",
                 disabled=not allowed):
        bar = st.progress(0.0, text=_("Starting…"))

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=_("{done} / {total} images").format(done=done,
                                                                                total=total))

        with state.shown_errors():
            result = simulate(
                backends, actor=state.current_user(), scenario=scenario,
                n=int(count), severity=float(severity), seed=int(seed), clock=state.now,
                on_progress=progress)
            st.success(_("Logged {n} predictions of version {version} ({scenario}, severity "
                         "{severity}); accuracy on them {accuracy}.").format(
                n=i18n.number(result.n), version=result.version, scenario=result.scenario,
                severity=f"{result.severity:g}", accuracy=i18n.percent(result.accuracy)),
                icon=":material/check:")


@st.cache_data(show_spinner=False, max_entries=16)
def compute(database: str, version: int, logged: int, window: int, actor: str,
            kinds: tuple[str, ...]):
    """The current window's report. ``database`` and ``logged`` are only cache keys: the
    log only grows, so a new last id means new traffic and a fresh computation."""
    return drift_view(backends, version, actor=actor, now=state.now(), window=window,
                      sources=kinds)


def show_over_time() -> None:
    """Drift over real time, from the monitor's snapshots of closed hours and days."""
    st.subheader(_("Over time"))
    cells = st.columns([2, 3])
    ranges = {"24h": _("Last 24 h"), "30d": _("Last 30 days"), "custom": _("Custom")}
    range_ = cells[0].segmented_control(_("Range"), list(ranges), format_func=i18n.shown_by(ranges),
                                        default="24h", key="drift_range") or "custom"
    since = until = None
    if range_ == "custom":
        today = state.now().date()
        picked = cells[1].date_input(_("From, to (UTC days)"),
                                     value=(today - timedelta(days=7), today))
        if not isinstance(picked, tuple) or len(picked) != 2:
            st.caption(_("Choose both ends of the range."))
            return
        since = datetime.combine(picked[0], time(), tzinfo=state.now().tzinfo)
        until = datetime.combine(picked[1] + timedelta(days=1), time(),
                                 tzinfo=state.now().tzinfo)
    try:
        view = state.act(timeline, range_=range_, since=since, until=until)
    except CoreError as error:
        st.error(i18n.error_text(error))
        return
    mine = [s for s in view.snapshots if s.version == chosen]
    if not any(s.drift for s in mine):
        none_yet = {"hour": _("No hourly snapshots of v{n} in this range yet."),
                    "day": _("No daily snapshots of v{n} in this range yet.")}[view.period]
        st.caption(none_yet.format(n=chosen) + " " + _(
            "The monitor summarizes each closed hour and day: run `python -m core monitor "
            "run` (`make serve` starts it beside the API)."))
    else:
        st.plotly_chart(charts.snapshot_timeline(mine, list(STATISTICS), view.deployments),
                        width="stretch")
        st.caption({"hour": _("One point per hour (UTC, all sources)."),
                    "day": _("One point per day (UTC, all sources).")}[view.period] + " " + _(
            "Shaded: warn (orange) and alert (red) bands; p-values on a log scale. Dashed "
            "lines: promotions, rollbacks and traffic-policy changes."))
        st.plotly_chart(charts.accuracy_timeline(mine, view.deployments), width="stretch")
    if view.pending_since:
        st.caption(_("Periods from {at} are not summarized yet.").format(
            at=i18n.moment(view.pending_since)))


def show_report() -> None:
    if not sources:
        st.info(_("Choose at least one source."), icon=":material/info:")
        return
    try:
        logged = state.act(last_prediction_id)
        with st.spinner(_("Computing drift statistics…")):
            view = compute(backends.config.effective_database_url, chosen, logged,
                           int(window_size), state.current_user(), tuple(sources))
    except CoreError as error:
        st.info(i18n.error_text(error), icon=":material/info:")
        return
    report, reference, current = view.report, view.reference, view.current
    if report.alert:
        st.error(_("**Drift alert** on the last {n} predictions of v{version}.").format(
            n=i18n.number(report.n), version=report.version), icon=":material/warning:")
        st.markdown("\n".join(f"- {reason}" for reason in report.alert_reasons(_)))
    else:
        st.success(_("No drift alert on the last {n} predictions of v{version}.").format(
            n=i18n.number(report.n), version=report.version), icon=":material/check_circle:")
    cells = st.columns(4)
    cells[0].metric(_("Predictions in window"), i18n.number(report.n))
    cells[1].metric(_("Reference accuracy"), i18n.percent(report.reference_accuracy),
                    help=_("On the validation split, when the version was registered."))
    cells[2].metric(_("Estimated accuracy"), i18n.percent(report.estimated_accuracy),
                    delta=i18n.points(report.estimated_accuracy - report.reference_accuracy),
                    help=_("Label-free (CBPE): the mean of confidences calibrated on "
                           "validation."))
    cells[3].metric(_("Realized accuracy"), "—" if report.realized_accuracy is None
                    else i18n.percent(report.realized_accuracy),
                    help=_("Over the {n} predictions with a known true label.").format(
                        n=report.labelled))
    st.caption(_("From {start} to {end} (UTC).").format(start=i18n.moment(report.window_start),
                                                        end=i18n.moment(report.window_end)))
    # Drawn only when clicked (a callable: it runs outside the page's run, so it gets
    # every value it needs now).
    st.download_button(
        _("Download the report (HTML)"), icon=":material/download:", on_click="ignore",
        data=functools.partial(drift_report_html, backends, actor=state.current_user(),
                               now=state.now(), version=chosen, window=int(window_size),
                               sources=tuple(sources)),
        file_name=f"drift-{backends.model}-v{chosen}.html", mime="text/html",
        help=_("One file that opens offline: the verdict, each statistic, the charts, the "
               "statistics over time and the window's most unfamiliar images."))

    table = pd.DataFrame([{_("statistic"): s.name, _("value"): s.value, _("warn"): s.warn,
                           _("alert"): s.threshold, _("status"): term(s.status),
                           _("meaning"): _(STATISTICS[s.name].meaning)}
                          for s in report.statistics])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={_("value"): st.column_config.NumberColumn(format="%.4g")})

    st.subheader(_("Reference versus current"))
    left, right = st.columns(2)
    left.plotly_chart(charts.compare_histograms(reference.confidence, current.confidence,
                                                _("top-class confidence")), width="stretch")
    right.plotly_chart(charts.compare_histograms(reference.statistics["brightness"],
                                                 current.statistics["brightness"],
                                                 _("image brightness")), width="stretch")
    left, right = st.columns(2)
    version = next(v for v in versions if v.version == chosen)
    class_names = [class_name(version.metadata.dataset.name, name)
                   for name in version.class_names]
    with left:
        st.markdown(_("**Predicted-class mix**"))
        st.plotly_chart(charts.class_mix(class_names, report.details["reference_class_mix"],
                                         report.details["current_class_counts"]),
                        width="stretch")
    with right:
        st.markdown(_("**Embeddings (PCA of the penultimate layer)**"))
        st.plotly_chart(charts.embedding_scatter(view.reference_2d, view.current_2d),
                        width="stretch")


auto = st.toggle(_("Refresh every 10 s"),
                 help=_("Re-reads the log without blocking other pages."))
# A fragment reruns only this part of the page, on its own timer.
st.fragment(show_report, run_every="10s" if auto else None)()
show_over_time()
