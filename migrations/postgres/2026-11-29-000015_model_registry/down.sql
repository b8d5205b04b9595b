ALTER TABLE deployments DROP COLUMN candidate_since;
DROP TABLE shadow_predictions;
ALTER TABLE model_versions DROP COLUMN imported_by;
ALTER TABLE model_versions DROP COLUMN content_sha256;
ALTER TABLE model_versions DROP COLUMN weights;
