-- The scoring core: tasks, model versions, deployments, items, predictions,
-- verdicts, API tokens and the audit log. SQLite flavour; keep in step with
-- migrations/postgres.

CREATE TABLE tasks (
    name        TEXT PRIMARY KEY NOT NULL,
    automation  TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE model_versions (
    task           TEXT NOT NULL,
    version        TEXT NOT NULL,
    card           TEXT NOT NULL,
    data_sha256    TEXT NOT NULL,
    registered_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (task, version)
);

CREATE TABLE deployments (
    task               TEXT PRIMARY KEY NOT NULL,
    live_version       TEXT,
    candidate_version  TEXT,
    candidate_mode     TEXT,
    canary_percent     INTEGER,
    previous_version   TEXT,
    updated_at         TIMESTAMP NOT NULL,
    updated_by         TEXT NOT NULL
);

CREATE TABLE items (
    task           TEXT NOT NULL,
    id             TEXT NOT NULL,
    input          TEXT NOT NULL,
    input_sha256   TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    review_state   TEXT NOT NULL,
    blind          BOOLEAN NOT NULL,
    audit          BOOLEAN NOT NULL,
    model_version  TEXT,
    -- top-two probability gap, kept while the item waits for a human
    margin         DOUBLE,
    sla_deadline   TIMESTAMP,
    created_at     TIMESTAMP NOT NULL,
    decided_at     TIMESTAMP,
    PRIMARY KEY (task, id)
);
-- The review queue: pending items by deadline, then by uncertainty. Decided
-- items have no deadline and no margin, so they append at the end of their
-- section instead of dirtying random pages. (No partial index: SQLite would
-- re-prepare every items statement whose bound values change.)
CREATE INDEX items_review_queue ON items (task, review_state, sla_deadline, margin);
CREATE INDEX items_by_created ON items (task, created_at);

-- Predictions and verdicts are small rows read by key: stored in their
-- primary key (WITHOUT ROWID), one B-tree each instead of two, so a commit
-- dirties fewer pages.
CREATE TABLE predictions (
    task           TEXT NOT NULL,
    item_id        TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    label          TEXT,
    confidence     DOUBLE,
    probabilities  TEXT,
    error          TEXT,
    featurise_us   BIGINT NOT NULL,
    forward_us     BIGINT NOT NULL,
    policy_us      BIGINT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (task, item_id, model_version)
) WITHOUT ROWID;

CREATE TABLE verdicts (
    task           TEXT NOT NULL,
    item_id        TEXT NOT NULL,
    label          TEXT NOT NULL,
    source         TEXT NOT NULL,
    confidence     DOUBLE,
    model_version  TEXT,
    decided_by     TEXT,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (task, item_id)
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    secret_sha256  TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP
);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TIMESTAMP NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    task     TEXT,
    subject  TEXT,
    detail   TEXT NOT NULL
);
CREATE INDEX audit_log_by_task ON audit_log (task, at);
