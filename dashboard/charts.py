"""Plotly figures shared by the pages: data in, figure out. Titles, axes and legends
are in the reader's language (``dashboard.i18n``); class names come in already shown
as the reader reads them (callers translate them with the dataset's table)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from core.app import Comparison
from dashboard.i18n import DEFAULT_LANGUAGE, _, language, term


def probability_bars(probabilities: dict[str, float], top: int = 5) -> go.Figure:
    """Horizontal bars of the ``top`` most probable classes, most probable on top."""
    ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)[:top]
    names = [name for name, _ in reversed(ranked)]
    values = [value for _, value in reversed(ranked)]
    figure = go.Figure(go.Bar(x=values, y=names, orientation="h",
                              text=[f"{v:.1%}" for v in values], textposition="auto",
                              marker_color="#4c78a8"))
    figure.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%", title=_("probability")),
                         height=60 + 40 * len(names), margin=dict(l=10, r=10, t=10, b=40))
    return figure


def confusion_matrix(matrix: list[list[int]], class_names: list[str], rows: str | None = None,
                     columns: str | None = None) -> go.Figure:
    """Counts as a heatmap: rows are true classes, columns predicted classes (or, say,
    the champion's answers against the candidate's)."""
    figure = px.imshow(matrix, x=class_names, y=class_names, text_auto=True,
                       color_continuous_scale="Blues", aspect="auto",
                       labels=dict(x=columns or _("predicted"), y=rows or _("true"),
                                   color=_("images")))
    figure.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10))
    return figure


def per_class_bars(per_class: dict[str, dict], class_label=str) -> go.Figure:
    """Grouped bars of precision, recall and F1 per class (``class_label``: how to show
    a class name)."""
    names = list(per_class)
    figure = go.Figure([
        go.Bar(name=label, x=[class_label(n) for n in names],
               y=[per_class[n][metric] for n in names])
        for metric, label in (("precision", _("precision")), ("recall", _("recall")),
                              ("f1", _("F1")))
    ])
    figure.update_layout(barmode="group", yaxis=dict(range=[0, 1], title=_("score")),
                         height=360, margin=dict(l=10, r=10, t=10, b=10))
    return figure


def training_history(history: list[dict]) -> go.Figure:
    """Loss and accuracy per epoch, training and validation."""
    epochs = [row["epoch"] for row in history]
    figure = go.Figure()
    for key, label in (("accuracy", _("training accuracy")),
                       ("val_accuracy", _("validation accuracy")),
                       ("loss", _("training loss")), ("val_loss", _("validation loss"))):
        if history and key in history[0]:
            figure.add_trace(go.Scatter(x=epochs, y=[row[key] for row in history],
                                        mode="lines+markers", name=label))
    figure.update_layout(xaxis=dict(title=_("epoch"), dtick=1), height=320,
                         margin=dict(l=10, r=10, t=10, b=10))
    return figure


STATUS_COLOURS = {"ok": "#54a24b", "warn": "#f58518", "alert": "#e45756"}


def snapshot_timeline(snapshots: list, names: list[str], deployments: list) -> go.Figure:
    """One small chart per statistic over real time: a point per period (hour or day),
    coloured by status, warn and alert bands shaded, deployments as vertical lines.

    ``snapshots``: Snapshot of one version, oldest first; ``deployments``: Deployment.
    Bands and lines are built as one list of shapes: plotly's add_hrect/add_vline
    validate the whole figure on every call (0.4 s for this chart; now ~0.05 s).
    """
    from plotly.subplots import make_subplots

    from core.app.vocabulary import STATISTICS

    columns = 3
    rows = (len(names) + columns - 1) // columns
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=names,
                           vertical_spacing=0.12, horizontal_spacing=0.08, shared_xaxes=True)
    shapes: list[dict] = []
    traces = []
    for index, name in enumerate(names):
        axis = "" if index == 0 else str(index + 1)
        # A statistic can be missing from a period (unfamiliar_rate: no OOD detector yet).
        with_drift = [s for s in snapshots if name in s.drift]
        values = [s.drift[name] for s in with_drift]
        p_value = STATISTICS[name].kind == "p_value"
        traces.append(go.Scatter(
            x=[utc(s.start) for s in with_drift],
            y=[max(v["value"], 1e-6) if p_value else v["value"] for v in values],
            mode="lines+markers", showlegend=False, line_color="#4c78a8",
            text=[_("{n} predictions").format(n=s.n) for s in with_drift], xaxis=f"x{axis}",
            yaxis=f"y{axis}",
            hovertemplate="%{x}<br>" + _("value") + " %{y:.4g}<br>%{text}<extra></extra>",
            marker_color=[STATUS_COLOURS[v["status"]] for v in values]))
        if values:
            warn, alert = values[-1]["warn"], values[-1]["alert"]
            # Bands: between warn and alert, and beyond alert (below, for p-values).
            far = 1e-6 if p_value else max(alert * 2, max(v["value"] for v in values))
            for low, high, colour in ((warn, alert, "warn"), (alert, far, "alert")):
                shapes.append(dict(type="rect", xref=f"x{axis} domain", x0=0, x1=1,
                                   yref=f"y{axis}", y0=low, y1=high, layer="below",
                                   fillcolor=STATUS_COLOURS[colour], opacity=0.12,
                                   line_width=0))
        if p_value:
            figure.layout[f"yaxis{axis}"].type = "log"
        shapes += [dict(type="line", xref=f"x{axis}", x0=utc(d.at), x1=utc(d.at),
                        yref=f"y{axis} domain", y0=0, y1=1,
                        line=dict(dash="dash", width=1,
                                  color=DEPLOYMENT_COLOURS.get(d.action, "#888")))
                   for d in deployments]
    figure.add_traces(traces)
    figure.update_layout(shapes=shapes, annotations=list(figure.layout.annotations) + [
        dict(x=utc(d.at), y=1.0, xref="x", yref="paper", showarrow=False,
             text=deployment_label(d),
             font_size=9, yanchor="bottom") for d in deployments],
        height=230 * rows, margin=dict(l=10, r=10, t=50, b=10))
    return numeric_dates(figure)


def numeric_dates(figure: go.Figure) -> go.Figure:
    """Date axes as day.month hour:minute outside English: plotly writes month names in
    English whatever the page's language."""
    if language() != DEFAULT_LANGUAGE:
        figure.update_xaxes(tickformat="%d.%m %H:%M")
    return figure


def utc(stamp: str):
    """An ISO time as a naive UTC datetime: plotly's date axes ignore time zones."""
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(stamp)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


DEPLOYMENT_COLOURS = {"promote": "#54a24b", "rollback": "#b279a2", "traffic": "#9d755d"}


def add_deployments(figure: go.Figure, deployments: list) -> None:
    """Promotions, rollbacks and traffic-policy changes as dashed vertical lines."""
    for deployment in deployments:
        at = utc(deployment.at)
        figure.add_vline(x=at, line_dash="dash", line_width=1,
                         line_color=DEPLOYMENT_COLOURS.get(deployment.action, "#888"))
        figure.add_annotation(x=at, y=1.0, yref="paper", xref="x", showarrow=False,
                              text=deployment_label(deployment), font_size=9,
                              yanchor="bottom")


def deployment_label(deployment) -> str:
    """A deployment's mark on a chart: its action in the reader's language, and its
    version (the full summary, in English, is in the audit log)."""
    return term(deployment.action) + (f" v{deployment.version}" if deployment.version else "")


def accuracy_timeline(snapshots: list, deployments: list) -> go.Figure:
    """Estimated (label-free) and realized accuracy per period, against the reference."""
    figure = go.Figure()
    times = [utc(s.start) for s in snapshots]
    figure.add_trace(go.Scatter(x=times, y=[s.estimated_accuracy for s in snapshots],
                                name=_("estimated"), mode="lines+markers"))
    figure.add_trace(go.Scatter(x=times, y=[s.realized_accuracy for s in snapshots],
                                name=_("realized (labelled)"), mode="lines+markers"))
    reference = next((s.reference_accuracy for s in snapshots if s.reference_accuracy), None)
    if reference:
        figure.add_hline(y=reference, line_dash="dot", line_color="#888",
                         annotation_text=_("validation accuracy"))
    add_deployments(figure, deployments)
    figure.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10),
                         yaxis_tickformat=".0%", legend_orientation="h")
    return numeric_dates(figure)


def compare_histograms(reference, current, title: str) -> go.Figure:
    """Reference vs current distributions of one quantity, as densities."""
    figure = go.Figure([
        go.Histogram(x=reference, name=_("reference"), histnorm="probability density",
                     opacity=0.6, nbinsx=40, marker_color="#4c78a8"),
        go.Histogram(x=current, name=_("current"), histnorm="probability density",
                     opacity=0.6, nbinsx=40, marker_color="#e45756"),
    ])
    figure.update_layout(barmode="overlay", title=title, height=300,
                         margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return figure


def class_mix(class_names: list[str], reference_mix, current_counts) -> go.Figure:
    total = max(sum(current_counts), 1)
    figure = go.Figure([
        go.Bar(name=_("reference"), x=class_names, y=list(reference_mix),
               marker_color="#4c78a8"),
        go.Bar(name=_("current"), x=class_names, y=[c / total for c in current_counts],
               marker_color="#e45756"),
    ])
    figure.update_layout(barmode="group", yaxis=dict(title=_("share of predictions"),
                                                     tickformat=".0%"),
                         height=300, margin=dict(l=10, r=10, t=10, b=10),
                         legend=dict(orientation="h"))
    return figure


def embedding_scatter(reference_2d, current_2d) -> go.Figure:
    figure = go.Figure([
        go.Scattergl(x=reference_2d[:, 0], y=reference_2d[:, 1], mode="markers",
                     name=_("reference"), marker=dict(size=4, color="#4c78a8", opacity=0.5)),
        go.Scattergl(x=current_2d[:, 0], y=current_2d[:, 1], mode="markers", name=_("current"),
                     marker=dict(size=4, color="#e45756", opacity=0.6)),
    ])
    figure.update_layout(xaxis_title="PC 1", yaxis_title="PC 2", height=380,
                         margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h"))
    return figure




def comparison_table(comparison: Comparison):
    """One row per holdout: both versions' accuracy and macro-F1, the difference, its
    95 % CI and McNemar's p."""
    import pandas as pd

    a, b = str(comparison.baseline), str(comparison.candidate)
    rows = []
    for name, h in comparison.holdouts.items():
        low, high = h.accuracy_diff_ci
        rows.append({_("holdout"): name, _("images"): h.n,
                     _("accuracy v{n}").format(n=a): h.accuracy[a],
                     _("accuracy v{n}").format(n=b): h.accuracy[b],
                     _("difference (points)"): h.accuracy_diff * 100,
                     _("95% CI (points)"): f"[{low * 100:+.2f}, {high * 100:+.2f}]",
                     _("McNemar p"): h.mcnemar_p,
                     _("macro-F1 v{n}").format(n=a): h.macro_f1[a],
                     _("macro-F1 v{n}").format(n=b): h.macro_f1[b]})
    return pd.DataFrame(rows)


def per_class_deltas(comparison: Comparison, class_label=str) -> go.Figure:
    """Per-class F1 change (candidate minus baseline) on each holdout."""
    figure = go.Figure([
        go.Bar(name=name, x=[class_label(c) for c in h.per_class_f1_delta],
               y=list(h.per_class_f1_delta.values()))
        for name, h in comparison.holdouts.items()])
    figure.update_layout(barmode="group", yaxis_title=_("F1 change"), height=320,
                         margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h"))
    return figure


DECISION_SYMBOLS = {"register": "circle", "promote": "star", "rollback": "triangle-left",
                    "reject": "x", "archive": "square"}


def decision_timeline(entries: list[dict]) -> go.Figure:
    """Versions (rows) over time: registrations, promotions, rejections, rollbacks.

    ``entries`` are audit entries as dicts; refused attempts are drawn hollow.
    """
    figure = go.Figure()
    for action, symbol in DECISION_SYMBOLS.items():
        for outcome in ("done", "refused"):
            chosen = [e for e in entries if e["action"] == action and e["outcome"] == outcome]
            if not chosen:
                continue
            figure.add_trace(go.Scatter(
                x=[e["at"] for e in chosen], y=[f"v{e['version']}" for e in chosen],
                mode="markers", name=term(action) + (f" ({term('refused')})"
                                                    if outcome == "refused" else ""),
                marker=dict(symbol=symbol + ("-open" if outcome == "refused" else ""), size=13),
                text=[f"#{e['seq']} {e['actor']} ({e['role']}): {e['reason']}"[:160]
                      for e in chosen],
                hovertemplate="%{x}<br>%{text}<extra>%{fullData.name}</extra>"))
    figure.update_layout(height=120 + 30 * len({e["version"] for e in entries}),
                         margin=dict(l=10, r=10, t=10, b=10), yaxis_title=_("version"),
                         legend=dict(orientation="h", y=-0.25))
    figure.update_yaxes(categoryorder="category ascending")
    return numeric_dates(figure)


def exports_table(rows: list[dict]):
    """A version's exports as the Versions page shows them (sizes in MB, ratios to float)."""
    import pandas as pd

    tflite = next(row for row in rows if row["format"] == "tflite")
    return pd.DataFrame([{
        _("format"): row["format"], _("size (MB)"): round(row["size_bytes"] / 1e6, 2),
        _("vs float TFLite"): _("{ratio}× smaller").format(
            ratio=f"{tflite['size_bytes'] / row['size_bytes']:.1f}")
        if row["size_bytes"] < tflite["size_bytes"] else "—",
        _("accuracy"): row["accuracy"], _("agreement"): row["agreement"],
        _("max prob. difference"): f"{row['max_abs_diff']:.1e}",
        _("latency (ms)"): row["latency_ms"]} for row in rows])
