"""Model cards: every section, in both formats, from the registry's own records."""

import html
import re

import pytest

from core.app import decide_version, model_card
from core.errors import InvalidInput
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, backends_of
from tests.documents import section
from tests.tampering import tamper

pytestmark = pytest.mark.slow
SECTIONS = ["Intended use and classes", "Training data", "Lineage", "Metrics", "Calibration",
            "Robustness to drift", "Out-of-distribution detection", "Exports", "Known limits",
            "Decision history"]


def test_a_promoted_candidates_card_has_every_section(candidate_copy, tmp_path):
    backends = backends_of(candidate_copy)
    promotion = decide_version(backends, "promote", 2, actor="rita", now=FIXED_NOW,
                               reason="fixes the brightness drift", override_gate=True)
    registry = candidate_copy.registry_dir
    result = run_cli(registry, "card", "2", "--actor", "vic")
    assert result.returncode == 0, result.stderr
    card = result.stdout
    assert card.startswith("# Model card: classifier version 2 (champion)")
    assert re.findall(r"^## (.+)$", card, re.MULTILINE) == SECTIONS
    version = backends.registry.get_version(2)
    meta = version.metadata
    assert all(f"| {i} | {name} |" in section(card, "Intended use and classes")
               for i, name in enumerate(version.class_names))
    assert meta.dataset.fingerprint in section(card, "Training data")
    assert "| parent version | 1 |" in section(card, "Lineage")
    assert f"job {meta.recipe.job}" in section(card, "Lineage")
    metrics = section(card, "Metrics")
    assert f"| test | {meta.metrics['test']['n']:,} | {meta.metrics['test']['accuracy']:.4f} |" \
        in metrics
    first_row = meta.metrics["test"]["confusion_matrix"][0]
    assert f"| 0 {version.class_names[0]} | " + " | ".join(map(str, first_row)) + " |" \
        in metrics
    calibration = section(card, "Calibration")
    assert f"{meta.metrics['test']['ece']:.4f}" in calibration
    bins = re.findall(r"^\| (\d\.\d)–\d\.\d \| (\d+) \|", calibration, re.MULTILINE)
    assert len(bins) == 10 and sum(int(n) for _, n in bins) == meta.dataset.sizes[
        "validation"]
    robustness = section(card, "Robustness to drift")
    clean = float(re.search(r"^\| clean \| — \| ([\d.]+) \|", robustness, re.MULTILINE)[1])
    brightness = float(re.search(r"^\| brightness \| 0.3 \| ([\d.]+) \|", robustness,
                                 re.MULTILINE)[1])
    holdout = backends.registry.find_comparison(1, 2).holdouts
    assert clean == pytest.approx(holdout["clean"].accuracy["2"], abs=1e-4)
    assert brightness == pytest.approx(holdout["drifted:brightness"].accuracy["2"],
                                       abs=1e-4)
    detector = backends.models.predictor(version).ood
    assert f"{detector.threshold:.4f}" in section(card, "Out-of-distribution detection")
    assert "| live images labelled 'none of these classes' | none yet" in section(
        card, "Out-of-distribution detection")
    assert "python -m core exports 2 builds and measures them" in section(card, "Exports")
    assert "Weakest classes" in section(card, "Known limits")
    history = section(card, "Decision history")
    assert "The audit chain verifies" in history
    assert f"| {promotion.seq} | {promotion.at} | rita (reviewer) | promote | fixes the " \
           f"brightness drift | {promotion.hash} |" in history
    # The HTML card: the same sections, escaped, with the reliability diagram drawn.
    out = tmp_path / "card.html"
    assert run_cli(registry, "card", "2", "--format", "html", "--out", str(out),
                   "--actor", "vic").returncode == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 1
    assert [html.unescape(t) for t in re.findall(r"<h2>(.*?)</h2>", page)] == SECTIONS
    assert html.escape("T-shirt/top") in page and promotion.hash in page


def test_a_tampered_audit_log_is_reported_on_the_card(candidate_copy):
    backends = backends_of(candidate_copy)
    tamper(candidate_copy, "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 1")
    card = model_card(backends, 1, actor="vic", now=FIXED_NOW).render("md")
    assert "The audit chain does NOT verify" in section(card, "Decision history")
    assert "first bad entry 1" in section(card, "Decision history")


def test_a_version_without_an_ood_detector_says_so(registry_copy):
    (registry_copy.registry_dir / "classifier" / "1" / "ood.npz").unlink()
    card = model_card(backends_of(registry_copy), 1, actor="vic", now=FIXED_NOW).render("md")
    assert "has no OOD detector" in section(card, "Out-of-distribution detection")
    assert "No OOD detector" in section(card, "Known limits")
    with pytest.raises(InvalidInput, match="unknown format 'pdf'"):
        model_card(backends_of(registry_copy), 1, actor="vic", now=FIXED_NOW).render("pdf")
