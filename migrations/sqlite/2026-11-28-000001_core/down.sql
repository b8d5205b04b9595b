DROP TABLE audit_log;
DROP TABLE api_tokens;
DROP TABLE verdicts;
DROP TABLE predictions;
DROP TABLE items;
DROP TABLE deployments;
DROP TABLE model_versions;
DROP TABLE tasks;
