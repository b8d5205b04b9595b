DROP TABLE metric_hours;
DELETE FROM metric_minutes WHERE series = 'agreement';
