-- Monitoring reads: what the dashboard needs over a week must not mean
-- reading every minute row and every review.
--
-- 1. Model-vs-human agreement is counted in the minute buckets when a
--    review is recorded (series `agreement`, names blind_agreed,
--    blind_disagreed, assisted_agreed, assisted_disagreed, per model
--    version; an undone review subtracts its count). The reviews already
--    stored are counted here.
-- 2. `metric_hours` holds the same sums per hour, added to in the same
--    transaction as the minutes; charts with slots of an hour or more read it.
-- Keep in step with migrations/postgres.
INSERT INTO metric_minutes (task, minute, series, name, model_version, count, total)
SELECT r.task, CAST(strftime('%s', r.created_at) AS BIGINT) / 60, 'agreement',
       CASE WHEN r.blind THEN 'blind_' ELSE 'assisted_' END
         || CASE WHEN r.label = p.label THEN 'agreed' ELSE 'disagreed' END,
       i.model_version, COUNT(*), 0
FROM reviews r
JOIN items i ON i.task = r.task AND i.id = r.item_id
JOIN predictions p ON p.task = i.task AND p.item_id = i.id AND p.model_version = i.model_version
WHERE p.label IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;

CREATE TABLE metric_hours (
    task           TEXT NOT NULL,
    hour           BIGINT NOT NULL,
    series         TEXT NOT NULL,
    name           TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    count          BIGINT NOT NULL,
    total          DOUBLE NOT NULL,
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
    PRIMARY KEY (task, hour, series, name, model_version)
) WITHOUT ROWID;

CREATE INDEX metric_hours_by_hour ON metric_hours (hour);

INSERT INTO metric_hours (task, hour, series, name, model_version, count, total, b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19)
SELECT task, minute / 60, series, name, model_version, SUM(count), SUM(total), SUM(b00), SUM(b01), SUM(b02), SUM(b03), SUM(b04), SUM(b05), SUM(b06), SUM(b07), SUM(b08), SUM(b09), SUM(b10), SUM(b11), SUM(b12), SUM(b13), SUM(b14), SUM(b15), SUM(b16), SUM(b17), SUM(b18), SUM(b19)
FROM metric_minutes
GROUP BY task, minute / 60, series, name, model_version;
