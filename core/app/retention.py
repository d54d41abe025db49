"""Keeping the prediction log to a size: ``PREDICTION_LOG_RETENTION_DAYS``.

Each monitor pass deletes raw rows older than the retention, in batches, but only
rows whose hour and day already have their snapshots (what the Drift and Traffic
pages read for closed periods), so no chart loses a period. Each batch commits with
an audit entry that counts what it deleted: the log's shrinking is on the record,
and a monitor killed between batches leaves every deletion accounted for.
Snapshots are kept, and so are predictions a person labelled (training data).
Then the image packs beside the log (``core.monitoring.logged_images``) that no row
refers to any more go too; a labelled image is moved into a pack of kept images first,
so that one label never holds a whole batch's pack. The audit entry of that step
counts the packs and bytes removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.app.backends import Backends
from core.audit import Actor, AuditEntry, append, stamp
from core.monitoring.prediction_log import SWEEP_GRACE_SECONDS
from core.monitoring.snapshots import PERIODS

RETENTION_BATCH_ROWS = 50_000
RETENTION = Actor("monitor", "system")


def retention_cutoff(backends: Backends, now: datetime) -> str | None:
    """The time before which raw rows may go (None: keep everything for now)."""
    days = backends.config.prediction_log_retention_days
    if days <= 0:
        return None
    cutoff = stamp(now - timedelta(days=days))
    for period in PERIODS:
        done = backends.snapshots.cursor(f"{period}.done_until")
        if done is None:
            return None  # no period summarized yet: nothing may go
        cutoff = min(cutoff, done)
    return cutoff


def apply_retention(backends: Backends, now: datetime,
                    batch_rows: int = RETENTION_BATCH_ROWS,
                    pack_grace_seconds: float = SWEEP_GRACE_SECONDS) -> int:
    """Deletes what the retention allows, batch by batch, then the images no row refers
    to; returns the rows deleted."""
    cutoff = retention_cutoff(backends, now)
    if cutoff is None:
        return 0
    total = 0
    while True:
        with backends.database.write() as conn:
            predictions, failures = backends.prediction_log.delete_before(
                conn, backends.model, cutoff, batch_rows)
            if predictions or failures:
                append(conn, AuditEntry(
                    at=stamp(now), actor=RETENTION.name, role=RETENTION.role,
                    action="delete_predictions", outcome="done", model=backends.model,
                    target="prediction log",
                    reason=f"older than {backends.config.prediction_log_retention_days} "
                           "days (PREDICTION_LOG_RETENTION_DAYS)",
                    details={"predictions": predictions, "failed_requests": failures,
                             "before": cutoff}))
        total += predictions + failures
        if predictions < batch_rows and failures < batch_rows:
            break
    swept = backends.prediction_log.sweep_images(backends.model, cutoff,
                                                 pack_grace_seconds)
    if swept.packs_removed:
        backends.audit_log.append_alone(AuditEntry(
            at=stamp(now), actor=RETENTION.name, role=RETENTION.role,
            action="delete_logged_images", outcome="done", model=backends.model,
            target="prediction log images",
            reason="no logged prediction refers to them any more (retention)",
            details={"packs": swept.packs_removed, "bytes": swept.bytes_removed,
                     "labelled_images_kept": swept.images_kept, "before": cutoff}))
    return total
