ALTER TABLE items DROP COLUMN out_of_range;
