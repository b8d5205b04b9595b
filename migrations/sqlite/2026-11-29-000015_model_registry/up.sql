-- The model registry in the database: a version's weights and card are
-- imported once (with a content hash) and every instance serves those
-- bytes. Versions registered before it have no weights until imported.
ALTER TABLE model_versions ADD COLUMN weights BLOB;
ALTER TABLE model_versions ADD COLUMN content_sha256 TEXT;
ALTER TABLE model_versions ADD COLUMN imported_by TEXT;

-- Predictions of a version that scored an item beside the one that acted
-- on it: a candidate in shadow or canary, or the live version on an item
-- the canary decided. Nothing reads them to decide or to show a reviewer.
CREATE TABLE shadow_predictions (
    task           TEXT NOT NULL,
    item_id        TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    label          TEXT,
    confidence     DOUBLE,
    error          TEXT,
    forward_us     BIGINT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (task, model_version, item_id)
);
CREATE INDEX shadow_predictions_recent ON shadow_predictions (task, created_at);

-- When the deployment's candidate was set (its comparisons start there).
ALTER TABLE deployments ADD COLUMN candidate_since TIMESTAMP;
