//! The `users` and `user_tasks` tables.

use diesel::prelude::*;

use crate::db::schema::{user_tasks, users};
use crate::db::DbConnection;
use crate::domain::{now, Role};

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
