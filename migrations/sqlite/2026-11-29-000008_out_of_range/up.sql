-- The features of an item outside its model's training range (a JSON array
-- of names), when there are any: the reviewer is shown which.
ALTER TABLE items ADD COLUMN out_of_range TEXT;
