"""The shareable drift report: everything its HTML shows, gathered from the registry,
the prediction log and the monitor's snapshots (``core.monitoring.html_report`` draws it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from core.app.backends import Backends
from core.app.monitor import window_report
from core.app.snapshots import RANGES, read_timeline
from core.governance.users import ANONYMOUS
from core.monitoring.drift import Thresholds
from core.monitoring.html_report import DriftDocument, GalleryImage, StatisticPoint, render_html
from core.monitoring.log_records import Window
from core.monitoring.report import pca_2d
from core.monitoring.snapshots import stamp

GALLERY_SIZE = 12  # images in each gallery


def drift_document(backends: Backends, *, actor: str, now: datetime, version: int | None = None,
                   window: int | None = 500, since: str | None = None, until: str | None = None,
                   sources: Sequence[str] | None = None,
                   thresholds: Thresholds = Thresholds()) -> DriftDocument:
    """The drift report of a version (default: the champion) over a window of its traffic,
    with its history from snapshots (the last 24 hours by hour, else 30 days by day) and
    the window's most unfamiliar and least confident images — those for signed-in people
    only, as on the Review queue: they are people's uploads, and a visitor may view drift
    (ANONYMOUS_ROLE) without being allowed to see what others sent."""
    acting = backends.access.authorize(actor, "view", now, target="drift")
    return build_drift_document(backends, now=now, version=version, window=window,
                                since=since, until=until, sources=sources,
                                thresholds=thresholds, images=acting.name != ANONYMOUS)


def drift_report_html(backends: Backends, **options: Any) -> str:
    """``drift_document``, drawn as one self-contained HTML file."""
    return render_html(drift_document(backends, **options))


def build_drift_document(backends: Backends, *, now: datetime, version: int | None = None,
                         window: int | None = 500, since: str | None = None,
                         until: str | None = None, sources: Sequence[str] | None = None,
                         thresholds: Thresholds = Thresholds(), images: bool = True
                         ) -> DriftDocument:
    """``drift_document`` for system use cases with no person acting (the monitor's
    e-mail attaches it to a drift alert); ``images``: False leaves the galleries out."""
    found = window_report(backends, version=version, window=window, since=since, until=until,
                          thresholds=thresholds, sources=sources)
    model_version, reference, current, report = (found.version, found.reference,
                                                 found.current, found.report)
    reference_2d, current_2d = pca_2d(reference.embeddings, current.embeddings)
    names = model_version.class_names
    document = DriftDocument(
        model=backends.model, report=report, class_names=names, generated_at=stamp(now),
        reference_statistics=reference.statistics | {
            "confidence": reference.probabilities.max(axis=1)},
        current_statistics=current.statistics | {"confidence": current.confidence},
        reference_2d=reference_2d, current_2d=current_2d)
    _add_history(backends, document, now)
    if not images:
        document.images_withheld = True
        return document
    scored = np.flatnonzero(~np.isnan(current.ood_scores))  # NaN: no detector
    unfamiliar = list(scored[np.argsort(-current.ood_scores[scored])][:GALLERY_SIZE])
    document.unfamiliar = _gallery(backends, current, unfamiliar, names, lambda i: (
        f"OOD score {current.ood_scores[i]:.2f}"))
    least = list(np.argsort(current.confidence)[:GALLERY_SIZE])
    document.least_confident = _gallery(backends, current, least, names, lambda i: (
        f"confidence {current.confidence[i]:.0%}"))
    return document


def _add_history(backends: Backends, document: DriftDocument, now: datetime) -> None:
    version = document.report.version
    for range_ in RANGES:  # 24 hours by hour, else 30 days by day
        found = read_timeline(backends, now=now, range_=range_)
        snapshots = [s for s in found.snapshots if s.version == version and s.drift]
        if len(snapshots) >= 2:
            break
    history: dict[str, list[StatisticPoint]] = {}
    for snapshot in snapshots:
        for name, each in snapshot.drift.items():
            history.setdefault(name, []).append(StatisticPoint(snapshot.start, each["value"]))
    document.history, document.history_period = history, found.period
    document.deployments = [(d.at, d.summary) for d in found.deployments]


def _gallery(backends: Backends, window: Window, rows: Sequence[int], names: list[str],
             detail: Callable[[int], str]) -> list[GalleryImage]:
    if not rows:
        return []
    images = backends.prediction_log.images(backends.model, [int(window.ids[i]) for i in rows])
    return [GalleryImage(image, f"#{int(window.ids[i])} {_name(names, window.predicted[i])}, "
                                f"{detail(i)}, {window.sources[i]}")
            for i, (image, _) in zip(rows, images)]


def _name(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)
