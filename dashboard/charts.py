"""Plotly figures shared by the pages. Pure functions: data in, figure out."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go


def probability_bars(probabilities: dict[str, float], top: int = 5) -> go.Figure:
    """Horizontal bars of the ``top`` most probable classes, most probable on top."""
    ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)[:top]
    names = [name for name, _ in reversed(ranked)]
    values = [value for _, value in reversed(ranked)]
    figure = go.Figure(go.Bar(x=values, y=names, orientation="h",
                              text=[f"{v:.1%}" for v in values], textposition="auto",
                              marker_color="#4c78a8"))
    figure.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%", title="probability"),
                         height=60 + 40 * len(names), margin=dict(l=10, r=10, t=10, b=40))
    return figure


def confusion_matrix(matrix: list[list[int]], class_names: list[str]) -> go.Figure:
    """Counts as a heatmap: rows are true classes, columns predicted classes."""
    figure = px.imshow(matrix, x=class_names, y=class_names, text_auto=True,
                       color_continuous_scale="Blues", aspect="auto",
                       labels=dict(x="predicted", y="true", color="images"))
    figure.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10))
    return figure


def per_class_bars(per_class: dict[str, dict]) -> go.Figure:
    """Grouped bars of precision, recall and F1 per class."""
    names = list(per_class)
    figure = go.Figure([
        go.Bar(name=metric, x=names, y=[per_class[n][metric] for n in names])
        for metric in ("precision", "recall", "f1")
    ])
    figure.update_layout(barmode="group", yaxis=dict(range=[0, 1], title="score"),
                         height=360, margin=dict(l=10, r=10, t=10, b=10))
    return figure


def training_history(history: list[dict]) -> go.Figure:
    """Loss and accuracy per epoch, training and validation."""
    epochs = [row["epoch"] for row in history]
    figure = go.Figure()
    for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
        if history and key in history[0]:
            figure.add_trace(go.Scatter(x=epochs, y=[row[key] for row in history],
                                        mode="lines+markers", name=key))
    figure.update_layout(xaxis_title="epoch", height=320, margin=dict(l=10, r=10, t=10, b=10))
    return figure
