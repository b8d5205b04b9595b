DROP TABLE review_skips;
ALTER TABLE items DROP COLUMN claimed_at;
