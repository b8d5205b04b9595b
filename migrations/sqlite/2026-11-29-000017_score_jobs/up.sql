-- Batch scoring jobs (POST /api/v1/tasks/{task}/jobs): the uploaded file
-- and its results live in the database, the one thing every instance
-- shares, so any instance can run a job or serve its results. A job is
-- run under a lease; an instance that dies leaves it to the next claim,
-- which resumes after the last chunk whose results were stored (scoring
-- is idempotent by item id, so a chunk scored twice is stored once).
CREATE TABLE score_jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    task             TEXT NOT NULL,
    format           TEXT NOT NULL,
    state            TEXT NOT NULL,
    input            BLOB NOT NULL,
    input_bytes      BIGINT NOT NULL,
    chunk_rows       BIGINT NOT NULL,
    chunks_done      BIGINT NOT NULL,
    rows_read        BIGINT NOT NULL,
    scored           BIGINT NOT NULL,
    created          BIGINT NOT NULL,
    automated        BIGINT NOT NULL,
    queued           BIGINT NOT NULL,
    refused          BIGINT NOT NULL,
    error_line       BIGINT,
    error_code       TEXT,
    error_field      TEXT,
    error_message    TEXT,
    created_by       TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    started_at       TIMESTAMP,
    finished_at      TIMESTAMP
);
CREATE INDEX score_jobs_by_state ON score_jobs (state, created_at);

-- Each chunk's result lines (JSONL), in file order by chunk.
CREATE TABLE score_job_results (
    job_id  TEXT NOT NULL REFERENCES score_jobs (id) ON DELETE CASCADE,
    chunk   BIGINT NOT NULL,
    body    BLOB NOT NULL,
    PRIMARY KEY (job_id, chunk)
);
