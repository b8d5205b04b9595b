DROP TABLE monitor_evaluations;
DROP TABLE monitor_state;
DROP INDEX reviews_by_time;
