//! The `rate_counts` table: requests per key in fixed windows, summed over
//! every instance. One statement on both backends (`ON CONFLICT … DO
//! UPDATE … RETURNING`): two instances adding at once both count.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::schema::rate_counts;
use crate::db::DbConnection;

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Adds `delta` to `key`'s count in the window starting at `window_start`;
/// returns the total of every instance.
pub fn add(conn: &mut DbConnection, key: &str, window_start: i64, delta: i64) -> QueryResult<i64> {
    let total: Total = diesel::sql_query(
        "INSERT INTO rate_counts (key, window_start, count) VALUES ($1, $2, $3) \
         ON CONFLICT (key, window_start) DO UPDATE SET count = rate_counts.count + excluded.count \
         RETURNING count",
    )
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(window_start)
    .bind::<BigInt, _>(delta)
    .get_result(conn)?;
    Ok(total.count)
}

/// `key`'s count in the window starting at `window_start` (0 if none).
pub fn get(conn: &mut DbConnection, key: &str, window_start: i64) -> QueryResult<i64> {
    Ok(rate_counts::table
        .select(rate_counts::count)
        .find((key, window_start))
        .get_result::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// Deletes the windows that started before `before` (Unix seconds).
pub fn prune(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(rate_counts::table.filter(rate_counts::window_start.lt(before))).execute(conn)
}
