DROP TABLE score_job_results;
DROP TABLE score_jobs;
