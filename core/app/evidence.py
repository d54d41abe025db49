"""Decision evidence: what the reviewer saw when they promoted, rejected or rolled back,
read back from the audit entry, with the entry checked against the hash chain.

Everything but the heatmaps comes from the entry's stored details (the comparison,
the gate's checks, the champion's drift and the live evidence of that moment). The
heatmaps are drawn again from the two versions' registered files, which never change,
on the same seeded holdout images and logged live images the Governance page shows.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np

from core.app.backends import Backends
from core.app.documents import Block, Bullets, Document, Picture, Section, Table
from core.app.predict import SideBySide, explain_disagreements, explain_side_by_side
from core.audit import EntryCheck, Verification, check_entry, verify_rows
from core.errors import CoreError, InvalidInput
from core.governance.decisions import DECISIONS, DecisionDetails
from core.governance.users import ANONYMOUS
from core.ml.images import encode_png
from core.monitoring.live import LiveEvidence
from core.monitoring.report import DriftSummary
from core.registry.records import Comparison, GateAdvice

HEATMAP_IMAGES = 4  # per holdout, as on the Governance page


def decision_evidence(backends: Backends, seq: int, *, actor: str,
                      now: datetime) -> Document:
    """The evidence document of audit entry ``seq`` (a promotion, rejection or rollback,
    done or refused), for anyone who may view the audit log."""
    backends.access.authorize(actor, "view", now, target="audit log")
    rows = backends.audit_log.raw_rows()
    row = next((r for r in rows if r["seq"] == seq), None)
    if row is None:
        raise InvalidInput(f"there is no audit entry {seq} (the log has entries 1 to "
                           f"{len(rows)}). To fix this, pick one from 'python -m core audit "
                           "export'.")
    if row["action"] not in DECISIONS:
        raise InvalidInput(f"audit entry {seq} records a {row['action']!r}, not a decision. "
                           f"To fix this, pick a {', '.join(DECISIONS)} entry from "
                           "'python -m core audit export'.")
    key = backends.database.audit_key
    check = check_entry(rows, backends.audit_log.head(), seq, key)
    try:
        details = DecisionDetails.from_dict(json.loads(row["details"]))
    except (ValueError, TypeError, KeyError, AttributeError):  # edited into another shape
        details = None
    title = (f"Evidence for audit entry {seq}: {row['action']} version {row['version']} "
             f"({row['outcome']})")
    sections = [_integrity(check, verify_rows(rows, backends.audit_log.head(), key=key)),
                _decision(row, details)]
    if details is not None:
        sections += [_comparison(details.comparison), _gate(details.gate),
                     _drift(details.drift), _live(details.live),
                     _heatmaps(backends, row, details, actor=actor, now=now)]
    return Document(title, sections)


def _integrity(check: EntryCheck, chain: Verification) -> Section:
    if check.matches_chain:
        verdict = (f"This entry's hash matches the audit chain: its content hashes to the "
                   f"stored {check.stored_hash}, and it is linked from both sides. What "
                   "follows is what was recorded when the decision was made.")
    else:
        broken = [part for part, ok in (
            ("its content no longer hashes to its stored hash (it was edited)",
             check.content_matches),
            ("it does not link to the entry before it", check.links_to_previous),
            ("the entry after it (or the log's head) does not link to it",
             check.linked_from_next)) if not ok]
        verdict = ("This entry does NOT match the audit chain: " + "; ".join(broken)
                   + ". Do not rely on what follows: it is not what was recorded.")
    return Section("Integrity", [verdict, Table(["check", "result"], [
        ["stored hash", check.stored_hash],
        ["hash of the content as stored now", check.recomputed_hash],
        ["links to the previous entry", _yes(check.links_to_previous)],
        ["linked from the next entry or the head", _yes(check.linked_from_next)],
        ["whole chain", f"verifies ({chain.entries} entries)" if chain.ok
         else f"does NOT verify: {chain.problem}"]])])


def _yes(ok: bool) -> str:
    """A check's result: a failure shouts."""
    return "yes" if ok else "NO"


def _decision(row: dict, details: DecisionDetails | None) -> Section:
    facts = [["who", f"{row['actor']} ({row['role']})"], ["when", row["at"]],
             ["action", f"{row['action']} version {row['version']}"],
             ["outcome", row["outcome"]], ["reason", row["reason"] or "—"]]
    if details is None:
        return Section("The decision", [Table(["what", "value"], facts),
                                        "The entry's details are not readable."])
    if details.to_status is not None:
        facts.append(["status", f"{details.from_status} → {details.to_status}"])
    champion = "—" if details.champion_before is None else details.champion_before
    facts += [["champion before", f"version {champion}"],
              ["decided against the gate", "yes" if details.gate_overridden else "no"]]
    if details.reason_given:
        facts.append(["reason given", details.reason_given])
    return Section("The decision", [Table(["what", "value"], facts)])


def _comparison(comparison: Comparison | None) -> Section:
    if comparison is None:
        return Section("Comparison on the same holdouts",
                       ["No comparison was recorded (a rollback returns to a version that "
                        "was champion before)."])
    a, b = str(comparison.baseline), str(comparison.candidate)
    rows = [[name, str(h.n), f"{h.accuracy[a]:.4f}", f"{h.accuracy[b]:.4f}",
             f"{h.accuracy_diff * 100:+.2f} [{h.accuracy_diff_ci[0] * 100:+.2f}, "
             f"{h.accuracy_diff_ci[1] * 100:+.2f}]", f"{h.mcnemar_p:.3g}",
             f"{h.macro_f1[a]:.4f} → {h.macro_f1[b]:.4f}"]
            for name, h in comparison.holdouts.items()]
    return Section("Comparison on the same holdouts", [
        f"Version {a} (champion) against version {b}, compared at {comparison.at or '—'}.",
        Table(["holdout", "images", f"v{a} accuracy", f"v{b} accuracy",
               "difference, points [95 % CI]", "McNemar p", "macro-F1"], rows)])


def _gate(gate: GateAdvice | None) -> Section:
    if gate is None:
        return Section("The gate's advice", ["The gate gave no advice for this decision."])
    return Section("The gate's advice", [
        f"The gate recommended {gate.recommendation} (advice for a person, never a "
        "decision): " + "; ".join(gate.reasons),
        Table(["check", "result", "detail"], [
            [c.name, "pass" if c.passed else "FAIL", c.detail] for c in gate.checks])])


def _drift(drift: DriftSummary | None) -> Section:
    if drift is None or not drift.available:
        why = drift.why if drift else "no drift status was recorded"
        return Section("The champion's drift at that moment", [f"Not available: {why}."])
    realized = drift.realized_accuracy
    blocks: list[Block] = [Table(["what", "value"], [
        ["version", str(drift.version)], ["window", " to ".join(drift.window or ())],
        ["predictions", str(drift.n)], ["alert", "yes" if drift.alert else "no"],
        ["estimated accuracy", f"{drift.estimated_accuracy:.4f}"],
        ["realized accuracy", "—" if realized is None else f"{realized:.4f}"]])]
    if drift.reasons:
        blocks.append(Bullets(list(drift.reasons)))
    return Section("The champion's drift at that moment", blocks)


def _live(live: LiveEvidence | None) -> Section:
    if live is None:
        return Section("Live evidence", ["The candidate had not seen live traffic (no "
                                         "shadow or canary requests)."])
    agreement, interval = live.agreement, live.agreement_ci
    rows = [["mode", live.mode], ["paired requests", str(live.paired)],
            ["agreement", "—" if agreement is None else
             f"{agreement:.1%}" + (f" [{interval[0]:.1%}, {interval[1]:.1%}]"
                                   if interval else "")],
            ["labelled pairs", str(live.labelled)]]
    if live.champion_accuracy is not None:
        rows += [["champion accuracy (labelled)", f"{live.champion_accuracy:.4f}"],
                 ["candidate accuracy (labelled)", f"{live.candidate_accuracy:.4f}"],
                 ["McNemar p", "—" if live.mcnemar_p is None else f"{live.mcnemar_p:.3g}"]]
    for arm in live.arms:
        rows.append([f"canary arm v{arm.version}", f"{arm.requests} requests, "
                     f"{arm.labelled} labelled"])
    return Section("Live evidence", [Table(["what", "value"], rows)])


def _heatmaps(backends: Backends, row: dict, details: DecisionDetails, *, actor: str,
              now: datetime) -> Section:
    champion, version = details.champion_before, row["version"]
    if champion is None or champion == version:
        return Section("Heatmaps", ["No champion to compare with."])
    holdouts = [name for name in (details.comparison.holdouts if details.comparison
                                  else {"clean": None})
                if name != "feedback"]
    blocks: list[Block] = [
        f"Grad-CAM of version {champion} (champion) and version {version} on the same "
        f"{HEATMAP_IMAGES} comparison-holdout images per holdout the reviewer could pick, "
        "drawn again now from the versions' registered files (which never change), as on "
        "the Governance page."]
    try:
        for name in holdouts:
            scenario = name.split(":", 1)[1] if name.startswith("drifted:") else None
            samples = explain_side_by_side(backends, [champion, version], actor=actor,
                                           now=now, n=HEATMAP_IMAGES, scenario=scenario)
            blocks.append(_gallery(samples, champion, version, f"holdout {name}"))
        disagreements = details.live.disagreements if details.live else []
        if disagreements and actor == ANONYMOUS:
            blocks.append("The live requests the two versions answered differently are "
                          "people's uploads: sign in (--actor NAME) to see their heatmaps.")
        elif disagreements:
            samples = explain_disagreements(backends, champion, version,
                                            disagreements[:HEATMAP_IMAGES], actor=actor,
                                            now=now)
            if samples:
                blocks.append(_gallery(samples, champion, version,
                                       "live requests the two versions answered differently"))
    except CoreError as error:
        blocks.append(f"The heatmaps cannot be drawn: {error}")
    return Section("Heatmaps", blocks)


def _gallery(samples: list[SideBySide], champion: int, version: int, what: str) -> Picture:
    """One picture laid out as on the Governance page: a column per image; rows: the
    image, the champion's overlay, the other version's overlay."""
    rows = [np.concatenate(images, axis=1) for images in (
        [s.image for s in samples], [s.overlays[champion] for s in samples],
        [s.overlays[version] for s in samples])]
    def says(s: SideBySide, number: int) -> str:
        empty = " (empty map: nothing raised its score)" if number in s.empty_maps else ""
        if number in s.no_heatmaps:
            empty = " (no heatmap for this model format)"
        return f"v{number} says {s.predicted[number]}{empty}"

    columns = "; ".join(f"true {s.true_class}: {says(s, champion)}, {says(s, version)}"
                        for s in samples)
    return Picture(encode_png(np.concatenate(rows, axis=0)),
                   f"{what} (rows: image, v{champion}, v{version}; left to right: {columns})")
