DROP TABLE monitor_evaluations;
DROP TABLE monitor_state;
DROP INDEX verdicts_by_human_time;
