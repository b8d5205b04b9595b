//! Rewriting a SQLite file in place (`VACUUM`): compactly, and at another
//! page size if asked. A database keeps the page size it was created with
//! (`database.page_size`); SQLite changes it only by a rewrite outside WAL
//! mode, which needs the file to itself.

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::RunQueryDsl;

use super::{establish, DbConnection};
use crate::config::DatabaseSettings;
use crate::domain::Backend;

/// What a rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub page_size_before: i64,
    pub page_size: i64,
    /// The database file's size before and after (the WAL is checkpointed
    /// into it first).
    pub bytes_before: u64,
    pub bytes: u64,
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Word {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

fn number(conn: &mut DbConnection, sql: &str) -> Result<i64, String> {
    diesel::sql_query(sql)
        .get_result::<Number>(conn)
        .map(|r| r.n)
        .map_err(|e| format!("{sql}: {e}"))
}

fn journal_mode(conn: &mut DbConnection, mode: &str) -> Result<String, diesel::result::Error> {
    diesel::sql_query(format!("PRAGMA journal_mode = {mode}"))
        .get_result::<Word>(conn)
        .map(|w| w.journal_mode.to_ascii_lowercase())
}

/// Rewrites the SQLite database of `settings` (`VACUUM`), at `page_size`
/// when given (a power of two from 512 to 65536). Refused, with nothing
/// changed, while another connection has the file open (a running
/// service): stop it first. The file is back in WAL mode afterwards, also
/// when the rewrite fails (a failed `VACUUM` leaves the database as it was).
pub fn rewrite(settings: &DatabaseSettings, page_size: Option<u32>) -> Result<Rewritten, String> {
    let path = match Backend::from_url(&settings.url)? {
        Backend::Sqlite(path) => path,
        Backend::Postgres(_) => {
            return Err(
                "rewriting is for a SQLite file; PostgreSQL has VACUUM FULL of its own".into(),
            )
        }
    };
    if let Some(size) = page_size {
        if !size.is_power_of_two() || !(512..=65_536).contains(&size) {
            return Err(format!(
                "the page size must be a power of two from 512 to 65536, got {size}"
            ));
        }
    }
    if !std::path::Path::new(&path).exists() {
        return Err(format!("no database at {path} (run verdict migrate first)"));
    }
    let bytes_before = file_size(&path);
    let mut conn = establish(settings)?;
    // Fail at once rather than wait for a lock another process holds.
    conn.batch_execute("PRAGMA busy_timeout = 0")
        .map_err(|e| e.to_string())?;
    let page_size_before = number(&mut conn, "SELECT page_size AS n FROM pragma_page_size()")?;
    // Leaving WAL mode checkpoints the WAL and needs every other connection
    // gone: a running service keeps some open.
    match journal_mode(&mut conn, "DELETE") {
        Ok(mode) if mode == "delete" => {}
        Ok(mode) => {
            return Err(format!(
                "the database at {path} stays in {mode} mode: is a service using it? Stop it first"
            ))
        }
        Err(e) => {
            return Err(format!(
                "the database at {path} is in use ({e}): stop the service first"
            ))
        }
    }
    // VACUUM takes the page size last asked for on the connection, and
    // `establish` asked for `database.page_size`: without a new size, the
    // file's own is asked for again so that it stays.
    let target = page_size.map_or(page_size_before, i64::from);
    let vacuum = conn.batch_execute(&format!("PRAGMA page_size = {target}; VACUUM"));
    let back = journal_mode(&mut conn, "WAL");
    vacuum.map_err(|e| format!("cannot rewrite {path}: {e}"))?;
    match back {
        Ok(mode) if mode == "wal" => {}
        Ok(mode) => return Err(format!("{path} was rewritten but stays in {mode} mode")),
        Err(e) => {
            return Err(format!(
                "{path} was rewritten but not put back in WAL mode: {e}"
            ))
        }
    }
    let page_size = number(&mut conn, "SELECT page_size AS n FROM pragma_page_size()")?;
    drop(conn);
    Ok(Rewritten {
        page_size_before,
        page_size,
        bytes_before,
        bytes: file_size(&path),
    })
}

fn file_size(path: &str) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &std::path::Path, page_size: u32) -> DatabaseSettings {
        DatabaseSettings {
            url: format!("sqlite://{}", dir.join("rewrite.db").display()),
            page_size,
            ..DatabaseSettings::default()
        }
    }

    #[test]
    fn a_rewrite_changes_the_page_size_and_keeps_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = establish(&settings(dir.path(), 2048)).unwrap();
        conn.batch_execute(
            "CREATE TABLE t (a TEXT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT hex(randomblob(200)) FROM n;",
        )
        .unwrap();
        drop(conn);

        let done = rewrite(&settings(dir.path(), 2048), Some(8192)).unwrap();
        assert_eq!((done.page_size_before, done.page_size), (2048, 8192));
        assert!(done.bytes > 0 && done.bytes_before > 0, "{done:?}");
        let mut conn = establish(&settings(dir.path(), 2048)).unwrap();
        assert_eq!(
            number(&mut conn, "SELECT COUNT(*) AS n FROM t").unwrap(),
            2000
        );
        assert_eq!(
            number(&mut conn, "SELECT page_size AS n FROM pragma_page_size()").unwrap(),
            8192
        );
        assert_eq!(journal_mode(&mut conn, "WAL").unwrap(), "wal");
        drop(conn);

        // Without a size the file keeps its own, whatever the settings say
        // for new files.
        let again = rewrite(&settings(dir.path(), 2048), None).unwrap();
        assert_eq!((again.page_size_before, again.page_size), (8192, 8192));
    }

    #[test]
    fn a_database_in_use_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut open = establish(&settings(dir.path(), 2048)).unwrap();
        open.batch_execute("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let e = rewrite(&settings(dir.path(), 2048), Some(4096)).unwrap_err();
        assert!(e.contains("stop the service"), "{e}");
        // Nothing changed, and the open connection goes on writing.
        open.batch_execute("INSERT INTO t VALUES (2)").unwrap();
        assert_eq!(
            number(&mut open, "SELECT page_size AS n FROM pragma_page_size()").unwrap(),
            2048
        );
        assert_eq!(journal_mode(&mut open, "WAL").unwrap(), "wal");
    }

    #[test]
    fn a_bad_page_size_and_a_missing_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = rewrite(&settings(dir.path(), 2048), Some(3000)).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        let e = rewrite(&settings(dir.path(), 2048), None).unwrap_err();
        assert!(e.contains("verdict migrate"), "{e}");
        assert!(!dir.path().join("rewrite.db").exists());
    }
}
