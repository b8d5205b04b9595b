//! The `sessions` table: signed-in sessions by the SHA-256 of their id.

use diesel::prelude::*;

use crate::db::schema::{sessions, users};
use crate::db::DbConnection;
use crate::domain::{now, Timestamp};

pub fn insert(
    conn: &mut DbConnection,
    id_sha256: &str,
    user_name: &str,
    csrf_token: &str,
    expires_at: Timestamp,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id_sha256.eq(id_sha256),
            sessions::user_name.eq(user_name),
            sessions::csrf_token.eq(csrf_token),
            sessions::created_at.eq(now()),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut DbConnection, id_sha256: &str) -> QueryResult<()> {
    diesel::delete(sessions::table.find(id_sha256))
        .execute(conn)
        .map(drop)
}

/// Deletes every session of `user_name` (signs them out everywhere).
pub fn delete_of_user(conn: &mut DbConnection, user_name: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_name.eq(user_name))).execute(conn)
}

/// Deletes every session that expired before `at`.
pub fn delete_expired(conn: &mut DbConnection, at: Timestamp) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.lt(at))).execute(conn)
}

/// The user name and CSRF token of a live session whose user is enabled.
pub fn live(conn: &mut DbConnection, id_sha256: &str) -> QueryResult<Option<(String, String)>> {
    sessions::table
        .inner_join(users::table.on(users::name.eq(sessions::user_name)))
        .filter(sessions::id_sha256.eq(id_sha256))
        .filter(sessions::expires_at.gt(now()))
        .filter(users::disabled.eq(false))
        .select((sessions::user_name, sessions::csrf_token))
        .get_result(conn)
        .optional()
}
