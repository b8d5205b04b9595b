//! The metrics store: minute buckets per task, series, name and model
//! version (`metric_minutes`). Adding is an upsert that sums, so every
//! instance adds to the same row; reading sums buckets over a range, in
//! slots of any width. The SQL is the same on SQLite and PostgreSQL.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

use crate::db::schema::metric_minutes;
use crate::db::DbConnection;
use crate::domain::MetricSeries;

/// Buckets of a histogram row (`b00` … `b19`).
pub const BUCKETS: usize = 20;

/// What one instance counted for one task, minute, series and name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub task: String,
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub series: MetricSeries,
    pub name: String,
    /// `""` when no model ran.
    pub model_version: String,
    pub count: i64,
    /// Sum of the observed values (seconds, confidence); 0 for counts.
    pub total: f64,
    pub buckets: [i64; BUCKETS],
}

fn bucket_columns() -> String {
    (0..BUCKETS)
        .map(|i| format!("b{i:02}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds `rows` to the stored buckets: a new row is inserted, a known one
/// has every count added to it. Run it in a write transaction.
pub fn add(conn: &mut DbConnection, rows: &[MetricRow]) -> QueryResult<()> {
    let columns = bucket_columns();
    let sums = (0..BUCKETS)
        .map(|i| format!("b{i:02} = metric_minutes.b{i:02} + excluded.b{i:02}"))
        .collect::<Vec<_>>()
        .join(", ");
    for row in rows {
        // The buckets are integers this code formats: literals, not binds,
        // keep the statement to seven parameters.
        let buckets = row
            .buckets
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO metric_minutes \
               (task, minute, series, name, model_version, count, total, {columns}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, {buckets}) \
             ON CONFLICT (task, minute, series, name, model_version) DO UPDATE SET \
               count = metric_minutes.count + excluded.count, \
               total = metric_minutes.total + excluded.total, {sums}"
        );
        diesel::sql_query(sql)
            .bind::<Text, _>(&row.task)
            .bind::<BigInt, _>(row.minute)
            .bind::<Text, _>(row.series.as_str())
            .bind::<Text, _>(&row.name)
            .bind::<Text, _>(&row.model_version)
            .bind::<BigInt, _>(row.count)
            .bind::<Double, _>(row.total)
            .execute(conn)?;
    }
    Ok(())
}

/// Sums of one slot, name and model version over a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Summed {
    /// First minute of the slot.
    pub slot: i64,
    pub series: MetricSeries,
    pub name: String,
    pub model_version: String,
    pub count: i64,
    pub total: f64,
    pub buckets: [i64; BUCKETS],
}

#[derive(QueryableByName)]
struct SummedRow {
    #[diesel(sql_type = BigInt)]
    slot: i64,
    #[diesel(sql_type = Text)]
    series: MetricSeries,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    model_version: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = Double)]
    total: f64,
    /// The buckets' sums, comma-separated (one column instead of twenty).
    #[diesel(sql_type = Text)]
    buckets: String,
}

/// The rows of `series` for `task` with `from <= minute < to`, summed per
/// slot of `slot_minutes` (slots start at `from`), name and model version,
/// in slot order. A slot as wide as the range gives the range's totals.
pub fn sums(
    conn: &mut DbConnection,
    task: &str,
    series: MetricSeries,
    from: i64,
    to: i64,
    slot_minutes: i64,
) -> QueryResult<Vec<Summed>> {
    sums_of(conn, task, Some(series), from, to, slot_minutes)
}

/// [`sums`] of every series at once: one pass over the range's rows
/// (what a report over a long range needs).
pub fn sums_all(
    conn: &mut DbConnection,
    task: &str,
    from: i64,
    to: i64,
    slot_minutes: i64,
) -> QueryResult<Vec<Summed>> {
    sums_of(conn, task, None, from, to, slot_minutes)
}

fn sums_of(
    conn: &mut DbConnection,
    task: &str,
    series: Option<MetricSeries>,
    from: i64,
    to: i64,
    slot_minutes: i64,
) -> QueryResult<Vec<Summed>> {
    let buckets = (0..BUCKETS)
        .map(|i| format!("CAST(CAST(SUM(b{i:02}) AS BIGINT) AS TEXT)"))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    // Without a series, `$4` matches every row (`series <> ''`).
    let compare = if series.is_some() { "=" } else { "<>" };
    let sql = format!(
        "SELECT $1 + ((minute - $1) / $2) * $2 AS slot, series, name, model_version, \
           CAST(SUM(count) AS BIGINT) AS count, CAST(SUM(total) AS DOUBLE PRECISION) AS total, \
           {buckets} AS buckets \
         FROM metric_minutes \
         WHERE task = $3 AND series {compare} $4 AND minute >= $1 AND minute < $5 \
         GROUP BY slot, series, name, model_version \
         ORDER BY slot, series, name, model_version"
    );
    // SQLite numbers `$n` parameters in order of first appearance: they
    // appear in the statement as $1, $2, … and are bound in that order.
    let rows: Vec<SummedRow> = diesel::sql_query(sql)
        .bind::<BigInt, _>(from)
        .bind::<BigInt, _>(slot_minutes.max(1))
        .bind::<Text, _>(task)
        .bind::<Text, _>(series.map_or("", MetricSeries::as_str))
        .bind::<BigInt, _>(to)
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            let mut buckets = [0i64; BUCKETS];
            for (slot, text) in buckets.iter_mut().zip(r.buckets.split(',')) {
                *slot = text.parse().map_err(|_| {
                    diesel::result::Error::DeserializationError(
                        format!("bucket sum {text:?} is not an integer").into(),
                    )
                })?;
            }
            Ok(Summed {
                slot: r.slot,
                series: r.series,
                name: r.name,
                model_version: r.model_version,
                count: r.count,
                total: r.total,
                buckets,
            })
        })
        .collect()
}

/// Deletes the buckets before `minute`; returns how many rows went.
pub fn prune(conn: &mut DbConnection, minute: i64) -> QueryResult<usize> {
    diesel::delete(metric_minutes::table.filter(metric_minutes::minute.lt(minute))).execute(conn)
}
