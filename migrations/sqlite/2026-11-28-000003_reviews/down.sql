DROP TABLE reviews;
ALTER TABLE verdicts DROP COLUMN basis;
ALTER TABLE items DROP COLUMN lease_expires_at;
ALTER TABLE items DROP COLUMN lease_owner;
