-- Alerts a person has seen, and silences: while one holds, the alerts it
-- covers are recorded and shown but not emailed.
-- Keep in step with migrations/postgres.

-- Who acknowledged an open alert, and when.
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN acknowledged_at TIMESTAMP;
-- When its firing was announced (emailed, or would have been without a
-- mail server); NULL while a silence holds its email back. Alerts that
-- fired before this migration were announced then.
ALTER TABLE alerts ADD COLUMN notified_at TIMESTAMP;
UPDATE alerts SET notified_at = fired_at;

CREATE TABLE alert_silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind        TEXT NOT NULL,
    -- '' for the alerts about the whole service
    task        TEXT NOT NULL,
    -- one alert's subject, or NULL for every alert of the kind in the task
    subject     TEXT,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    -- when it ends (set to the moment it was ended early)
    ends_at     TIMESTAMP NOT NULL,
    -- who ended it early, if anyone
    ended_by    TEXT
);
CREATE INDEX alert_silences_by_end ON alert_silences (ends_at);
