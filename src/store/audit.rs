//! The audit log: who changed what, when and why.

use diesel::prelude::*;

use crate::db::schema::audit_log;
use crate::db::DbConnection;

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewEntry<'a> {
    at: crate::domain::Timestamp,
    actor: &'a str,
    action: &'a str,
    task: Option<&'a str>,
    subject: Option<&'a str>,
    detail: String,
}

/// Appends one entry; call it inside the transaction of the change.
pub fn record(
    conn: &mut DbConnection,
    actor: &str,
    action: &str,
    task: Option<&str>,
    subject: Option<&str>,
    detail: serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(NewEntry {
            at: crate::domain::now(),
            actor,
            action,
            task,
            subject,
            detail: detail.to_string(),
        })
        .execute(conn)
        .map(drop)
}
