-- The admin items browser pages by (created_at, id), newest first; items
-- created in one batch share a time, so the index carries the id too and no
-- page sorts. Keep in step with the other backend.
DROP INDEX items_by_created;
CREATE INDEX items_by_created ON items (task, created_at, id);
