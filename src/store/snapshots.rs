//! The `dataset_snapshots` table: one row per snapshot taken, its file,
//! row count, filters and SHA-256. Rows are only ever added.

use diesel::prelude::*;

use crate::db::schema::dataset_snapshots;
use crate::db::DbConnection;
use crate::domain::Timestamp;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dataset_snapshots)]
pub struct SnapshotRow {
    pub task: String,
    pub name: String,
    pub format: String,
    /// Where the file is, as written (relative to the working directory
    /// when the datasets directory is).
    pub path: String,
    pub row_count: i64,
    pub byte_count: i64,
    /// The filter, as JSON.
    pub filters: String,
    pub sha256: String,
    pub created_at: Timestamp,
    pub created_by: String,
}

pub fn find(conn: &mut DbConnection, task: &str, name: &str) -> QueryResult<Option<SnapshotRow>> {
    dataset_snapshots::table
        .find((task, name))
        .select(SnapshotRow::as_select())
        .get_result(conn)
        .optional()
}

/// Every snapshot of `task` (all tasks when `None`), newest first.
pub fn list(conn: &mut DbConnection, task: Option<&str>) -> QueryResult<Vec<SnapshotRow>> {
    let mut q = dataset_snapshots::table
        .select(SnapshotRow::as_select())
        .order((
            dataset_snapshots::created_at.desc(),
            dataset_snapshots::name,
        ))
        .into_boxed();
    if let Some(task) = task {
        q = q.filter(dataset_snapshots::task.eq(task.to_string()));
    }
    q.load(conn)
}

/// The snapshot whose file has this content hash, if any.
pub fn by_sha256(conn: &mut DbConnection, sha256: &str) -> QueryResult<Option<SnapshotRow>> {
    dataset_snapshots::table
        .filter(dataset_snapshots::sha256.eq(sha256))
        .select(SnapshotRow::as_select())
        .order(dataset_snapshots::created_at)
        .first(conn)
        .optional()
}

/// Inserts the row of a written snapshot. A name the task has already
/// fails with a unique violation (snapshots are never overwritten).
pub fn record(conn: &mut DbConnection, row: &SnapshotRow) -> QueryResult<()> {
    diesel::insert_into(dataset_snapshots::table)
        .values(row)
        .execute(conn)
        .map(drop)
}
