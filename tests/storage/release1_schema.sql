-- The schema of release 1 (before core.storage.migrations), exactly as its modules
-- created it: the upgrade test starts from this.

-- from core/registry.py
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'champion', 'rejected', 'archived')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    parent INTEGER,
    metadata TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_champion_per_model
    ON versions (model) WHERE status = 'champion';
CREATE TABLE IF NOT EXISTS comparisons (
    model TEXT NOT NULL,
    baseline INTEGER NOT NULL,
    candidate INTEGER NOT NULL,
    at TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (model, baseline, candidate)
);

-- from core/audit.py
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    model TEXT NOT NULL,
    target TEXT NOT NULL,
    version INTEGER,
    reason TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- from core/users.py
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'reviewer', 'admin')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

-- from core/jobs.py
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    log_tail TEXT NOT NULL DEFAULT '',
    result_version INTEGER,
    error TEXT,
    pid INTEGER,
    started_at TEXT,
    finished_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- from core/prediction_log.py
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    predicted INTEGER NOT NULL,
    label TEXT NOT NULL,
    confidence REAL NOT NULL,
    probabilities BLOB NOT NULL,
    latency_ms REAL NOT NULL,
    brightness REAL NOT NULL,
    contrast REAL NOT NULL,
    sharpness REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    true_label INTEGER,
    pixels BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_by_version ON predictions (model, version, id);
