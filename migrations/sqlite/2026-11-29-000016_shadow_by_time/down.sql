CREATE TABLE shadow_predictions_keyed (
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
INSERT INTO shadow_predictions_keyed
    SELECT task, item_id, model_version, label, confidence, error, forward_us, created_at
    FROM shadow_predictions;
DROP TABLE shadow_predictions;
ALTER TABLE shadow_predictions_keyed RENAME TO shadow_predictions;
CREATE INDEX shadow_predictions_recent ON shadow_predictions (task, created_at);
