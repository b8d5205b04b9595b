-- People who sign in to the web UI: reviewers and admins. Passwords are
-- argon2id hashes in PHC form. Keep in step with migrations/postgres.

CREATE TABLE users (
    name           TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);

-- The tasks a reviewer may work (admins may work every task).
CREATE TABLE user_tasks (
    user_name  TEXT NOT NULL,
    task       TEXT NOT NULL,
    PRIMARY KEY (user_name, task)
);

-- Signed-in sessions. The cookie holds a random id; only its SHA-256 is
-- stored. Each session has its own CSRF token for the forms it posts.
CREATE TABLE sessions (
    id_sha256   TEXT PRIMARY KEY NOT NULL,
    user_name   TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);
