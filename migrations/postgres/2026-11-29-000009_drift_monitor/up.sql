-- The drift monitor: its latest state per task (drift per feature, output
-- tests, the concept-drift detectors, the accuracy estimates), a row per
-- evaluation for the estimates' history, and an index over the reviews by
-- time for the model-vs-human streams. Keep in step with
-- migrations/sqlite.
CREATE INDEX reviews_by_time ON reviews (task, created_at, item_id, reviewer);

CREATE TABLE monitor_state (
    task        TEXT PRIMARY KEY NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    state       TEXT NOT NULL
);

CREATE TABLE monitor_evaluations (
    task           TEXT NOT NULL,
    evaluated_at   TIMESTAMP NOT NULL,
    items_seen     BIGINT NOT NULL,
    model_version  TEXT NOT NULL,
    summary        TEXT NOT NULL,
    PRIMARY KEY (task, evaluated_at, items_seen)
);
