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

/// A token's own rate: (requests, window in seconds), or none.
pub type StoredRate = (Option<i64>, Option<i64>);

pub fn insert(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    secret_sha256: &str,
    rate: StoredRate,
) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(id),
            api_tokens::name.eq(name),
            api_tokens::secret_sha256.eq(secret_sha256),
            api_tokens::created_at.eq(now()),
            api_tokens::rate_limit.eq(rate.0),
            api_tokens::rate_window_secs.eq(rate.1),
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

/// Sets the rate of the token named `name` (not revoked); returns whether
/// there was one.
pub fn set_rate(conn: &mut DbConnection, name: &str, rate: StoredRate) -> QueryResult<bool> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::name.eq(name))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set((
        api_tokens::rate_limit.eq(rate.0),
        api_tokens::rate_window_secs.eq(rate.1),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// The name, secret hash and rate of the token with this id, unless
/// revoked.
pub fn active(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<(String, String, StoredRate)>> {
    api_tokens::table
        .select((
            api_tokens::name,
            api_tokens::secret_sha256,
            (api_tokens::rate_limit, api_tokens::rate_window_secs),
        ))
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::revoked_at.is_null())
        .get_result(conn)
        .optional()
}
