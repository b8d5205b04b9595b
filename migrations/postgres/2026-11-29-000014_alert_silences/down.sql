DROP TABLE alert_silences;
ALTER TABLE alerts DROP COLUMN notified_at;
ALTER TABLE alerts DROP COLUMN acknowledged_at;
ALTER TABLE alerts DROP COLUMN acknowledged_by;
