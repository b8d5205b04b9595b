//! Dataset snapshots: an export frozen under a name, in a file under the
//! datasets directory, with its row count, filters and SHA-256 recorded in
//! the database. A snapshot is never overwritten; a model card cites its
//! hash, so anyone can tell which labels trained which model.

use std::io::Write;
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Encoder, Page, Request, Summary};
use crate::db::schema::dataset_snapshots;
use crate::db::DbConnection;
use crate::domain::{now, rfc3339, Timestamp};
use crate::http::error::AppError;

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

/// A snapshot as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotDoc {
    pub task: String,
    pub name: String,
    pub format: String,
    pub rows: i64,
    pub bytes: i64,
    pub filters: serde_json::Value,
    pub sha256: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<&SnapshotRow> for SnapshotDoc {
    fn from(r: &SnapshotRow) -> Self {
        SnapshotDoc {
            task: r.task.clone(),
            name: r.name.clone(),
            format: r.format.clone(),
            rows: r.row_count,
            bytes: r.byte_count,
            filters: serde_json::from_str(&r.filters).unwrap_or(serde_json::Value::Null),
            sha256: r.sha256.clone(),
            created_at: rfc3339(&r.created_at),
            created_by: r.created_by.clone(),
        }
    }
}

/// A snapshot name: 1-64 letters, digits, `-`, `_` or `.`, not starting
/// with a dot (it becomes a file name).
pub fn check_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "invalid_value",
            "name",
            "a snapshot name is 1-64 letters, digits, '-', '_' or '.', not starting with '.'",
        ))
    }
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

/// Where a snapshot's file goes.
pub fn file_path(dir: &Path, task: &str, name: &str, request: &Request) -> PathBuf {
    dir.join(task)
        .join(format!("{name}.{}", request.format.as_str()))
}

/// Counts bytes and hashes them on their way to the file.
struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the export of `request` to its snapshot file and returns the row
/// to record. The file appears under its final name only when complete
/// (written beside it, synced, then linked: an existing file is never
/// replaced).
#[allow(clippy::too_many_arguments)]
pub fn write_file(
    dir: &Path,
    task: &str,
    name: &str,
    request: &Request,
    encoder: &mut Encoder,
    fetch: impl FnMut(Option<&str>, i64) -> Result<Page, AppError>,
    created_by: &str,
    progress: impl FnMut(u64),
) -> Result<SnapshotRow, AppError> {
    check_name(name)?;
    let io = |what: &str, path: &Path, e: std::io::Error| {
        AppError::Internal(format!("cannot {what} {}: {e}", path.display()))
    };
    let path = file_path(dir, task, name, request);
    let exists = || {
        AppError::AlreadyExists {
        field: "name".into(),
        message: format!(
            "a snapshot file named {name:?} exists already for task {task:?}; snapshots are never overwritten"
        ),
    }
    };
    if path.exists() {
        return Err(exists());
    }
    let parent = path.parent().expect("a file under a task directory");
    std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    let partial = parent.join(format!(
        ".{name}.{}.{}.partial",
        request.format.as_str(),
        std::process::id()
    ));
    let file = std::fs::File::create(&partial).map_err(|e| io("create", &partial, e))?;
    let mut out = Hashing {
        inner: std::io::BufWriter::with_capacity(256 * 1024, file),
        sha: Sha256::new(),
        bytes: 0,
    };
    let result = (|| {
        let Summary { rows } = super::run(request, encoder, fetch, &mut out, progress)?;
        let file = out
            .inner
            .into_inner()
            .map_err(|e| io("write", &partial, e.into_error()))?;
        file.sync_all().map_err(|e| io("sync", &partial, e))?;
        // A hard link fails when the name is taken: no overwrite, ever.
        std::fs::hard_link(&partial, &path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                exists()
            } else {
                io("create", &path, e)
            }
        })?;
        Ok(SnapshotRow {
            task: task.to_string(),
            name: name.to_string(),
            format: request.format.as_str().to_string(),
            path: path.display().to_string(),
            row_count: rows as i64,
            byte_count: out.bytes as i64,
            filters: serde_json::to_string(&request.filter).expect("plain data"),
            sha256: hex::encode(out.sha.finalize()),
            created_at: now(),
            created_by: created_by.to_string(),
        })
    })();
    let _ = std::fs::remove_file(&partial);
    result
}

/// Records a written snapshot; a name already recorded is refused (and the
/// caller removes the file it wrote).
pub fn record(conn: &mut DbConnection, row: &SnapshotRow) -> Result<(), AppError> {
    let inserted = diesel::insert_into(dataset_snapshots::table)
        .values(row)
        .execute(conn);
    match inserted {
        Ok(_) => {}
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            return Err(AppError::AlreadyExists {
                field: "name".into(),
                message: format!(
                    "task {:?} has a snapshot named {:?} already; snapshots are never overwritten",
                    row.task, row.name
                ),
            })
        }
        Err(e) => return Err(e.into()),
    }
    crate::store::audit::record(
        conn,
        &row.created_by,
        "dataset.snapshot",
        Some(&row.task),
        Some(&row.name),
        serde_json::json!({"rows": row.row_count, "sha256": row.sha256, "format": row.format}),
    )?;
    Ok(())
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    std::io::copy(&mut file, &mut sha)?;
    Ok(hex::encode(sha.finalize()))
}
