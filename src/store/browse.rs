//! The admin's views of items: a filtered, sorted, cursor-paged list with
//! its (capped) count, one item with everything recorded about it, and the
//! review facts of a task.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Double, Integer, Text};

use crate::db::schema::{audit_log, items, predictions, reviews, verdicts};
use crate::db::DbConnection;
use crate::domain::{ItemStatus, Timestamp, VerdictSource};
use crate::store::items::{ItemRow, PredictionRow, VerdictRow};

/// Which items to list; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub task: String,
    pub status: Option<ItemStatus>,
    pub source: Option<VerdictSource>,
    pub label: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created at or before.
    pub to: Option<Timestamp>,
    /// Items this reviewer labelled.
    pub reviewer: Option<String>,
}

/// The columns the list sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// `created_at`: walks the `(task, created_at, id)` index.
    Received,
    /// The confidence of the prediction of the item's model: on no index.
    Confidence,
    /// `decided_at`: on no index.
    Decided,
}

impl SortColumn {
    /// Whether an index gives this order; the others sort a window of the
    /// newest matching items (see [`items`]).
    pub fn indexed(self) -> bool {
        self == SortColumn::Received
    }
}

/// A column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

/// The value a row sorts by. A row without one (not decided yet, no
/// prediction) sorts last in either direction: it carries a stand-in
/// beyond every real value, the same one the query orders and compares by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortValue {
    At(Timestamp),
    Confidence(f64),
}

/// Where a page starts: at the top, or beyond the `(value, id)` of a row of
/// the page before (`After`, in the sort's direction) or after (`Before`).
#[derive(Debug, Clone, PartialEq)]
pub enum PageStart {
    First,
    After(SortValue, String),
    Before(SortValue, String),
}

/// An item as the list shows it: its row, its verdict, and the confidence
/// of its model's prediction.
pub struct ListedItem {
    pub item: ItemRow,
    pub verdict: Option<VerdictRow>,
    pub confidence: Option<f64>,
}

fn date(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> Timestamp {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|day| day.and_hms_opt(h, min, s))
        .expect("a valid date")
}

impl Sort {
    /// The SQL expression rows are ordered and compared by. The stand-ins
    /// are literals both backends read (PostgreSQL types the text as a
    /// timestamp inside `COALESCE`), matching [`Sort::value_of`].
    fn key_sql(self) -> &'static str {
        match (self.column, self.descending) {
            (SortColumn::Received, _) => "items.created_at",
            (SortColumn::Decided, true) => "COALESCE(items.decided_at, '0001-01-01 00:00:00')",
            (SortColumn::Decided, false) => "COALESCE(items.decided_at, '9999-12-31 23:59:59')",
            // Confidences lie in 0..=1.
            (SortColumn::Confidence, true) => "COALESCE(predictions.confidence, -1.0)",
            (SortColumn::Confidence, false) => "COALESCE(predictions.confidence, 2.0)",
        }
    }

    /// The value `row` sorts by, stand-ins included: a cursor's value.
    pub fn value_of(self, row: &ListedItem) -> SortValue {
        match self.column {
            SortColumn::Received => SortValue::At(row.item.created_at),
            SortColumn::Decided => SortValue::At(row.item.decided_at.unwrap_or_else(|| {
                if self.descending {
                    date(1, 1, 1, 0, 0, 0)
                } else {
                    date(9999, 12, 31, 23, 59, 59)
                }
            })),
            SortColumn::Confidence => {
                SortValue::Confidence(row.confidence.unwrap_or(if self.descending {
                    -1.0
                } else {
                    2.0
                }))
            }
        }
    }
}

/// The items of `$f` (an `&ItemFilter`), each beside its verdict and the
/// prediction of its model, as a boxed query to select from: the list, its
/// count and its window share one set of conditions.
macro_rules! matching {
    ($f:expr) => {{
        let f: &ItemFilter = $f;
        let mut q = items::table
            .left_join(
                verdicts::table.on(verdicts::task
                    .eq(items::task)
                    .and(verdicts::item_id.eq(items::id))),
            )
            .left_join(
                predictions::table.on(predictions::task
                    .eq(items::task)
                    .and(predictions::item_id.eq(items::id))
                    // No match where the item has no model (NULL).
                    .and(predictions::model_version.eq(items::model_version.assume_not_null()))),
            )
            .filter(items::task.eq(f.task.clone()))
            .into_boxed();
        if let Some(status) = f.status {
            q = q.filter(items::status.eq(status));
        }
        if let Some(source) = f.source {
            q = q.filter(verdicts::source.eq(source));
        }
        if let Some(label) = &f.label {
            q = q.filter(verdicts::label.eq(label.clone()));
        }
        if let Some(from) = f.from {
            q = q.filter(items::created_at.ge(from));
        }
        if let Some(to) = f.to {
            q = q.filter(items::created_at.le(to));
        }
        if let Some(reviewer) = &f.reviewer {
            let reviewed = reviews::table
                .filter(reviews::task.eq(f.task.clone()))
                .filter(reviews::reviewer.eq(reviewer.clone()))
                .select(reviews::item_id);
            q = q.filter(items::id.eq_any(reviewed));
        }
        q
    }};
}

/// Keeps the rows of `$q` whose `(key, items.id) op (value, id)`, both
/// bound: a row-value comparison, which walks an index on `(key, id)`
/// where there is one.
macro_rules! beyond {
    ($q:ident, $key:expr, $op:expr, $value:expr, $id:expr) => {{
        let head = sql::<Bool>(&format!("({}, items.id) {} (", $key, $op));
        let id: String = $id;
        $q = match $value {
            SortValue::At(at) => $q.filter(
                head.bind::<diesel::sql_types::Timestamp, _>(at)
                    .sql(", ")
                    .bind::<Text, _>(id)
                    .sql(")"),
            ),
            SortValue::Confidence(c) => $q.filter(
                head.bind::<Double, _>(c)
                    .sql(", ")
                    .bind::<Text, _>(id)
                    .sql(")"),
            ),
        };
    }};
}

/// Up to `limit` items of a page in `sort` order starting at `start`, each
/// with its verdict and its model's confidence. A `Before` page comes
/// nearest the cursor first (the caller keeps `limit - 1` and reverses).
///
/// `window`, for a sort on no index: only items at or after this
/// `(created_at, id)` (from [`window_edge`]), so a page sorts a bounded
/// number of rows however many the task holds.
pub fn items(
    conn: &mut DbConnection,
    f: &ItemFilter,
    sort: Sort,
    start: &PageStart,
    window: Option<&(Timestamp, String)>,
    limit: i64,
) -> QueryResult<Vec<ListedItem>> {
    let key = sort.key_sql();
    // A `Before` page reads backwards from its cursor.
    let descending = match start {
        PageStart::Before(..) => !sort.descending,
        _ => sort.descending,
    };
    let mut q = matching!(f)
        .select((
            ItemRow::as_select(),
            Option::<VerdictRow>::as_select(),
            predictions::confidence.nullable(),
        ))
        .limit(limit);
    // Only ordered by, never read: the SQL type is nominal.
    let order = sql::<Double>(key);
    q = if descending {
        q.order((order.desc(), items::id.desc()))
    } else {
        q.order((order.asc(), items::id.asc()))
    };
    let op = if descending { "<" } else { ">" };
    match start {
        PageStart::First => {}
        PageStart::After(value, id) | PageStart::Before(value, id) => {
            beyond!(q, key, op, *value, id.clone());
        }
    }
    if let Some((at, id)) = window {
        beyond!(q, "items.created_at", ">=", SortValue::At(*at), id.clone());
    }
    Ok(q.load::<(ItemRow, Option<VerdictRow>, Option<f64>)>(conn)?
        .into_iter()
        .map(|(item, verdict, confidence)| ListedItem {
            item,
            verdict,
            confidence,
        })
        .collect())
}

/// How many items match, counting no further than `cap + 1`: past the
/// cap a count reads the whole task, at a million rows too slow for a page.
pub fn count(conn: &mut DbConnection, f: &ItemFilter, cap: i64) -> QueryResult<i64> {
    let ones: Vec<i32> = matching!(f)
        .select(sql::<Integer>("1"))
        .limit(cap + 1)
        .load(conn)?;
    Ok(ones.len() as i64)
}

/// The `(created_at, id)` of the `size`th newest matching item, if there
/// are that many: the oldest edge of the window a sort on no index orders.
pub fn window_edge(
    conn: &mut DbConnection,
    f: &ItemFilter,
    size: i64,
) -> QueryResult<Option<(Timestamp, String)>> {
    matching!(f)
        .select((items::created_at, items::id))
        .order((items::created_at.desc(), items::id.desc()))
        .offset(size - 1)
        .limit(1)
        .get_result(conn)
        .optional()
}

/// A review as the item page shows it: reviewer, label, comment, seconds
/// spent, blind, when.
pub type ReviewLine = (String, String, Option<String>, f64, bool, Timestamp);
/// An audit entry: when, who, action, detail (JSON).
pub type AuditLine = (Timestamp, String, String, String);

/// Everything recorded about one item.
pub struct ItemDetail {
    pub item: ItemRow,
    pub predictions: Vec<PredictionRow>,
    pub reviews: Vec<ReviewLine>,
    pub verdict: Option<VerdictRow>,
    pub audit: Vec<AuditLine>,
}

pub fn item(conn: &mut DbConnection, task: &str, id: &str) -> QueryResult<Option<ItemDetail>> {
    let Some(item) = items::table
        .find((task, id))
        .select(ItemRow::as_select())
        .get_result::<ItemRow>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let predictions = predictions::table
        .filter(predictions::task.eq(task))
        .filter(predictions::item_id.eq(id))
        .select(PredictionRow::as_select())
        .load(conn)?;
    let reviews = reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::item_id.eq(id))
        .order(reviews::created_at)
        .select((
            reviews::reviewer,
            reviews::label,
            reviews::comment,
            reviews::seconds_spent,
            reviews::blind,
            reviews::created_at,
        ))
        .load(conn)?;
    let verdict = verdicts::table
        .find((task, id))
        .select(VerdictRow::as_select())
        .get_result(conn)
        .optional()?;
    let audit = audit_log::table
        .filter(audit_log::task.eq(Some(task)))
        .filter(audit_log::subject.eq(Some(id)))
        .order(audit_log::id)
        .select((
            audit_log::at,
            audit_log::actor,
            audit_log::action,
            audit_log::detail,
        ))
        .load(conn)?;
    Ok(Some(ItemDetail {
        item,
        predictions,
        reviews,
        verdict,
        audit,
    }))
}

/// A review as the reviewers' page counts it: item id, reviewer, label,
/// seconds spent, blind.
pub type ReviewFactRow = (String, String, String, f64, bool);
/// A reviewed item's verdict: item id, label, source, basis.
pub type VerdictFactRow = (String, String, String, Option<String>);

/// Every review of a task.
pub fn reviews_of_task(conn: &mut DbConnection, task: &str) -> QueryResult<Vec<ReviewFactRow>> {
    reviews::table
        .filter(reviews::task.eq(task))
        .select((
            reviews::item_id,
            reviews::reviewer,
            reviews::label,
            reviews::seconds_spent,
            reviews::blind,
        ))
        .load(conn)
}

/// The verdicts of a task's reviewed items.
pub fn verdicts_of_reviewed(
    conn: &mut DbConnection,
    task: &str,
) -> QueryResult<Vec<VerdictFactRow>> {
    let reviewed = reviews::table
        .filter(reviews::task.eq(task))
        .select(reviews::item_id);
    verdicts::table
        .filter(verdicts::task.eq(task))
        .filter(verdicts::item_id.eq_any(reviewed))
        .select((
            verdicts::item_id,
            verdicts::label,
            verdicts::source,
            verdicts::basis,
        ))
        .load(conn)
}
