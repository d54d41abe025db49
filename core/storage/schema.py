"""The tables, in SQLAlchemy Core: one definition that every database dialect renders.

Stores write their statements against these names; ``core.storage.migrations``
creates and upgrades them. Times are ISO 8601 text (UTC), JSON documents are
text, arrays and images are binary.
"""

from __future__ import annotations

from sqlalchemy import (
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
    CheckConstraint("role IN ('viewer', 'operator', 'reviewer', 'admin')", name="users_role"),
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
    sqlite_autoincrement=True,
)

predictions = Table(
    "predictions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
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
    # Step 3: API traffic. request_id pairs a shadow prediction with the answer;
    # variant: champion, canary, shadow or direct (a version or label asked for by name).
    Column("request_id", Text),
    Column("client", Text),
    Column("variant", Text),
    sqlite_autoincrement=True,
)
Index("predictions_by_version", predictions.c.model, predictions.c.version, predictions.c.id)

# Step 3: API requests that got no prediction (no image kept), for the error rate.
request_failures = Table(
    "request_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("version", Integer),
    Column("variant", Text),
    Column("status", Integer, nullable=False),
    Column("error_kind", Text, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("client", Text, nullable=False),
    Column("request_id", Text, nullable=False),
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
    CheckConstraint("role IN ('viewer', 'operator', 'reviewer', 'admin')", name="api_keys_role"),
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

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Text, nullable=False),
)
