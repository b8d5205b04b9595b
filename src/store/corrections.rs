//! An admin's corrections after the fact: a verdict overruled, an item sent
//! back for review. The rules are the review service's (`review::correct`).

use diesel::prelude::*;

use crate::db::schema::{items, verdicts};
use crate::db::DbConnection;
use crate::domain::{ItemStatus, QueueReason, ReviewState, Timestamp, VerdictBasis, VerdictSource};

/// Writes `admin`'s verdict on the item, replacing any other, and decides
/// the item then (its lease, if any, ends).
pub fn overrule(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    label: &str,
    admin: &str,
    at: Timestamp,
) -> QueryResult<()> {
    let values = || {
        (
            verdicts::label.eq(label),
            verdicts::source.eq(VerdictSource::Human),
            verdicts::confidence.eq(None::<f64>),
            verdicts::model_version.eq(None::<String>),
            verdicts::decided_by.eq(Some(admin)),
            verdicts::created_at.eq(at),
            verdicts::basis.eq(Some(VerdictBasis::Correction)),
        )
    };
    crate::on_backend!(conn, c => diesel::insert_into(verdicts::table)
        .values((verdicts::task.eq(task), verdicts::item_id.eq(item_id), values()))
        .on_conflict((verdicts::task, verdicts::item_id))
        .do_update()
        .set(values())
        .execute(c))?;
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::status.eq(ItemStatus::Decided),
            items::review_state.eq(ReviewState::Done),
            items::decided_at.eq(Some(at)),
            items::lease_owner.eq(None::<String>),
            items::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)
        .map(drop)
}

/// Deletes the item's verdict and puts it back in the review queue, free,
/// due at `due`.
pub fn reopen(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    due: Timestamp,
) -> QueryResult<()> {
    diesel::delete(verdicts::table.find((task, item_id))).execute(conn)?;
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::status.eq(ItemStatus::Queued),
            items::review_state.eq(ReviewState::Pending),
            items::reason.eq(Some(QueueReason::Reopened)),
            items::decided_at.eq(None::<Timestamp>),
            items::sla_deadline.eq(Some(due)),
            items::lease_owner.eq(None::<String>),
            items::lease_expires_at.eq(None::<Timestamp>),
            items::claimed_at.eq(None::<Timestamp>),
        ))
        .execute(conn)
        .map(drop)
}
