DROP TABLE metric_minutes;
