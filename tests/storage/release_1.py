"""A registry database as release 1 left it: its schema, and rows in each table."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from core.audit import GENESIS_HASH, AuditEntry, entry_hash

RELEASE_1 = (Path(__file__).parent / "release1_schema.sql").read_text()


RELEASE_1_METADATA = {
    "architecture": "small_cnn", "class_names": ["a", "b"], "created_at": "2026-01-01T00:00:00",
    "created_by": "ann", "dataset": {"name": "fashion_mnist", "fingerprint": "sha256:1",
                                     "split_spec": "test", "sizes": {"train": 4, "test": 2,
                                                                     "validation": 2}},
    "environment": {"python": "3.11"}, "epochs": 1, "history": [{"epoch": 1, "loss": 0.5}],
    "hyperparameters": {"seed": 42, "epochs": 1}, "input_spec": {"height": 28, "width": 28,
                                                                 "channels": 1},
    "metrics": {"test": {"accuracy": 0.9}}, "parent": None, "registered_as": "champion",
    "registration_note": "initial baseline", "training_seconds": 3.5, "version": 1}


RELEASE_1_COMPARISON = {
    "baseline": 1, "candidate": 2, "at": "2026-01-01T00:00:00+00:00",
    "holdouts": {"clean": {
        "n": 4, "accuracy": {"1": 0.5, "2": 0.75}, "macro_f1": {"1": 0.4, "2": 0.7},
        "ece": {"1": 0.1, "2": 0.05}, "confusion_matrix": {"1": [[1, 1], [1, 1]],
                                                           "2": [[2, 0], [1, 1]]},
        "accuracy_diff": 0.25, "accuracy_diff_ci": [-0.25, 0.75], "mcnemar_p": 0.5,
        "per_class_f1_delta": {"a": 0.3, "b": 0.2}}},
    "recommendation": "review", "reasons": ["no drifted holdout"],
    "checks": [{"name": "clean accuracy held", "passed": True, "detail": "+25.00 points"}],
    "policy": {"max_clean_loss": 0.005, "reject_clean_loss": 0.02, "alpha": 0.05}}


def release_1_database(path: Path) -> None:
    """A registry.db as release 1 left it: its tables, no schema_version, rows in each."""
    db = sqlite3.connect(path)
    db.executescript(RELEASE_1)
    db.execute("INSERT INTO versions VALUES ('classifier', 1, 'champion', '2026-01-01T00:00:00', "
               "'ann', NULL, ?)", (json.dumps(RELEASE_1_METADATA),))
    db.execute("INSERT INTO comparisons VALUES ('classifier', 1, 2, 't', ?)",
               (json.dumps(RELEASE_1_COMPARISON),))
    db.execute("INSERT INTO users VALUES ('ann', 'admin', '', '2026-01-01T00:00:00', 'setup')")
    db.execute("INSERT INTO jobs (model, kind, submitted_by, submitted_at, params, status) "
               "VALUES ('classifier', 'retrain', 'ann', '2026-01-01T00:00:00', "
               "'{\"epochs\": 1}', 'queued')")
    for i in range(3):
        db.execute("INSERT INTO predictions (at, model, version, source, predicted, label, "
                   "confidence, probabilities, latency_ms, brightness, contrast, sharpness, "
                   "width, height, embedding, true_label, pixels) VALUES (?, 'classifier', 1, "
                   "'cli', 1, 'b', 0.8, ?, 1.0, 0.5, 0.2, 0.01, 28, 28, ?, NULL, ?)",
                   (f"2026-01-01T00:00:0{i}.000+00:00", np.array([0.2, 0.8], np.float32).tobytes(),
                    np.zeros(4, np.float16).tobytes(), b"png"))
    previous = GENESIS_HASH
    for seq, action in enumerate(("add_user", "register", "submit_job"), start=1):
        entry = AuditEntry(at=f"2026-01-01T00:00:0{seq}", actor="ann", role="admin",
                           action=action, outcome="done", model="classifier",
                           target="version 1", version=1 if action == "register" else None,
                           details={"to_status": "champion"} if action == "register" else {})
        written = {k: v for k, v in entry.as_dict().items() if k != "hash_scheme"}  # not yet
        row = written | {"seq": seq, "prev_hash": previous,
                         "details": json.dumps(entry.details, sort_keys=True)}
        row["hash"] = entry_hash(row)
        columns = list(row)
        db.execute(f"INSERT INTO audit_log ({', '.join(columns)}) VALUES "
                   f"({', '.join('?' * len(columns))})", [row[c] for c in columns])
        previous = row["hash"]
    db.execute("INSERT INTO audit_head VALUES (1, 3, ?)", (previous,))
    db.commit()
    db.close()
