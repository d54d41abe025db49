"""The tables, in SQLAlchemy Core: one definition that every database dialect renders.

Stores write their statements against these names; ``core.storage.migrations``
creates and upgrades them. Times are ISO 8601 text (UTC), JSON documents are
text, arrays and images are binary.
"""

from __future__ import annotations

from sqlalchemy import (
                        BigInteger,
                        CheckConstraint,
                        Column,
                        Float,
                        Index,
                        Integer,
                        LargeBinary,
                        MetaData,
                        Table,
                        Text,
                        text,
)

metadata = MetaData()

versions = Table(
    "versions", metadata,
    Column("model", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("status", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("parent", Integer),
    Column("metadata", Text, nullable=False),
    CheckConstraint("status IN ('candidate', 'champion', 'rejected', 'archived')",
                    name="versions_status"),
)
# At most one champion per model, enforced by the database itself.
Index("one_champion_per_model", versions.c.model, unique=True,
      sqlite_where=text("status = 'champion'"), postgresql_where=text("status = 'champion'"))

comparisons = Table(
    "comparisons", metadata,
    Column("model", Text, primary_key=True),
    Column("baseline", Integer, primary_key=True, autoincrement=False),
    Column("candidate", Integer, primary_key=True, autoincrement=False),
    Column("at", Text, nullable=False),
    Column("result", Text, nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("version", Integer),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    # Step 12: NULL, plain SHA-256; "hmac-sha256", chained under AUDIT_KEY.
    Column("hash_scheme", Text),
)

audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", Text, nullable=False),
    CheckConstraint("id = 1", name="audit_head_single_row"),
)

users = Table(
    "users", metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    # Step 10: an admin may disable an account (it keeps its history; it can do nothing).
    Column("disabled_at", Text),
    Column("disabled_by", Text),
    CheckConstraint("role IN ('viewer', 'operator', 'reviewer', 'admin')", name="users_role"),
)

# Step 10: failed sign-ins per client address and user name (name '*': any name from that
# client), for exponential back-off that slows guessing without locking anyone out.
sign_in_failures = Table(
    "sign_in_failures", metadata,
    Column("client", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_at", Text, nullable=False),
    Column("blocked_until", Text),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("submitted_by", Text, nullable=False),
    Column("submitted_at", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("progress", Text, nullable=False, server_default="{}"),
    Column("log_tail", Text, nullable=False, server_default=""),
    Column("result_version", Integer),
    Column("error", Text),
    Column("pid", Integer),
    Column("started_at", Text),
    Column("finished_at", Text),
    Column("cancel_requested", Integer, nullable=False, server_default="0"),
    Column("runner", Text),  # step 5: "ray:<submission id>"; NULL: a local process (pid)
    sqlite_autoincrement=True,
)

# Log ids outgrow 32 bits on a busy server: 64-bit on PostgreSQL (SQLite's are already).
LOG_ID = Integer().with_variant(BigInteger(), "postgresql")

predictions = Table(
    "predictions", metadata,
    Column("id", LOG_ID, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("predicted", Integer, nullable=False),
    Column("label", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("probabilities", LargeBinary, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("brightness", Float, nullable=False),
    Column("contrast", Float, nullable=False),
    Column("sharpness", Float, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    Column("true_label", Integer),
    Column("pixels", LargeBinary, nullable=False),
    # Step 3: API traffic. request_id: the id the client sees (its X-Request-ID, or one
    # made for it); variant: champion, canary, shadow or direct (a version or label asked
    # for by name).
    Column("request_id", Text),
    Column("client", Text),
    Column("variant", Text),
    # Step 6: the image's out-of-distribution score (NULL: the version had no detector).
    Column("ood_score", Float),
    # Step 7: what pairs a shadow prediction with the answer: the server's own id of the
    # request (never the client's X-Request-ID, kept in request_id) and the instance's
    # place in it. NULL on rows logged before step 7 that could not be paired for sure.
    Column("server_request_id", Text),
    Column("instance", Integer),
    # Step 13: the image is kept beside the log (core.monitoring.logged_images): its
    # pack, offset and length; ``pixels`` is empty then (it held the PNG before).
    Column("image_pack", Text),
    Column("image_offset", BigInteger),
    Column("image_length", Integer),
    # Step 16: the OpenTelemetry trace of the request that logged it (NULL: not traced).
    Column("trace_id", Text),
    sqlite_autoincrement=True,
)
Index("predictions_by_version", predictions.c.model, predictions.c.version, predictions.c.id)

# Step 3: API requests that got no prediction (no image kept), for the error rate.
request_failures = Table(
    "request_failures", metadata,
    Column("id", LOG_ID, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("version", Integer),
    Column("variant", Text),
    Column("status", Integer, nullable=False),
    Column("error_kind", Text, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("client", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("trace_id", Text),  # step 16, as in predictions
    sqlite_autoincrement=True,
)

api_keys = Table(
    "api_keys", metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("rate_limit", Float),  # requests per second; NULL: unlimited
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("revoked_at", Text),
    Column("revoked_by", Text),
    # Step 15: a key may be a phone's (device).
    CheckConstraint("role IN ('viewer', 'operator', 'reviewer', 'admin', 'device')",
                    name="api_keys_role"),
)

traffic_policies = Table(
    "traffic_policies", metadata,
    Column("model", Text, primary_key=True),
    Column("mode", Text, nullable=False),
    Column("candidate", Integer),
    Column("percent", Integer),
    Column("set_at", Text, nullable=False),
    Column("set_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    CheckConstraint("mode IN ('off', 'shadow', 'canary')", name="traffic_mode"),
)

# Step 4: monitoring over real time. One snapshot per model, version, period kind
# (hour, day) and period start, computed once when the period has closed; version 0
# holds API requests that failed before any version was chosen.
monitor_snapshots = Table(
    "monitor_snapshots", metadata,
    Column("model", Text, primary_key=True),
    Column("period", Text, primary_key=True),
    Column("start", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("end", Text, nullable=False),
    Column("computed_at", Text, nullable=False),
    Column("n", Integer, nullable=False),  # predictions logged in the period
    Column("labelled", Integer, nullable=False),
    Column("alert", Integer, nullable=False),
    Column("estimated_accuracy", Float),
    Column("realized_accuracy", Float),
    Column("reference_accuracy", Float),
    Column("drift", Text, nullable=False),  # JSON: statistic -> value, status, warn, alert
    Column("traffic", Text, nullable=False),  # JSON: variant -> requests, errors, p50/95/99
    Column("late_rows", Integer, nullable=False, server_default="0"),
    CheckConstraint("period IN ('hour', 'day')", name="snapshot_period"),
)

# Where the monitor has got to, per model: named cursors such as "hour.done_until"
# (every hourly period ending then or before has its snapshots), "predictions.seen"
# (the highest log id seen: rows above it dated in a done period are late) and
# "audit.seen" (the last audit entry looked at for decisions).
monitor_cursors = Table(
    "monitor_cursors", metadata,
    Column("model", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

alert_channels = Table(
    "alert_channels", metadata,
    Column("model", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    # URL, or e-mail address; sealed (fernet:...) when SECRETS_KEY is set.
    Column("target", Text, nullable=False),
    # The webhook's HMAC key: signing needs it, so it is kept (sealed, as the target).
    Column("secret", Text),
    Column("smtp", Text),  # HOST:PORT
    Column("smtp_user", Text),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    # Step 8: what may be shown of the target (redacted) and its fingerprint.
    Column("target_shown", Text, nullable=False, server_default=""),
    Column("target_fingerprint", Text, nullable=False, server_default=""),
    CheckConstraint("kind IN ('webhook', 'slack', 'email')", name="channel_kind"),
)

# Per-model overrides of a rule's defaults (JSON of the changed settings only).
alert_rules = Table(
    "alert_rules", metadata,
    Column("model", Text, primary_key=True),
    Column("rule", Text, primary_key=True),
    Column("settings", Text, nullable=False),
    Column("set_at", Text, nullable=False),
    Column("set_by", Text, nullable=False),
)

alert_episodes = Table(
    "alert_episodes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("subject", Text, nullable=False),  # what fires: "version 3", "job 7", "audit log"
    Column("version", Integer),
    Column("summary", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("started_at", Text, nullable=False),
    Column("resolved_at", Text),
    Column("notified_at", Text, nullable=False),
    Column("acknowledged_by", Text),
    Column("acknowledged_at", Text),
    Column("silenced_until", Text),
    sqlite_autoincrement=True,
)

# The outbox: one row per message to a channel, sent and retried by the monitor.
alert_deliveries = Table(
    "alert_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", Text, nullable=False),
    Column("episode", Integer),  # None: a test message
    Column("channel", Text, nullable=False),
    Column("state", Text, nullable=False),  # firing / resolved / test
    Column("payload", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending / delivered / gave_up
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Text, nullable=False),
    Column("delivered_at", Text),
    sqlite_autoincrement=True,
)

alert_attempts = Table(
    "alert_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery", Integer, nullable=False),
    Column("at", Text, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("status", Text, nullable=False),  # HTTP status or SMTP reply, or the failure
    Column("error", Text),
    sqlite_autoincrement=True,
)

# Step 9: what failed in the monitor's last pass, per item ("rule drift", "deliveries",
# "hour periods", ...): the Alerts page shows them; a pass replaces them.
monitor_problems = Table(
    "monitor_problems", metadata,
    Column("model", Text, primary_key=True),
    Column("item", Text, primary_key=True),
    Column("at", Text, nullable=False),
    Column("error", Text, nullable=False),
)

# Step 11: every label a person gave a logged prediction, with who and when. A signed-in
# user's label counts (predictions.true_label follows the latest); a visitor's is a
# suggestion (counted 0) until a signed-in user gives the same label.
labels = Table(
    "labels", metadata,
    Column("id", LOG_ID, primary_key=True, autoincrement=True),
    Column("model", Text, nullable=False),
    Column("prediction", LOG_ID, nullable=False),
    Column("label", Integer, nullable=False),  # class index, or -2: none of these classes
    Column("by", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("counted", Integer, nullable=False),
    sqlite_autoincrement=True,
)

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Text, nullable=False),
)
