-- Monitoring: per task, model version and minute, what the scoring path
-- counted. Every instance adds its counts to the same row (an upsert that
-- sums), so several instances add up and a restart loses nothing. One row
-- per series and name: items by outcome, flags, latency per stage, labels,
-- the confidence distribution, refused requests. A histogram's 20 buckets
-- are columns b00..b19 (the bounds are fixed in code, per series), so
-- percentiles over any range are computed from summed buckets.
-- Keep in step with migrations/sqlite.
CREATE TABLE metric_minutes (
    task           TEXT NOT NULL,
    minute         BIGINT NOT NULL,
    series         TEXT NOT NULL,
    name           TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    count          BIGINT NOT NULL,
    total          DOUBLE PRECISION NOT NULL,
    b00  BIGINT NOT NULL DEFAULT 0,
    b01  BIGINT NOT NULL DEFAULT 0,
    b02  BIGINT NOT NULL DEFAULT 0,
    b03  BIGINT NOT NULL DEFAULT 0,
    b04  BIGINT NOT NULL DEFAULT 0,
    b05  BIGINT NOT NULL DEFAULT 0,
    b06  BIGINT NOT NULL DEFAULT 0,
    b07  BIGINT NOT NULL DEFAULT 0,
    b08  BIGINT NOT NULL DEFAULT 0,
    b09  BIGINT NOT NULL DEFAULT 0,
    b10  BIGINT NOT NULL DEFAULT 0,
    b11  BIGINT NOT NULL DEFAULT 0,
    b12  BIGINT NOT NULL DEFAULT 0,
    b13  BIGINT NOT NULL DEFAULT 0,
    b14  BIGINT NOT NULL DEFAULT 0,
    b15  BIGINT NOT NULL DEFAULT 0,
    b16  BIGINT NOT NULL DEFAULT 0,
    b17  BIGINT NOT NULL DEFAULT 0,
    b18  BIGINT NOT NULL DEFAULT 0,
    b19  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (task, minute, series, name, model_version)
);

-- Retention deletes by minute across tasks.
CREATE INDEX metric_minutes_by_minute ON metric_minutes (minute);
