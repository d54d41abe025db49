"""The shareable drift report (HTML): verdict first, statistics coloured by status, the
history with deployment markers, galleries of the window's images; self-contained and
escaped."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from datetime import timedelta

from PIL import Image

from core.app import build_backends, decide_version, drift_document, monitor_pass, set_traffic
from core.monitoring.html_report import COLOURS, render_html
from tests.monitoring.test_snapshots import T0, traffic


def test_the_report_of_drifted_traffic_shows_the_alert_its_history_and_its_images(
        candidate_copy):
    backends = build_backends(candidate_copy)
    traffic(backends, T0, hours=2)  # 10:00-11:59, as the training data
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="watch v2", now=T0 + timedelta(hours=2))
    traffic(backends, T0 + timedelta(hours=2), hours=2, scenario="invert")  # 12:00-13:59
    monitor_pass(backends, T0 + timedelta(hours=4, minutes=2))
    now = T0 + timedelta(hours=4, minutes=5)
    document = drift_document(backends, actor="olga", now=now, window=80)
    html = render_html(document)

    # The verdict comes first, red, with the reasons.
    body = html[html.index("<body>"):]
    assert body.index('class="verdict alert"') < body.index("<h2>")
    alerting = [s.name for s in document.report.statistics if s.status == "alert"]
    assert f"ALERT: {len(alerting)} of " in html and ", ".join(alerting) in html
    # Each statistic's row: its value, thresholds and a chip coloured by its status.
    for statistic in document.report.statistics:
        row = re.search(rf"<tr><td>{statistic.name}</td>.*?</tr>", html).group(0)
        assert f"{statistic.value:.4g}" in row and f"{statistic.threshold:g}" in row
        assert COLOURS[statistic.status] in row
    assert any(s.status == "alert" for s in document.report.statistics)
    # Four hours of snapshots with the traffic change drawn as a marker.
    assert len(document.history["prediction_psi"]) == 4
    assert "traffic: shadow v2" in html and html.count("over time\"") >= 5
    # Galleries: the window's images, most unfamiliar first, decodable.
    assert len(document.unfamiliar) == len(document.least_confident) == 12
    scores = [float(c.caption.split("OOD score ")[1].split(",")[0]) for c in document.unfamiliar]
    assert scores == sorted(scores, reverse=True)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 24
    assert Image.open(io.BytesIO(base64.b64decode(images[0]))).size == (28, 28)
    # One file that opens offline: no script, no remote asset.
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)

    # A window within every threshold reads green, without reasons.
    calm = replace(document, report=replace(document.report, statistics=[
        replace(each, status="ok") for each in document.report.statistics]))
    assert 'class="verdict ok"' in render_html(calm) and "ALERT" not in render_html(calm)

    # After the drift, the promotion is drawn as a marker on the new champion's history.
    decide_version(backends, "promote", 2, actor="rita", reason="v2 is ready", now=now,
                   override_gate=True)
    traffic(backends, T0 + timedelta(hours=4, minutes=10), hours=1)
    later = render_html(drift_document(backends, actor="olga", now=T0 + timedelta(hours=6),
                                       window=40))
    assert "Drift report: classifier v2" in later and "promote v2" in later


def test_text_from_the_registry_and_the_log_is_escaped(candidate_copy):
    backends = build_backends(candidate_copy)
    traffic(backends, T0, hours=1)
    document = drift_document(backends, actor="olga", now=T0 + timedelta(hours=1), window=40)
    document.class_names = ["<script>alert(1)</script>"] + document.class_names[1:]
    document.least_confident = document.least_confident[:1]
    document.least_confident[0] = type(document.least_confident[0])(
        document.least_confident[0].image, '"><img src=x onerror=alert(1)>')
    html = render_html(document)
    assert "<script>" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;" in html


def test_a_report_without_snapshots_or_unfamiliar_scores_still_renders(candidate_copy):
    backends = build_backends(candidate_copy)
    traffic(backends, T0, hours=1)
    document = drift_document(backends, actor="olga", now=T0 + timedelta(minutes=59), window=40)
    assert document.history == {}
    document.unfamiliar = []
    html = render_html(document)
    assert "No snapshots yet" in html and "most unfamiliar" not in html


def test_a_visitor_gets_the_report_without_peoples_images(candidate_copy):
    """Anyone ANONYMOUS_ROLE lets view drift gets the statistics and charts; the logged
    images, people's uploads, only someone signed in (as on the Review queue)."""
    backends = build_backends(candidate_copy)
    traffic(backends, T0, hours=1)
    now = T0 + timedelta(hours=1)
    visitor = drift_document(backends, actor="anonymous", now=now, window=40)
    assert visitor.unfamiliar == visitor.least_confident == [] and visitor.images_withheld
    html = render_html(visitor)
    assert "data:image" not in html and "signed-in users only" in html
    assert "<h2>Statistics</h2>" in html
    signed_in = drift_document(backends, actor="olga", now=now, window=40)
    assert len(signed_in.least_confident) == 12 and not signed_in.images_withheld
