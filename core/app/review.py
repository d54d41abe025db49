"""Use cases of review: versions, comparisons on the same holdouts, decisions, the audit log."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np

from core.app.backends import Backends
from core.app.monitor import drift_snapshot, scenarios_seen
from core.audit import AuditEntry, Verification, export, stamp
from core.errors import CoreError, InvalidInput
from core.governance.access import check_reason
from core.governance.decisions import decide, verify_audit
from core.governance.gate import GatePolicy, recommend, with_live
from core.ml.comparison import Holdout, build_holdouts, compare, comparison_holdout
from core.ml.data import Split, load_version_dataset
from core.ml.evaluation import inference_batch
from core.ml.image_sets import batches
from core.ml.images import preprocess_batch
from core.ml.predictor import Predictor
from core.ml.scenarios import get_scenario
from core.ml.tensorboard import TENSORBOARD_DIR
from core.monitoring.alerts.records import redacted_entry
from core.monitoring.live import LiveEvidence, arm, paired_evidence
from core.registry.records import Comparison, GateAdvice, ModelVersion, StatusChange


def list_versions(backends: Backends, *, actor: str, now: datetime,
                  every_model: bool = False) -> list[ModelVersion]:
    """Every version of the model, oldest first (``every_model``: of every model in the
    registry, by model name, then oldest first)."""
    backends.access.authorize(actor, "view", now, target="versions")
    if not every_model:
        return backends.registry.list_versions()
    catalog = backends.catalog
    return [v for model in catalog.list_models() for v in catalog.search_model_versions(model)]


def list_models(backends: Backends, *, actor: str, now: datetime) -> list[str]:
    """The names of the registry's models (those with a version), alphabetical."""
    backends.access.authorize(actor, "view", now, target="models")
    return backends.registry.list_models()


def get_version(backends: Backends, version: int | None, *, actor: str,
                now: datetime) -> ModelVersion:
    """A version (None: the champion); VersionNotFound lists the versions that exist."""
    backends.access.authorize(actor, "view", now, target="versions")
    return backends.registry.resolve(version)


def has_tensorboard_run(version: ModelVersion) -> bool:
    """Whether the version was registered with its TensorBoard run (its recorded files
    say so: versions trained before runs were written have none)."""
    return any(name.startswith(f"{TENSORBOARD_DIR}/") for name in version.metadata.files or {})


def status_history(backends: Backends, *, actor: str, now: datetime) -> list[StatusChange]:
    backends.access.authorize(actor, "view", now, target="versions")
    return backends.registry.status_history()


def compare_versions(backends: Backends, baseline: int, candidate: int, *, actor: str,
                     now: datetime, scenarios: list[str] | None = None,
                     feedback: Split | None = None,
                     policy: GatePolicy = GatePolicy()) -> Comparison:
    """Compares two versions on the same holdouts, adds the gate's advice, stores it.

    Holdouts: the clean comparison half of the test split, a drifted copy of it per
    scenario (default: those seen in the baseline's traffic), and feedback if given.
    """
    backends.access.authorize(actor, "compare", now, target=f"version {candidate}",
                              version=candidate)
    registry = backends.registry
    versions = {v: registry.get_version(v) for v in (baseline, candidate)}
    if versions[baseline].class_names != versions[candidate].class_names:
        raise InvalidInput(f"versions {baseline} and {candidate} predict different classes. "
                           "To fix this, compare versions trained on the same dataset.")
    scenarios = scenarios_seen(backends, baseline) if scenarios is None else scenarios
    for name in scenarios:
        get_scenario(name)
    test = load_version_dataset(versions[baseline].metadata,
                                backends.config.fashion_mnist_dir).test
    holdouts = build_holdouts(comparison_holdout(test), scenarios, seed=0, feedback=feedback)
    probabilities = {number: holdout_probabilities(backends.models.predictor(version),
                                                   holdouts)
                     for number, version in versions.items()}
    measured = compare(baseline, candidate, holdouts, probabilities,
                       versions[baseline].class_names)
    result = measured.advised(recommend(measured, policy), stamp(now))
    registry.catalog.save_comparison(registry.model, result)
    return result


def holdout_probabilities(predictor: Predictor, holdouts: list[Holdout]
                          ) -> dict[str, np.ndarray]:
    """A version's probabilities [N, K] on each holdout, by holdout name (serving path),
    a batch at a time."""
    spec = predictor.input_spec
    return {h.name: np.concatenate([
        predictor.predict_batch(preprocess_batch(batch, spec))[0]
        for batch in batches(h.images, inference_batch(spec))]) for h in holdouts}


def find_comparison(backends: Backends, baseline: int, candidate: int, *, actor: str,
                    now: datetime) -> Comparison | None:
    """The stored comparison of two versions, or None."""
    backends.access.authorize(actor, "view", now, target=f"version {candidate}")
    return backends.registry.find_comparison(baseline, candidate)


def live_evidence(backends: Backends, baseline: int, candidate: int, *, actor: str,
                  now: datetime) -> LiveEvidence:
    """How ``candidate`` behaved on live traffic beside ``baseline`` (shadow pairs; canary
    arms), see ``core.monitoring.live``."""
    backends.access.authorize(actor, "view", now, target=f"version {candidate}")
    return _live(backends, baseline, candidate)


def _live(backends: Backends, baseline: int, candidate: int) -> LiveEvidence:
    log, model = backends.prediction_log, backends.model
    classes = len(backends.registry.get_version(baseline).class_names)
    backends.registry.get_version(candidate)
    policy = backends.traffic.get()
    mode = policy.mode if policy.candidate == candidate else "off"
    pairs = log.shadow_pairs(model, baseline, candidate)
    evidence = paired_evidence(baseline, candidate, mode, pairs[:, 2], pairs[:, 3],
                               pairs[:, 4], classes, candidate_ids=pairs[:, 1])
    canary = log.variant_outcomes(model, candidate, "canary")
    if not len(canary):
        return evidence
    champion = log.variant_outcomes(model, baseline, "champion")
    return replace(evidence, arms=[arm(baseline, champion[:, 0], champion[:, 1]),
                                   arm(candidate, canary[:, 0], canary[:, 1])])


def gate_advice(backends: Backends, comparison: Comparison, *, actor: str,
                now: datetime) -> tuple[GateAdvice | None, LiveEvidence]:
    """The gate's advice on a stored comparison, amended by the live evidence so far."""
    live = live_evidence(backends, comparison.baseline, comparison.candidate, actor=actor,
                         now=now)
    return (with_live(comparison.advice, live) if comparison.advice else None), live


def decide_version(backends: Backends, action: str, version: int, *, actor: str,
                   reason: str, now: datetime, override_gate: bool = False,
                   expected_champion: int | None = None) -> AuditEntry:
    """Promote, reject or roll back (see ``governance.decisions.decide``), with the drift
    status of the champion and the candidate's live evidence at this moment kept in the
    audit entry (the gate takes live evidence into account once there is enough)."""
    live = None
    if action != "rollback":
        try:
            live = _live(backends, backends.registry.get_champion().version, version)
        except CoreError:
            live = None  # no champion or no such version: decide() says which
    return decide(backends.access, backends.registry, action, version, actor=actor,
                  reason=reason, now=now,
                  separation_of_duties=backends.config.separation_of_duties,
                  override_gate=override_gate, expected_champion=expected_champion,
                  drift=drift_snapshot(backends), live=live)


def check_audit_log(backends: Backends, *, actor: str, now: datetime,
                    anchor: tuple[int, str] | None = None) -> Verification:
    """Verifies the hash chain and the catalog's statuses against it."""
    backends.access.authorize(actor, "view", now, target="audit log")
    return verify_audit(backends.audit_log, backends.registry, anchor)


def audit_head(backends: Backends, *, actor: str, now: datetime) -> dict:
    """The audit log's head (newest entry, its hash and scheme), to keep outside the
    database and check the log against later (``audit verify --anchor``)."""
    backends.access.authorize(actor, "view", now, target="audit log")
    entries = backends.audit_log.read_entries()
    if not entries:
        return {"seq": 0, "hash": None, "at": None, "keyed": False}
    last = entries[-1]
    return {"seq": last.seq, "hash": last.hash, "at": last.at,
            "keyed": last.hash_scheme is not None}


def seal_audit_log(backends: Backends, *, actor: str, reason: str, now: datetime
                   ) -> AuditEntry:
    """Appends a keyed entry (admins): after AUDIT_KEY is first set, the log verifies
    once its newest entry is keyed; any write does that, this one on purpose."""
    acting = backends.access.authorize(actor, "manage_users", now, target="audit log")
    if not backends.database.audit_key:
        raise InvalidInput("AUDIT_KEY is not set here, so there is nothing to seal with. To "
                           "fix this, set AUDIT_KEY (the same on every process) and run "
                           "this again.")
    return backends.audit_log.append_alone(AuditEntry(
        at=stamp(now), actor=acting.name, role=acting.role, action="seal_audit_log",
        outcome="done", model=backends.model, target="audit log",
        reason=check_reason(reason)))


def audit_entries(backends: Backends, *, actor: str, now: datetime) -> list[AuditEntry]:
    """Every audit entry, oldest first (channels' targets redacted, as everywhere)."""
    backends.access.authorize(actor, "view", now, target="audit log")
    return [redacted_entry(entry) for entry in backends.audit_log.read_entries()]


def export_audit_log(backends: Backends, fmt: str, *, actor: str, now: datetime) -> str:
    """The whole log as ``json`` or ``csv``."""
    return export(audit_entries(backends, actor=actor, now=now), fmt)
