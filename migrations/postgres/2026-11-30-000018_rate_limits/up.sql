-- Rate limits (issue 14 part 4). A token may have a rate of its own: at
-- most rate_limit requests per window of rate_window_secs seconds (both
-- NULL: the configured default, if any).
-- Keep in step with migrations/sqlite.
ALTER TABLE api_tokens ADD COLUMN rate_limit BIGINT;
ALTER TABLE api_tokens ADD COLUMN rate_window_secs BIGINT;

-- Requests counted per key ("token:<name>", "address:<ip>",
-- "auth-failures:<ip>") in fixed windows starting at window_start (Unix
-- seconds, a multiple of the window's length). Every instance adds what
-- it counted and reads the total of all instances; old windows are
-- deleted by the rate-limit sync job.
CREATE TABLE rate_counts (
    key           TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);

CREATE INDEX rate_counts_by_window ON rate_counts (window_start);
