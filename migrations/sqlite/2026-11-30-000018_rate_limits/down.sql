DROP TABLE rate_counts;
ALTER TABLE api_tokens DROP COLUMN rate_window_secs;
ALTER TABLE api_tokens DROP COLUMN rate_limit;
