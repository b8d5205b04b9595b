-- A reviewer who is unsure flags the item for an admin, with a note: the
-- item moves to the adjudication queue and the note goes with it. Flags
-- stay as the item's history after an admin decides.
-- Keep in step with migrations/postgres.
CREATE TABLE review_flags (
    task        TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    note        TEXT NOT NULL,
    flagged_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (task, item_id, reviewer)
);
