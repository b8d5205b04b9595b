//! The `users` and `user_tasks` tables.

use diesel::prelude::*;

use crate::db::schema::{sign_in_attempts, user_tasks, users};
use crate::db::DbConnection;
use crate::domain::{now, Role, Timestamp};

/// Whether a user of this name exists (enabled or not).
pub fn exists(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    users::table
        .filter(users::name.eq(name))
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}

/// How many users there are.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Inserts a user with its tasks.
pub fn insert(
    conn: &mut DbConnection,
    name: &str,
    password_hash: &str,
    role: Role,
    tasks: &[String],
) -> QueryResult<()> {
    let at = now();
    diesel::insert_into(users::table)
        .values((
            users::name.eq(name),
            users::password_hash.eq(password_hash),
            users::role.eq(role),
            users::disabled.eq(false),
            users::created_at.eq(at),
            users::updated_at.eq(at),
        ))
        .execute(conn)?;
    for task in tasks {
        diesel::insert_into(user_tasks::table)
            .values((user_tasks::user_name.eq(name), user_tasks::task.eq(task)))
            .execute(conn)?;
    }
    Ok(())
}

/// Replaces the tasks a user is given; returns whether the user exists.
pub fn set_tasks(conn: &mut DbConnection, name: &str, tasks: &[String]) -> QueryResult<bool> {
    if !exists(conn, name)? {
        return Ok(false);
    }
    diesel::delete(user_tasks::table.filter(user_tasks::user_name.eq(name))).execute(conn)?;
    for task in tasks {
        diesel::insert_into(user_tasks::table)
            .values((user_tasks::user_name.eq(name), user_tasks::task.eq(task)))
            .execute(conn)?;
    }
    Ok(true)
}

/// Replaces a user's password hash; returns whether the user exists.
pub fn set_password(conn: &mut DbConnection, name: &str, password_hash: &str) -> QueryResult<bool> {
    diesel::update(users::table.find(name))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(now()),
        ))
        .execute(conn)
        .map(|n| n > 0)
}

/// Sets a user's `disabled` flag; returns whether the user exists.
pub fn set_disabled(conn: &mut DbConnection, name: &str, disabled: bool) -> QueryResult<bool> {
    diesel::update(users::table.find(name))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now())))
        .execute(conn)
        .map(|n| n > 0)
}

/// The tasks a user is given, by name.
pub fn tasks_of(conn: &mut DbConnection, name: &str) -> QueryResult<Vec<String>> {
    user_tasks::table
        .select(user_tasks::task)
        .filter(user_tasks::user_name.eq(name))
        .order(user_tasks::task)
        .load(conn)
}

/// Every user: name, role (as stored), disabled; by name.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, bool)>> {
    users::table
        .select((users::name, users::role, users::disabled))
        .order(users::name)
        .load(conn)
}

/// A user's password hash, role (as stored) and disabled flag.
pub fn credentials(
    conn: &mut DbConnection,
    name: &str,
) -> QueryResult<Option<(String, String, bool)>> {
    users::table
        .select((users::password_hash, users::role, users::disabled))
        .find(name)
        .get_result(conn)
        .optional()
}

/// A user's role (as stored) and disabled flag.
pub fn role_of(conn: &mut DbConnection, name: &str) -> QueryResult<Option<(String, bool)>> {
    users::table
        .select((users::role, users::disabled))
        .find(name)
        .get_result(conn)
        .optional()
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    attempts: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    window_start: Timestamp,
}

/// Counts one sign-in attempt under `key` at `at`, in a window that
/// started after `cutoff` (an older window starts again at `at`); returns
/// the attempts in the window and when it started. One statement: two
/// attempts at once both count.
pub fn count_attempt(
    conn: &mut DbConnection,
    key: &str,
    at: Timestamp,
    cutoff: Timestamp,
) -> QueryResult<(i64, Timestamp)> {
    let counted: Counted = diesel::sql_query(
        "INSERT INTO sign_in_attempts (key, window_start, attempts) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           attempts = CASE WHEN sign_in_attempts.window_start < $3 THEN 1 \
                           ELSE sign_in_attempts.attempts + 1 END, \
           window_start = CASE WHEN sign_in_attempts.window_start < $3 THEN excluded.window_start \
                               ELSE sign_in_attempts.window_start END \
         RETURNING attempts, window_start",
    )
    .bind::<diesel::sql_types::Text, _>(key)
    .bind::<diesel::sql_types::Timestamp, _>(at)
    .bind::<diesel::sql_types::Timestamp, _>(cutoff)
    .get_result(conn)?;
    Ok((counted.attempts, counted.window_start))
}

/// Takes one attempt back from `key` (a sign-in that succeeded).
pub fn uncount_attempt(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    diesel::update(sign_in_attempts::table.find(key))
        .set(sign_in_attempts::attempts.eq(sign_in_attempts::attempts - 1))
        .execute(conn)
        .map(drop)
}

/// Forgets `key`'s attempts.
pub fn clear_attempts(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    diesel::delete(sign_in_attempts::table.find(key))
        .execute(conn)
        .map(drop)
}

/// Deletes the windows that started before `cutoff`.
pub fn prune_attempts(conn: &mut DbConnection, cutoff: Timestamp) -> QueryResult<usize> {
    diesel::delete(sign_in_attempts::table.filter(sign_in_attempts::window_start.lt(cutoff)))
        .execute(conn)
}
