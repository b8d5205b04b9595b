-- The shadow predictions in time order, in one B-tree: a row is appended
-- at the end of its task's range (the newest pages stay in cache) instead
-- of going into a table, its primary-key index by item id (a random page
-- per row) and a time index. A row is written once, for a new item (the
-- items' key keeps it unique); the comparison reads the newest rows of a
-- task, the advisor all rows of a version.
CREATE TABLE shadow_predictions_by_time (
    task           TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    model_version  TEXT NOT NULL,
    item_id        TEXT NOT NULL,
    label          TEXT,
    confidence     DOUBLE,
    error          TEXT,
    forward_us     BIGINT NOT NULL,
    PRIMARY KEY (task, created_at, model_version, item_id)
) WITHOUT ROWID;
INSERT INTO shadow_predictions_by_time
    (task, created_at, model_version, item_id, label, confidence, error, forward_us)
    SELECT task, created_at, model_version, item_id, label, confidence, error, forward_us
    FROM shadow_predictions;
DROP TABLE shadow_predictions;
ALTER TABLE shadow_predictions_by_time RENAME TO shadow_predictions;
