-- The review queue: a reviewer claims an item with a lease; an expired lease
-- frees it again. Each human label is a review. Keep in step with
-- migrations/postgres.

ALTER TABLE items ADD COLUMN lease_owner TEXT;
ALTER TABLE items ADD COLUMN lease_expires_at TIMESTAMP;

-- How a verdict was reached: model, single (one reviewer), consensus (the
-- majority of several), adjudication (an admin broke a tie).
ALTER TABLE verdicts ADD COLUMN basis TEXT;

CREATE TABLE reviews (
    task            TEXT NOT NULL,
    item_id         TEXT NOT NULL,
    reviewer        TEXT NOT NULL,
    label           TEXT NOT NULL,
    comment         TEXT,
    seconds_spent   DOUBLE NOT NULL,
    blind           BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (task, item_id, reviewer)
);
CREATE INDEX reviews_by_reviewer ON reviews (reviewer, created_at);
