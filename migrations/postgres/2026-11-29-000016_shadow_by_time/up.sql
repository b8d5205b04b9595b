-- A shadow row is written once, for a new item (the items' key keeps it
-- unique), and read by time (the comparison) or by version (the advisor):
-- the primary-key index by item id cost a random index page per row on
-- the scoring path and served no query. The time index stays.
ALTER TABLE shadow_predictions DROP CONSTRAINT shadow_predictions_pkey;
