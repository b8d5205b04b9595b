-- Sign-in attempts per account and per client address, counted in the
-- database before the password is checked: every instance shares the
-- limit, a restart keeps a lock-out, and concurrent attempts cannot slip
-- past it. A key's window starts with its first attempt.
-- Keep in step with migrations/postgres.
CREATE TABLE sign_in_attempts (
    key           TEXT PRIMARY KEY,
    window_start  TIMESTAMP NOT NULL,
    attempts      BIGINT NOT NULL
);

CREATE INDEX sign_in_attempts_by_window ON sign_in_attempts (window_start);
