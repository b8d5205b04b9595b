//! The label export's reads: every labelled item of a task with its
//! verdict, item, the live model's prediction and the reviews (every
//! prediction when asked), a page at a time in item-id order.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::fast_time::FastTimestamp;
use crate::db::schema::{items, predictions, reviews, verdicts};
use crate::db::DbConnection;
use crate::domain::{Timestamp, VerdictSource};

/// Whose verdict a row must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFilter {
    Human,
    Model,
    #[default]
    All,
}

/// Why the item reached a human, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KindFilter {
    /// Blind audit samples of model-decided items.
    Audit,
    /// Items the model did not decide (low confidence, model error, or a
    /// level that queues every item).
    Uncertain,
    #[default]
    All,
}

/// Which labelled items an export holds and what each row carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filter {
    /// Verdicts given at or after this time.
    #[serde(with = "opt_time")]
    pub since: Option<Timestamp>,
    /// Verdicts given before this time.
    #[serde(with = "opt_time")]
    pub until: Option<Timestamp>,
    pub source: SourceFilter,
    pub kind: KindFilter,
    pub include_predictions: bool,
    pub include_reviews: bool,
}

mod opt_time {
    use crate::domain::{rfc3339, Timestamp};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339(t)),
            None => s.serialize_none(),
        }
    }
}

/// One labelled item as the export reads it.
#[derive(Debug, Clone, Queryable)]
pub struct Head {
    pub id: String,
    pub input: String,
    pub created_at: FastTimestamp,
    pub audit: bool,
    pub reason: Option<String>,
    pub model_version: Option<String>,
    pub label: String,
    pub source: String,
    pub basis: Option<String>,
    pub decided_at: FastTimestamp,
    pub decided_by: Option<String>,
    pub model_label: Option<String>,
    pub model_confidence: Option<f64>,
}

#[derive(Debug, Clone, Queryable)]
pub struct Review {
    pub item_id: String,
    pub reviewer: String,
    pub label: String,
    pub comment: Option<String>,
    pub seconds_spent: f64,
    pub blind: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Queryable)]
pub struct Prediction {
    pub item_id: String,
    pub model_version: String,
    pub label: Option<String>,
    pub confidence: Option<f64>,
    pub probabilities: Option<String>,
    pub error: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub head: Head,
    /// Oldest first.
    pub reviews: Vec<Review>,
    /// Every model version that scored the item (with `include=predictions`).
    pub predictions: Vec<Prediction>,
}

/// The filters on the verdict itself (time, source) applied to a boxed
/// query that has `verdicts` in it.
macro_rules! with_verdict_filters {
    ($q:expr, $filter:expr) => {{
        let (mut q, filter): (_, &Filter) = ($q, $filter);
        if let Some(since) = filter.since {
            q = q.filter(verdicts::created_at.ge(since));
        }
        if let Some(until) = filter.until {
            q = q.filter(verdicts::created_at.lt(until));
        }
        match filter.source {
            SourceFilter::Human => q = q.filter(verdicts::source.eq(VerdictSource::Human)),
            SourceFilter::Model => q = q.filter(verdicts::source.eq(VerdictSource::Model)),
            SourceFilter::All => {}
        }
        q
    }};
}

/// How many rows an export of `filter` holds now (the same rows [`page`]
/// yields: its verdict filters in SQL, the kind of item from `items`).
pub fn count(conn: &mut DbConnection, task: &str, filter: &Filter) -> QueryResult<i64> {
    let joined = verdicts::table.inner_join(
        items::table.on(items::task
            .eq(verdicts::task)
            .and(items::id.eq(verdicts::item_id))),
    );
    let mut q = joined
        .filter(verdicts::task.eq(task.to_string()))
        .into_boxed();
    q = with_verdict_filters!(q, filter);
    match filter.kind {
        KindFilter::Audit => q = q.filter(items::audit.eq(true)),
        KindFilter::Uncertain => {
            q = q
                .filter(items::audit.eq(false))
                .filter(items::reason.is_not_null())
        }
        // Every verdict has its item: no need to read the items.
        KindFilter::All => {
            let mut q = verdicts::table
                .filter(verdicts::task.eq(task.to_string()))
                .into_boxed();
            q = with_verdict_filters!(q, filter);
            return q.select(diesel::dsl::count_star()).get_result(conn);
        }
    }
    q.select(diesel::dsl::count_star()).get_result(conn)
}

/// One page of an export: the rows, and where the next page starts.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// The last item id this page looked at (rows a filter dropped count):
    /// the next page starts after it.
    pub cursor: Option<String>,
    /// Nothing comes after this page.
    pub done: bool,
}

#[derive(Queryable)]
struct VerdictPart {
    item_id: String,
    label: String,
    source: String,
    basis: Option<String>,
    created_at: FastTimestamp,
    decided_by: Option<String>,
}

#[derive(Queryable)]
struct ItemPart {
    id: String,
    input: String,
    created_at: FastTimestamp,
    audit: bool,
    reason: Option<String>,
    model_version: Option<String>,
}

#[derive(Queryable)]
struct ScorePart {
    item_id: String,
    model_version: String,
    label: Option<String>,
    confidence: Option<f64>,
}

/// The next page: the verdicts of up to `limit` items with ids after
/// `after`, in id order, with their items, the live model's prediction,
/// the reviews (and every prediction when asked). Each table is read as
/// one range in key order and the ranges are merged here: a join would
/// look every row up from the top of its B-tree.
pub fn page(
    conn: &mut DbConnection,
    task: &str,
    filter: &Filter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Page> {
    // On the concrete connection: rows decode without the multi-backend
    // indirection, timestamps with the fast reader.
    let verdict_rows: Vec<VerdictPart> = crate::on_backend!(conn, c => {
        let mut q = verdicts::table
            .filter(verdicts::task.eq(task.to_string()))
            .select((
                verdicts::item_id,
                verdicts::label,
                verdicts::source,
                verdicts::basis,
                verdicts::created_at,
                verdicts::decided_by,
            ))
            .order(verdicts::item_id)
            .limit(limit)
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(verdicts::item_id.gt(after.to_string()));
        }
        q = with_verdict_filters!(q, filter);
        q.load(c)?
    });
    let done = (verdict_rows.len() as i64) < limit;
    let (Some(first), Some(last)) = (verdict_rows.first(), verdict_rows.last()) else {
        return Ok(Page {
            done: true,
            ..Page::default()
        });
    };
    let (first, last) = (first.item_id.clone(), last.item_id.clone());
    let item_rows: Vec<ItemPart> = crate::on_backend!(conn, c => items::table
        .filter(items::task.eq(task))
        .filter(items::id.ge(&first))
        .filter(items::id.le(&last))
        .select((
            items::id,
            items::input,
            items::created_at,
            items::audit,
            items::reason,
            items::model_version,
        ))
        .order(items::id)
        .load(c)?);
    let score_rows: Vec<ScorePart> = crate::on_backend!(conn, c => predictions::table
        .filter(predictions::task.eq(task))
        .filter(predictions::item_id.ge(&first))
        .filter(predictions::item_id.le(&last))
        .select((
            predictions::item_id,
            predictions::model_version,
            predictions::label,
            predictions::confidence,
        ))
        .order(predictions::item_id)
        .load(c)?);
    let mut all_reviews: Vec<Review> = reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::item_id.ge(&first))
        .filter(reviews::item_id.le(&last))
        .select((
            reviews::item_id,
            reviews::reviewer,
            reviews::label,
            reviews::comment,
            reviews::seconds_spent,
            reviews::blind,
            reviews::created_at,
        ))
        .order((reviews::item_id, reviews::created_at, reviews::reviewer))
        .load(conn)?;
    let mut all_predictions: Vec<Prediction> = if filter.include_predictions {
        predictions::table
            .filter(predictions::task.eq(task))
            .filter(predictions::item_id.ge(&first))
            .filter(predictions::item_id.le(&last))
            .select((
                predictions::item_id,
                predictions::model_version,
                predictions::label,
                predictions::confidence,
                predictions::probabilities,
                predictions::error,
                predictions::created_at,
            ))
            .order((predictions::item_id, predictions::created_at))
            .load(conn)?
    } else {
        Vec::new()
    };
    // Every list is in id order: walk them together.
    let mut item_rows = item_rows.into_iter().rev().collect::<Vec<_>>();
    let mut score_rows = score_rows.into_iter().rev().collect::<Vec<_>>();
    all_reviews.reverse();
    all_predictions.reverse();
    let mut records = Vec::with_capacity(verdict_rows.len());
    for v in verdict_rows {
        let item = take_for(&mut item_rows, &v.item_id, |i| &i.id).pop();
        let scores = take_for(&mut score_rows, &v.item_id, |p| &p.item_id);
        let reviews = take_for(&mut all_reviews, &v.item_id, |r| &r.item_id);
        let predictions = take_for(&mut all_predictions, &v.item_id, |p| &p.item_id);
        // A verdict always has its item (the same transaction wrote both).
        let Some(item) = item else { continue };
        let wanted = match filter.kind {
            KindFilter::All => true,
            KindFilter::Audit => item.audit,
            KindFilter::Uncertain => !item.audit && item.reason.is_some(),
        };
        if !wanted {
            continue;
        }
        let score = scores
            .into_iter()
            .find(|p| Some(&p.model_version) == item.model_version.as_ref());
        records.push(Record {
            head: Head {
                id: item.id,
                input: item.input,
                created_at: item.created_at,
                audit: item.audit,
                reason: item.reason,
                model_version: item.model_version,
                label: v.label,
                source: v.source,
                basis: v.basis,
                decided_at: v.created_at,
                decided_by: v.decided_by,
                model_label: score.as_ref().and_then(|p| p.label.clone()),
                model_confidence: score.and_then(|p| p.confidence),
            },
            reviews,
            predictions,
        });
    }
    Ok(Page {
        records,
        cursor: Some(last),
        done,
    })
}

/// Pops from the end of `pending` (sorted by id, descending) the entries
/// of `id`, dropping those of smaller ids that no row of the page claimed.
fn take_for<T>(pending: &mut Vec<T>, id: &str, id_of: impl Fn(&T) -> &String) -> Vec<T> {
    let mut mine = Vec::new();
    while let Some(next) = pending.last() {
        match id_of(next).as_str().cmp(id) {
            std::cmp::Ordering::Less => {
                pending.pop();
            }
            std::cmp::Ordering::Equal => mine.extend(pending.pop()),
            std::cmp::Ordering::Greater => break,
        }
    }
    mine
}
