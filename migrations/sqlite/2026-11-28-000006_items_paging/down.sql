DROP INDEX items_by_created;
CREATE INDEX items_by_created ON items (task, created_at);
