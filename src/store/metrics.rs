//! The metrics store: minute buckets per task, series, name and model
//! version (`metric_minutes`), and the same per hour (`metric_hours`).
//! Adding is an upsert that sums, so every instance adds to the same row;
//! reading sums buckets over a range, in slots of any width (slots of whole
//! hours read the hours, and the minutes only at the range's ends). The
//! SQL is the same on SQLite and PostgreSQL.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

use crate::db::schema::{items, metric_minutes, predictions};
use crate::db::DbConnection;
use crate::domain::{MetricSeries, Timestamp};

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

/// Adds `rows` to the stored buckets, and to the hourly roll-up: a new row
/// is inserted, a known one has every count added to it. Run it in a write
/// transaction.
pub fn add(conn: &mut DbConnection, rows: &[MetricRow]) -> QueryResult<()> {
    let columns = bucket_columns();
    let statements = [Rollup::Minutes, Rollup::Hours].map(|rollup| {
        let table = rollup.table();
        let (unit, _) = rollup.unit();
        let sums = (0..BUCKETS)
            .map(|i| format!("b{i:02} = {table}.b{i:02} + excluded.b{i:02}"))
            .collect::<Vec<_>>()
            .join(", ");
        (rollup, table, unit, sums)
    });
    for row in rows {
        // The buckets are integers this code formats: literals, not binds,
        // keep the statement to seven parameters.
        let buckets = row
            .buckets
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        for (rollup, table, unit, sums) in &statements {
            let at = match rollup {
                Rollup::Minutes => row.minute,
                Rollup::Hours => row.minute.div_euclid(60),
            };
            let sql = format!(
                "INSERT INTO {table} \
                   (task, {unit}, series, name, model_version, count, total, {columns}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, {buckets}) \
                 ON CONFLICT (task, {unit}, series, name, model_version) DO UPDATE SET \
                   count = {table}.count + excluded.count, \
                   total = {table}.total + excluded.total, {sums}"
            );
            diesel::sql_query(sql)
                .bind::<Text, _>(&row.task)
                .bind::<BigInt, _>(at)
                .bind::<Text, _>(row.series.as_str())
                .bind::<Text, _>(&row.name)
                .bind::<Text, _>(&row.model_version)
                .bind::<BigInt, _>(row.count)
                .bind::<Double, _>(row.total)
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Counts a reviewer's `human` label against the model's label for the
/// item in the agreement series, in the minute of `at`: `by` is 1 when the
/// label is recorded, -1 when it is taken back. Nothing is counted when the
/// model gave the item no label.
pub fn count_agreement(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    human: &str,
    blind: bool,
    at: Timestamp,
    by: i64,
) -> QueryResult<()> {
    let predicted: Option<(Option<String>, Option<String>)> = items::table
        .inner_join(
            predictions::table.on(predictions::task
                .eq(items::task)
                .and(predictions::item_id.eq(items::id))
                .and(items::model_version.eq(predictions::model_version.nullable()))),
        )
        .filter(items::task.eq(task))
        .filter(items::id.eq(item_id))
        .select((items::model_version, predictions::label))
        .first(conn)
        .optional()?;
    let Some((Some(version), Some(label))) = predicted else {
        return Ok(());
    };
    let name = format!(
        "{}_{}",
        if blind { "blind" } else { "assisted" },
        if label == human {
            "agreed"
        } else {
            "disagreed"
        }
    );
    add(
        conn,
        &[MetricRow {
            task: task.to_string(),
            minute: at.and_utc().timestamp().div_euclid(60),
            series: MetricSeries::Agreement,
            name,
            model_version: version,
            count: by,
            total: 0.0,
            buckets: [0; BUCKETS],
        }],
    )
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

/// Where the slots of a range starting at minute `from` begin: at `from`,
/// or for slots of whole hours at the start of `from`'s hour (so they can
/// be read from the hourly roll-up; the first slot then counts only the
/// range's part of it).
pub fn slot_origin(from: i64, slot_minutes: i64) -> i64 {
    if slot_minutes % 60 == 0 {
        from.div_euclid(60) * 60
    } else {
        from
    }
}

fn sums_of(
    conn: &mut DbConnection,
    task: &str,
    series: Option<MetricSeries>,
    from: i64,
    to: i64,
    slot_minutes: i64,
) -> QueryResult<Vec<Summed>> {
    let slot_minutes = slot_minutes.max(1);
    let origin = slot_origin(from, slot_minutes);
    let first_hour = (from + 59).div_euclid(60);
    let last_hour = to.div_euclid(60);
    if slot_minutes % 60 != 0 || first_hour >= last_hour {
        return sum_rows(
            conn,
            Rollup::Minutes,
            task,
            series,
            origin,
            slot_minutes,
            from,
            to,
        );
    }
    // Whole hours from the roll-up, the minutes before and after them from
    // the minute rows.
    let mut all = Vec::new();
    for (rollup, lo, hi) in [
        (Rollup::Hours, first_hour, last_hour),
        (Rollup::Minutes, from, first_hour * 60),
        (Rollup::Minutes, last_hour * 60, to),
    ] {
        all.extend(sum_rows(
            conn,
            rollup,
            task,
            series,
            origin,
            slot_minutes,
            lo,
            hi,
        )?);
    }
    all.sort_by(|a, b| {
        (a.slot, a.series.as_str(), &a.name, &a.model_version).cmp(&(
            b.slot,
            b.series.as_str(),
            &b.name,
            &b.model_version,
        ))
    });
    let mut merged: Vec<Summed> = Vec::with_capacity(all.len());
    for s in all {
        match merged.last_mut() {
            Some(m)
                if m.slot == s.slot
                    && m.series == s.series
                    && m.name == s.name
                    && m.model_version == s.model_version =>
            {
                m.count += s.count;
                m.total += s.total;
                for (a, b) in m.buckets.iter_mut().zip(s.buckets) {
                    *a += b;
                }
            }
            _ => merged.push(s),
        }
    }
    Ok(merged)
}

/// The table a sum reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollup {
    Minutes,
    Hours,
}

impl Rollup {
    fn table(self) -> &'static str {
        match self {
            Rollup::Minutes => "metric_minutes",
            Rollup::Hours => "metric_hours",
        }
    }

    /// The row's unit column, and its first minute as an expression.
    fn unit(self) -> (&'static str, &'static str) {
        match self {
            Rollup::Minutes => ("minute", "minute"),
            Rollup::Hours => ("hour", "hour * 60"),
        }
    }
}

/// The rows of `rollup` with `lo <= unit < hi`, summed per slot (slots of
/// `slot_minutes` from minute `origin`), series, name and model version.
#[allow(clippy::too_many_arguments)]
fn sum_rows(
    conn: &mut DbConnection,
    rollup: Rollup,
    task: &str,
    series: Option<MetricSeries>,
    origin: i64,
    slot_minutes: i64,
    lo: i64,
    hi: i64,
) -> QueryResult<Vec<Summed>> {
    if lo >= hi {
        return Ok(Vec::new());
    }
    let buckets = (0..BUCKETS)
        .map(|i| format!("CAST(CAST(SUM(b{i:02}) AS BIGINT) AS TEXT)"))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    // Without a series, `$4` matches every row (`series <> ''`).
    let compare = if series.is_some() { "=" } else { "<>" };
    let (column, first_minute) = rollup.unit();
    let table = rollup.table();
    let sql = format!(
        "SELECT $1 + (({first_minute} - $1) / $2) * $2 AS slot, series, name, model_version, \
           CAST(SUM(count) AS BIGINT) AS count, CAST(SUM(total) AS DOUBLE PRECISION) AS total, \
           {buckets} AS buckets \
         FROM {table} \
         WHERE task = $3 AND series {compare} $4 AND {column} >= $5 AND {column} < $6 \
         GROUP BY slot, series, name, model_version \
         ORDER BY slot, series, name, model_version"
    );
    // SQLite numbers `$n` parameters in order of first appearance: they
    // appear in the statement as $1, $2, … and are bound in that order.
    let rows: Vec<SummedRow> = diesel::sql_query(sql)
        .bind::<BigInt, _>(origin)
        .bind::<BigInt, _>(slot_minutes)
        .bind::<Text, _>(task)
        .bind::<Text, _>(series.map_or("", MetricSeries::as_str))
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(hi)
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

/// Deletes the buckets before `minute` (and the hours that ended before
/// it); returns how many minute rows went.
pub fn prune(conn: &mut DbConnection, minute: i64) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM metric_hours WHERE hour < $1")
        .bind::<BigInt, _>(minute.div_euclid(60))
        .execute(conn)?;
    diesel::delete(metric_minutes::table.filter(metric_minutes::minute.lt(minute))).execute(conn)
}
