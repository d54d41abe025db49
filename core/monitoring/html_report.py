"""The drift report as one self-contained HTML file (``python -m core drift --format html``,
the Drift page's download, the drift alert's e-mail attachment).

It opens offline: no script, no web font, no remote asset; charts are inline SVG and
images are ``data:`` URLs. Everything taken from the registry or the log (class names,
sources, labels) is escaped. Order: the verdict, each statistic with its value and
thresholds (green ok, amber warn, red alert), reference-against-current histograms, the
class mix, the embedding map, the statistics over time with deployment markers, and the
window's most unfamiliar and least confident images.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

import numpy as np

from core.monitoring.report import DriftReport

COLOURS = {"ok": "#2e7d32", "warn": "#e0a000", "alert": "#c62828"}
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#f58518"


@dataclass(frozen=True)
class GalleryImage:
    image: bytes  # PNG or JPEG, as logged
    caption: str


@dataclass(frozen=True)
class StatisticPoint:
    at: str  # the period's start
    value: float


@dataclass
class DriftDocument:
    """What the HTML report shows; built by ``core.app.drift_document``."""

    model: str
    report: DriftReport
    class_names: list[str]
    generated_at: str
    reference_statistics: dict[str, np.ndarray]  # brightness, contrast, sharpness, confidence
    current_statistics: dict[str, np.ndarray]
    reference_2d: np.ndarray  # [n, 2]
    current_2d: np.ndarray  # [m, 2]
    history: dict[str, list[StatisticPoint]] = field(default_factory=dict)  # by statistic
    history_period: str = "hour"
    deployments: list[tuple[str, str]] = field(default_factory=list)  # (at, summary)
    unfamiliar: list[GalleryImage] = field(default_factory=list)
    least_confident: list[GalleryImage] = field(default_factory=list)
    images_withheld: bool = False  # the reader may not see people's uploads


def verdict(report: DriftReport) -> str:
    statuses = {s.status for s in report.statistics}
    return "alert" if "alert" in statuses else "warn" if "warn" in statuses else "ok"


def render_html(document: DriftDocument) -> str:
    report = document.report
    title = f"Drift report: {document.model} v{report.version}"
    parts = [_verdict(document), _statistics_table(report), _histograms(document),
             _class_mix(document), _embedding_map(document), _history(document),
             _gallery("The most unfamiliar images", "highest OOD score first",
                      document.unfamiliar),
             _gallery("The least confident answers", "lowest confidence first",
                      document.least_confident)]
    if document.images_withheld:
        parts.append("<h2>Images</h2><p class=\"muted\">The window's most unfamiliar and "
                     "least confident images are shown to signed-in users only: they are "
                     "people's uploads.</p>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>" + "".join(parts)
            + f"<footer>Generated {escape(document.generated_at)} by python -m core drift "
            "--format html. Thresholds: docs/drift.md.</footer></body></html>\n")


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#222;padding:0 16px}h1{font-size:1.5em}h2{font-size:1.2em;
margin-top:2em;border-bottom:1px solid #ddd}.verdict{padding:14px 18px;border-radius:6px;
color:#fff;font-size:1.1em}.verdict.ok{background:#2e7d32}.verdict.warn{background:#e0a000;
color:#222}.verdict.alert{background:#c62828}table{border-collapse:collapse;width:100%}
td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;font-size:.92em}
td.num{text-align:right;font-variant-numeric:tabular-nums}.chip{display:inline-block;
padding:1px 8px;border-radius:9px;color:#fff;font-size:.85em}.grid{display:flex;
flex-wrap:wrap;gap:12px}.gallery figure{margin:0;width:120px;font-size:.78em}
.gallery img{width:112px;height:112px;image-rendering:pixelated;border:1px solid #ccc;
object-fit:contain;background:#fff}.legend span{margin-right:14px}.muted{color:#666}
footer{margin-top:3em;color:#888;font-size:.8em}svg text{font-size:10px;fill:#444}
"""


def _chip(status: str) -> str:
    return f"<span class=\"chip\" style=\"background:{COLOURS[status]}\">{status}</span>"


def _verdict(document: DriftDocument) -> str:
    report = document.report
    status = verdict(report)
    headline = {"ok": "No drift: every statistic is within its thresholds.",
                "warn": "Warning: some statistics passed their warning thresholds.",
                "alert": f"ALERT: {len(report.reasons)} of {len(report.statistics)} "
                         "statistics past their alert thresholds ("
                         + ", ".join(s.name for s in report.statistics if s.status == "alert")
                         + ")."}[status]
    realized = ("no labels" if report.realized_accuracy is None else
                f"realized {report.realized_accuracy:.1%} ({report.labelled} labelled)")
    return (f"<div class=\"verdict {status}\">{escape(headline)}</div>"
            f"<p>{report.n} predictions of version {report.version} from "
            f"{escape(report.window_start)} to {escape(report.window_end)}. Accuracy: "
            f"reference {report.reference_accuracy:.1%}, estimated "
            f"{report.estimated_accuracy:.1%}, {escape(realized)}.</p>")


def _statistics_table(report: DriftReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(s.name)}</td><td class=\"muted\">{escape(s.meaning)}</td>"
        f"<td class=\"num\">{s.value:.4g}</td><td class=\"num\">{s.warn:g}</td>"
        f"<td class=\"num\">{s.threshold:g}</td><td>{_chip(s.status)}</td></tr>"
        for s in report.statistics)
    return ("<h2>Statistics</h2><table><tr><th>statistic</th><th>what it measures</th>"
            "<th>value</th><th>warn</th><th>alert</th><th>status</th></tr>"
            f"{rows}</table><p class=\"muted\">Distances alert above their thresholds, "
            "p-values below theirs.</p>")


def _legend() -> str:
    return (f"<p class=\"legend\"><span style=\"color:{REFERENCE_COLOUR}\">&#9632; reference "
            f"(validation split)</span><span style=\"color:{CURRENT_COLOUR}\">&#9632; current "
            "window</span></p>")


def _histograms(document: DriftDocument) -> str:
    charts = []
    for name, reference in document.reference_statistics.items():
        current = document.current_statistics.get(name)
        if current is None or not len(reference) or not len(current):
            continue
        charts.append(_histogram_svg(name, reference, current))
    return "<h2>Reference and current</h2>" + _legend() + f"<div class=\"grid\">{''.join(charts)}</div>"


def _histogram_svg(name: str, reference: np.ndarray, current: np.ndarray, bins: int = 24,
                   width: int = 260, height: int = 130) -> str:
    low = float(min(reference.min(), current.min()))
    high = float(max(reference.max(), current.max()))
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    shares = [np.histogram(values, edges)[0] / len(values) for values in (reference, current)]
    top = max(float(s.max()) for s in shares) or 1.0
    bar = (width - 20) / bins
    body = []
    for share, colour, offset in ((shares[0], REFERENCE_COLOUR, 0), (shares[1], CURRENT_COLOUR,
                                                                      bar / 2)):
        for i, value in enumerate(share):
            h = (height - 30) * value / top
            body.append(f"<rect x=\"{10 + i * bar + offset:.1f}\" y=\"{height - 18 - h:.1f}\" "
                        f"width=\"{bar / 2:.1f}\" height=\"{h:.1f}\" fill=\"{colour}\"/>")
    return (f"<svg width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{escape(name)}"
            f" histogram\"><text x=\"10\" y=\"11\">{escape(name)}</text>{''.join(body)}"
            f"<text x=\"10\" y=\"{height - 4}\">{low:.3g}</text><text x=\"{width - 10}\" "
            f"y=\"{height - 4}\" text-anchor=\"end\">{high:.3g}</text></svg>")


def _class_mix(document: DriftDocument) -> str:
    details = document.report.details
    reference = np.asarray(details.get("reference_class_mix", []), float)
    counts = np.asarray(details.get("current_class_counts", []), float)
    if not len(reference) or counts.sum() == 0:
        return ""
    current = counts / counts.sum()
    names = document.class_names or [str(i) for i in range(len(reference))]
    row_height, width = 18, 520
    top = max(float(reference.max()), float(current.max())) or 1.0
    rows = []
    for i, name in enumerate(names[:len(reference)]):
        y = 20 + i * row_height
        rows.append(
            f"<text x=\"0\" y=\"{y + 11}\">{escape(name)}</text>"
            f"<rect x=\"130\" y=\"{y}\" width=\"{330 * reference[i] / top:.1f}\" height=\"7\" "
            f"fill=\"{REFERENCE_COLOUR}\"/><rect x=\"130\" y=\"{y + 7}\" "
            f"width=\"{330 * current[i] / top:.1f}\" height=\"7\" fill=\"{CURRENT_COLOUR}\"/>"
            f"<text x=\"{width}\" y=\"{y + 11}\" text-anchor=\"end\">{reference[i]:.1%} / "
            f"{current[i]:.1%}</text>")
    height = 24 + len(rows) * row_height
    return ("<h2>Class mix</h2>" + _legend() + f"<svg width=\"{width}\" height=\"{height}\" "
            f"role=\"img\" aria-label=\"class mix\">{''.join(rows)}</svg>")


def _embedding_map(document: DriftDocument, size: int = 360) -> str:
    if not len(document.reference_2d) or not len(document.current_2d):
        return ""
    both = np.vstack([document.reference_2d, document.current_2d])
    low, high = both.min(axis=0), both.max(axis=0)
    span = np.where(high > low, high - low, 1)

    def dots(points: np.ndarray, colour: str) -> str:
        scaled = (points - low) / span * (size - 20) + 10
        return "".join(f"<circle cx=\"{x:.1f}\" cy=\"{size - y:.1f}\" r=\"2\" fill=\"{colour}\" "
                       "fill-opacity=\"0.5\"/>" for x, y in scaled)

    return ("<h2>Embedding map</h2><p class=\"muted\">The model's embeddings projected on the "
            "reference's first two principal components: current points away from the "
            "reference cloud are images unlike the training data.</p>" + _legend()
            + f"<svg width=\"{size}\" height=\"{size}\" role=\"img\" aria-label=\"embedding "
            f"map\">{dots(document.reference_2d, REFERENCE_COLOUR)}"
            f"{dots(document.current_2d, CURRENT_COLOUR)}</svg>")


def _history(document: DriftDocument) -> str:
    if not document.history:
        return ("<h2>Over time</h2><p class=\"muted\">No snapshots yet: the monitor "
                "(python -m core monitor run) summarizes each closed period.</p>")
    levels = {s.name: (s.warn, s.threshold) for s in document.report.statistics}
    charts = [_line_svg(name, points, levels.get(name), document.deployments)
              for name, points in sorted(document.history.items()) if points]
    markers = "".join(f"<li>{escape(at)}: {escape(summary)}</li>"
                      for at, summary in document.deployments)
    return (f"<h2>Over time (by {escape(document.history_period)})</h2><p class=\"muted\">"
            "Dashed lines: warn (amber) and alert (red) thresholds; grey verticals: "
            f"deployments.</p><div class=\"grid\">{''.join(charts)}</div>"
            + (f"<ul class=\"muted\">{markers}</ul>" if markers else ""))


def _seconds(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def _line_svg(name: str, points: list[StatisticPoint], levels: tuple[float, float] | None,
              deployments: list[tuple[str, str]], width: int = 340, height: int = 120) -> str:
    times = [_seconds(p.at) for p in points]
    values = [p.value for p in points] + (list(levels) if levels else [])
    t0, t1 = min(times), max(times) if max(times) > min(times) else min(times) + 1
    v0, v1 = min(values), max(values) if max(values) > min(values) else min(values) + 1

    def x(t: float) -> float:
        return 10 + (t - t0) / (t1 - t0) * (width - 20)

    def y(v: float) -> float:
        return height - 16 - (v - v0) / (v1 - v0) * (height - 34)

    lines = [f"<polyline fill=\"none\" stroke=\"{CURRENT_COLOUR}\" stroke-width=\"1.5\" "
             "points=\"" + " ".join(f"{x(t):.1f},{y(p.value):.1f}"
                                    for t, p in zip(times, points)) + "\"/>"]
    if levels:
        for level, colour in zip(levels, (COLOURS["warn"], COLOURS["alert"])):
            lines.append(f"<line x1=\"10\" x2=\"{width - 10}\" y1=\"{y(level):.1f}\" "
                         f"y2=\"{y(level):.1f}\" stroke=\"{colour}\" stroke-dasharray=\"4 3\"/>")
    for at, summary in deployments:
        t = _seconds(at)
        if t0 <= t <= t1:
            lines.append(f"<line x1=\"{x(t):.1f}\" x2=\"{x(t):.1f}\" y1=\"14\" "
                         f"y2=\"{height - 16}\" stroke=\"#999\"><title>{escape(summary)}"
                         "</title></line>")
    return (f"<svg width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{escape(name)}"
            f" over time\"><text x=\"10\" y=\"11\">{escape(name)}</text>{''.join(lines)}"
            f"<text x=\"10\" y=\"{height - 3}\">{escape(points[0].at[:16])}</text>"
            f"<text x=\"{width - 10}\" y=\"{height - 3}\" text-anchor=\"end\">"
            f"{escape(points[-1].at[:16])}</text></svg>")


def _gallery(title: str, order: str, images: list[GalleryImage]) -> str:
    if not images:
        return ""
    figures = "".join(
        f"<figure><img alt=\"{escape(each.caption)}\" src=\"data:{_media_type(each.image)};"
        f"base64,{base64.b64encode(each.image).decode()}\"><figcaption>"
        f"{escape(each.caption)}</figcaption></figure>" for each in images)
    return (f"<h2>{escape(title)}</h2><p class=\"muted\">From this window, {escape(order)}: "
            f"what no table of statistics shows.</p><div class=\"grid gallery\">{figures}</div>")


def _media_type(image: bytes) -> str:
    return "image/jpeg" if image.startswith(b"\xff\xd8") else "image/png"
