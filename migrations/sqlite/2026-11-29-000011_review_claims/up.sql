-- The review queue remembers two things more about a claim.
-- 1. When the server handed it out (`claimed_at`): the time a label took
--    is measured on the server, never taken from the client.
-- 2. Who skipped what (`review_skips`): a skipped item is not handed
--    back to that reviewer for a while, unless nothing else waits.
-- Keep in step with migrations/postgres.
ALTER TABLE items ADD COLUMN claimed_at TIMESTAMP;

CREATE TABLE review_skips (
    task        TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    skipped_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (task, item_id, reviewer)
);

-- Forgetting old skips deletes by time.
CREATE INDEX review_skips_by_time ON review_skips (skipped_at);
