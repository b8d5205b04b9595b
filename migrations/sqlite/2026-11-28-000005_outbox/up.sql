-- Escalations: the outbox of email and webhook messages (written in the
-- transaction of the event that causes them, sent by a background worker),
-- each delivery attempt, and alerts (one open alert per kind, task and
-- subject). Keep in step with migrations/postgres.

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- email | webhook
    kind             TEXT NOT NULL,
    -- one email address, or the webhook URL
    destination      TEXT NOT NULL,
    task             TEXT,
    subject          TEXT NOT NULL,
    -- email: the text part; webhook: the JSON document posted
    body             TEXT NOT NULL,
    html             TEXT,
    -- a message written twice with the same key is written once
    dedupe_key       TEXT UNIQUE,
    -- pending | sent | dead
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_error       TEXT,
    -- the send that delivered it (several emails may go as one digest)
    delivery         TEXT,
    created_at       TIMESTAMP NOT NULL,
    sent_at          TIMESTAMP
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_destination ON outbox (destination, sent_at);

CREATE TABLE outbox_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    message_id  BIGINT NOT NULL,
    at          TIMESTAMP NOT NULL,
    ok          BOOLEAN NOT NULL,
    error       TEXT,
    millis      BIGINT NOT NULL
);
CREATE INDEX outbox_attempts_by_message ON outbox_attempts (message_id, at);

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind         TEXT NOT NULL,
    -- '' for alerts about the whole service
    task         TEXT NOT NULL,
    -- what within the task ('' or an item id)
    subject      TEXT NOT NULL,
    severity     TEXT NOT NULL,
    summary      TEXT NOT NULL,
    -- the figures that fired it, JSON
    numbers      TEXT NOT NULL,
    fired_at     TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    resolved_at  TIMESTAMP
);
-- Deduplication: at most one open alert per kind, task and subject.
CREATE UNIQUE INDEX alerts_one_open ON alerts (kind, task, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_fired ON alerts (fired_at);
