"""Decision evidence: what the reviewer saw, read back from the audit entry and checked
against the chain; a tampered entry is reported as not matching."""

from __future__ import annotations

import html
import json
import re

import pytest

from core.app import (
    DecisionDetails,
    audit_entries,
    decide_version,
    decision_evidence,
    find_comparison,
    set_traffic,
    simulate,
)
from core.errors import InvalidInput
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, backends_of
from tests.documents import section
from tests.tampering import tamper

pytestmark = pytest.mark.slow
SECTIONS = ["Integrity", "The decision", "Comparison on the same holdouts",
            "The gate's advice", "The champion's drift at that moment", "Live evidence",
            "Heatmaps"]


def test_evidence_of_a_promotion_and_a_rollback_and_of_a_tampered_entry(candidate_copy,
                                                                         tmp_path):
    backends = backends_of(candidate_copy)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="see v2 on live traffic", now=FIXED_NOW)
    simulate(backends, actor="olga", scenario="brightness", n=60, clock=lambda: FIXED_NOW)
    promotion = decide_version(backends, "promote", 2, actor="rita", now=FIXED_NOW,
                               reason="fixes the brightness drift", override_gate=True)
    comparison = find_comparison(backends, 1, 2, actor="vic", now=FIXED_NOW)
    live = promotion.details["live"]
    # The stored details read back as the typed record, and write back the same JSON.
    stored = next(e for e in audit_entries(backends, actor="vic", now=FIXED_NOW)
                  if e.seq == promotion.seq).details
    details = DecisionDetails.from_dict(stored)
    assert details.live is not None and details.live.paired == live["paired"] > 0
    assert details.drift is not None and details.drift.available
    assert details.gate is not None and details.gate.recommendation == "promote"
    assert details.gate_overridden is False  # promoting as the gate advised
    assert json.loads(json.dumps(details.as_dict())) == stored

    evidence = decision_evidence(backends, promotion.seq, actor="vic", now=FIXED_NOW)
    markdown = evidence.render("md")
    assert re.findall(r"^## (.*)$", markdown, re.M) == SECTIONS
    assert "This entry's hash matches the audit chain" in section(markdown, "Integrity")
    assert promotion.hash in section(markdown, "Integrity")
    decision = section(markdown, "The decision")
    assert "| who | rita (reviewer) |" in decision
    assert "| status | candidate → champion |" in decision
    assert "| reason | fixes the brightness drift |" in decision
    compared = section(markdown, "Comparison on the same holdouts")
    for name, holdout in comparison.holdouts.items():
        assert (f"| {name} | {holdout.n} | {holdout.accuracy['1']:.4f} | "
                f"{holdout.accuracy['2']:.4f} |") in compared
    gate = section(markdown, "The gate's advice")
    assert all(check["name"] in gate for check in promotion.details["gate"]["checks"])
    assert f"| paired requests | {live['paired']} |" in section(markdown, "Live evidence")
    # Heatmaps: one gallery per holdout the reviewer could pick, and the live disagreements.
    page = evidence.render("html")
    assert [html.unescape(t) for t in re.findall(r"<h2>(.*?)</h2>", page)] == SECTIONS
    galleries = len(comparison.holdouts) + bool(live["disagreements"])
    assert page.count("<img src='data:image/png;base64,") == galleries
    assert "live requests the two versions answered differently" in page

    # A rollback has no comparison; its evidence says so.
    rollback = decide_version(backends, "rollback", 1, actor="rita", now=FIXED_NOW,
                              reason="back to the known model")
    rolled = decision_evidence(backends, rollback.seq, actor="vic", now=FIXED_NOW).render("md")
    assert "No comparison was recorded" in section(rolled, "Comparison on the same holdouts")
    assert "matches the audit chain" in section(rolled, "Integrity")

    # Someone edits the promotion's recorded evidence: its evidence no longer matches.
    tamper(candidate_copy, "UPDATE audit_log SET reason = 'a better story' WHERE seq = "
                           f"{promotion.seq}")
    edited = decision_evidence(backends, promotion.seq, actor="vic", now=FIXED_NOW)
    integrity = section(edited.render("md"), "Integrity")
    assert "This entry does NOT match the audit chain" in integrity
    assert "it was edited" in integrity and "does NOT verify" in integrity
    assert "| reason | a better story |" in section(edited.render("md"), "The decision")
    # The entries around it still link, so the later rollback's own hash matches.
    later = decision_evidence(backends, rollback.seq, actor="vic", now=FIXED_NOW).render("md")
    assert "This entry's hash matches the audit chain" in section(later, "Integrity")

    # The CLI writes the HTML file; non-decisions and unknown entries are refused.
    out = tmp_path / "evidence.html"
    registry = candidate_copy.registry_dir
    written = run_cli(registry, "audit", "evidence", str(promotion.seq), "--out", str(out))
    assert written.returncode == 0 and out.read_text().startswith("<!doctype html>")
    assert "does NOT match the audit chain" in out.read_text()
    registration = next(e for e in backends.audit_log.read_entries()
                         if e.action == "register")
    with pytest.raises(InvalidInput, match="records a 'register', not a decision"):
        decision_evidence(backends, registration.seq, actor="vic", now=FIXED_NOW)
    missing = run_cli(registry, "audit", "evidence", "999")
    assert missing.returncode == 1 and "there is no audit entry 999" in missing.stderr
