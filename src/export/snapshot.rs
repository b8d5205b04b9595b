//! Dataset snapshots: an export frozen under a name, in a file under the
//! datasets directory, with its row count, filters and SHA-256 recorded in
//! the database. A snapshot is never overwritten; a model card cites its
//! hash, so anyone can tell which labels trained which model.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{columns_of, Encoder, ExportError, Page, Request, Summary};
use crate::db::{Db, DbConnection};
use crate::domain::now;
pub use crate::store::snapshots::SnapshotRow;
use crate::store::{labels, snapshots};
use crate::tasks::TaskRuntime;

/// A snapshot name: 1-64 letters, digits, `-`, `_` or `.`, not starting
/// with a dot (it becomes a file name).
pub fn check_name(name: &str) -> Result<(), ExportError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ExportError::invalid(
            "name",
            "a snapshot name is 1-64 letters, digits, '-', '_' or '.', not starting with '.'",
        ))
    }
}

/// Refuses a name that is not one, or that the task has a snapshot of.
pub fn check_new(conn: &mut DbConnection, task: &str, name: &str) -> Result<(), ExportError> {
    check_name(name)?;
    match snapshots::find(conn, task, name)? {
        Some(_) => Err(ExportError::SnapshotExists {
            task: task.to_string(),
            name: name.to_string(),
        }),
        None => Ok(()),
    }
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
    fetch: impl FnMut(Option<&str>, i64) -> Result<Page, ExportError>,
    created_by: &str,
    progress: impl FnMut(u64),
) -> Result<SnapshotRow, ExportError> {
    check_name(name)?;
    let io = |what: &str, path: &Path, e: std::io::Error| {
        ExportError::io(format!("cannot {what} {}", path.display()), e)
    };
    let path = file_path(dir, task, name, request);
    let exists = || ExportError::SnapshotFileExists {
        task: task.to_string(),
        name: name.to_string(),
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

/// Records a written snapshot, with its entry in the audit log (call it in
/// a write transaction); a name already recorded is refused (and the
/// caller removes the file it wrote).
pub fn record(conn: &mut DbConnection, row: &SnapshotRow) -> Result<(), ExportError> {
    snapshots::record(conn, row).map_err(|e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => ExportError::SnapshotExists {
            task: row.task.clone(),
            name: row.name.clone(),
        },
        e => e.into(),
    })?;
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

/// Takes a snapshot of `task`'s labels: checks the name is free, writes
/// the file on the blocking pool, then records it (removing the file if
/// the record is refused). The shared path of the API and the web UI.
pub async fn create(
    db: &Db,
    dir: &Path,
    task: &TaskRuntime,
    name: String,
    request: Request,
    created_by: String,
) -> Result<SnapshotRow, ExportError> {
    check_name(&name)?;
    let task_name = task.name().to_string();
    let (t, n) = (task_name.clone(), name.clone());
    db.read(move |conn| check_new(conn, &t, &n)).await?;
    let dir = dir.to_path_buf();
    let columns = columns_of(task);
    let row = db
        .read(move |conn| {
            let mut encoder = Encoder::new(request.format, &request.filter, columns);
            let fetch = |after: Option<&str>, limit: i64| {
                Ok(labels::page(
                    conn,
                    &task_name,
                    &request.filter,
                    after,
                    limit,
                )?)
            };
            write_file(
                &dir,
                &task_name,
                &name,
                &request,
                &mut encoder,
                fetch,
                &created_by,
                |_| {},
            )
        })
        .await?;
    let recorded = row.clone();
    if let Err(e) = db.write(move |conn| record(conn, &recorded)).await {
        let _ = std::fs::remove_file(&row.path);
        return Err(e);
    }
    Ok(row)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    std::io::copy(&mut file, &mut sha)?;
    Ok(hex::encode(sha.finalize()))
}
