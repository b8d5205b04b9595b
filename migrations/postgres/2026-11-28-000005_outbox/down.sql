DROP TABLE alerts;
DROP TABLE outbox_attempts;
DROP TABLE outbox;
