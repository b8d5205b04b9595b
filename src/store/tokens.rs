//! The `api_tokens` table: names and SHA-256 hashes of API token secrets.

use diesel::prelude::*;

use crate::db::schema::api_tokens;
use crate::db::DbConnection;
use crate::domain::now;

/// Whether a token (revoked or not) has this name.
pub fn name_taken(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    api_tokens::table
        .filter(api_tokens::name.eq(name))
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}

pub fn insert(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    secret_sha256: &str,
) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(id),
            api_tokens::name.eq(name),
            api_tokens::secret_sha256.eq(secret_sha256),
            api_tokens::created_at.eq(now()),
        ))
        .execute(conn)
        .map(drop)
}

/// Marks the token named `name` revoked; returns whether there was one.
pub fn revoke(conn: &mut DbConnection, name: &str) -> QueryResult<bool> {
    diesel::update(api_tokens::table.filter(api_tokens::name.eq(name)))
        .set(api_tokens::revoked_at.eq(Some(now())))
        .execute(conn)
        .map(|n| n > 0)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    api_tokens::table.count().get_result(conn)
}

/// The name and secret hash of the token with this id, unless revoked.
pub fn active(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(String, String)>> {
    api_tokens::table
        .select((api_tokens::name, api_tokens::secret_sha256))
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::revoked_at.is_null())
        .get_result(conn)
        .optional()
}
