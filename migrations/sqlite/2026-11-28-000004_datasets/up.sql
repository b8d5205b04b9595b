-- Dataset snapshots: a named, immutable label export whose content hash a
-- model card can cite. The file lives under the configured datasets
-- directory; this row is its record. Keep in step with migrations/postgres.

CREATE TABLE dataset_snapshots (
    task        TEXT NOT NULL,
    name        TEXT NOT NULL,
    format      TEXT NOT NULL,
    path        TEXT NOT NULL,
    row_count   BIGINT NOT NULL,
    byte_count  BIGINT NOT NULL,
    filters     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (task, name)
);
CREATE INDEX dataset_snapshots_by_sha256 ON dataset_snapshots (sha256);
