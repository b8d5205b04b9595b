DROP TABLE sessions;
DROP TABLE user_tasks;
DROP TABLE users;
