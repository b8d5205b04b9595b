//! The store: one diesel code base over SQLite (embedded default) and
//! PostgreSQL, chosen by the URL scheme.
//!
//! Reads go through an r2d2 pool on the blocking thread pool. Writes:
//! - SQLite allows one writer: [`Writer`], one thread owning the only
//!   writing connection, commits the work of concurrent requests together
//!   (group commit), each request's work in its own savepoint so one failure
//!   never spoils another's.
//! - PostgreSQL takes concurrent writers: each write is its own
//!   transaction on a pooled connection; the scoring path, where a request
//!   is a few inserts, groups concurrent requests into one transaction of
//!   multi-row inserts with a [`Grouper`].
//!
//! Lookups by a unique key end in `.get_result()`, not `.first()`: `first`
//! binds `LIMIT` as a parameter, SQLite plans with the bound value, and a
//! statement whose planned parameter is bound again is re-prepared on every
//! run (it cost a tenth of the scoring path's CPU).

mod checkpointer;
mod error;
pub mod fast_time;
mod group;
mod rewrite;
pub mod schema;
pub mod unnest;
mod writer;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::{DatabaseSettings, Synchronous};
pub use crate::domain::Backend;
pub use checkpointer::{Checkpointer, Pass as CheckpointPass};
pub use error::DbError;
pub use group::{GroupSettings, Grouper};
pub use rewrite::{rewrite, Rewritten};
pub use writer::Writer;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Queries written against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection. Diesel's
/// multi-connection re-prepares every statement it forwards; hot paths and
/// multi-row inserts (which it lacks) go to the backend directly.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Pg($c) => $body,
        }
    };
}

/// Opens one connection and applies the per-connection settings.
pub fn establish(settings: &DatabaseSettings) -> Result<DbConnection, String> {
    let backend = Backend::from_url(&settings.url)?;
    match backend {
        Backend::Postgres(url) => PgConnection::establish(&url)
            .map(DbConnection::Pg)
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}")),
        Backend::Sqlite(path) => {
            configure_sqlite_library();
            let mut conn = SqliteConnection::establish(&path)
                .map_err(|e| format!("cannot open SQLite database {path}: {e}"))?;
            let synchronous = match settings.synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            // `database.page_size`, 2 KiB by default (for a new database; an
            // existing one keeps its own): a commit writes every page it
            // dirtied, and items arrive
            // under random ids, so each dirties a leaf of the id index, of
            // predictions and of verdicts; smaller pages halve the bytes a
            // commit writes (and the checkpoint copies) while an item row
            // (~1.3 KB) still fits a page.
            // journal_size_limit: twice the WAL's limit. The checkpointer
            // rewinds the WAL once it has passed `wal_limit_mb` (a little
            // past: it looks once per pass); a size limit at that mark had
            // the first commit after nearly every rewind truncate the file,
            // ~8 ms of the writer's time freeing the blocks beyond. At twice
            // the mark the steady state never truncates, and a WAL a long
            // reader let grow is still cut back.
            conn.batch_execute(&format!(
                "PRAGMA page_size = {}; PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = {};",
                settings.page_size,
                settings.busy_timeout_ms,
                u64::from(settings.wal_limit_mb) << 21
            ))
            .map_err(|e| format!("cannot configure SQLite database {path}: {e}"))?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// SQLite's process-wide settings, before its first connection opens:
/// - multi-thread mode: no mutex around each connection's every call
///   (serialized mode's default). Safe here because a diesel connection is
///   never used by two threads at once (it is not `Sync`; the pool and the
///   writer thread each hand it to one thread at a time).
/// - no memory statistics: they take a global mutex on every allocation.
///
/// Both were ~6 % of the writer's time storing a batch file.
fn configure_sqlite_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use libsqlite3_sys as ffi;
        // SAFETY: sqlite3_config is called before any connection is opened
        // by this process (its first SQLite call goes through here); were
        // SQLite already initialised, it would refuse with SQLITE_MISUSE and
        // change nothing, which is logged.
        let threading = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MULTITHREAD) };
        let memstatus =
            unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
        if threading != ffi::SQLITE_OK || memstatus != ffi::SQLITE_OK {
            tracing::warn!(
                threading,
                memstatus,
                "SQLite was initialised before its settings could be applied"
            );
        }
    });
}

/// Runs the embedded migrations of the connection's backend; returns the
/// versions applied.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| format!("migrations failed: {e}"))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Reverts the newest applied migration; returns its version. For tests
/// of a migration's own data changes (down, then up again), and for an
/// operator stepping back a release.
pub fn revert_last_migration(conn: &mut DbConnection) -> Result<String, String> {
    let reverted = match conn {
        DbConnection::Pg(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
    }
    .map_err(|e| format!("reverting the last migration failed: {e}"))?;
    Ok(reverted.to_string())
}

/// Runs `f` in a transaction that writes. On SQLite it begins
/// `IMMEDIATE`: the write lock is taken (waiting up to the busy timeout)
/// before the first read, so a transaction that reads and then writes
/// cannot fail at once with "database is locked" because the running
/// server committed in between (a deferred transaction cannot upgrade
/// its read snapshot once another writer has moved past it). For the
/// CLI and start-up, whose connection is not the server's writer; inside
/// an open transaction it is a savepoint, as `transaction` is.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    let depth =
        AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()?;
    if depth.is_some() {
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The error that matters is `f`'s; a failed rollback leaves
            // the connection marked broken for the pool to drop.
            let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

pub struct Manager {
    settings: DatabaseSettings,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        establish(&self.settings).map_err(ConnectError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        conn.is_broken()
    }
}

pub type Pool = diesel::r2d2::Pool<Manager>;

/// The database as the rest of the service sees it.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// SQLite's single writer; `None` on PostgreSQL.
    writer: Option<Writer>,
    backend: Backend,
}

impl Db {
    /// Connects, runs migrations and starts the writer thread.
    pub fn open(settings: &DatabaseSettings) -> Result<Db, String> {
        let backend = Backend::from_url(&settings.url)?;
        let mut conn = establish(settings)?;
        run_migrations(&mut conn)?;
        let pool = diesel::r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(Manager {
                settings: settings.clone(),
            })
            .map_err(|e| format!("cannot open the connection pool: {e}"))?;
        let writer = match backend.is_sqlite() {
            true => Some(Writer::start(
                conn,
                settings.clone(),
                settings.max_batch_jobs,
            )?),
            false => None,
        };
        Ok(Db {
            pool,
            writer,
            backend,
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Runs `f` on a pooled connection on the blocking thread pool. `f`
    /// returns the caller's own error, which a [`DbError`] converts into.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get().map_err(|e| DbError::Busy(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Closed(format!("blocking read failed: {e}")))?
    }

    /// Runs `f` in a write transaction (on SQLite a savepoint inside the
    /// writer's next group commit); returns once the commit is durable.
    /// An `Err` from `f` rolls its work back.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(f).await,
            None => {
                self.read(move |conn| {
                    use diesel::Connection;
                    conn.transaction(f)
                })
                .await
            }
        }
    }

    /// Starts a group writer on this database's pool (see [`Grouper`]);
    /// for PostgreSQL, where writers do not share a connection.
    pub fn grouper<J: Send + 'static, R: Send + 'static>(
        &self,
        name: &str,
        settings: GroupSettings,
        run: impl Fn(&mut DbConnection, Vec<J>) -> Vec<R> + Send + Sync + 'static,
    ) -> Result<Grouper<J, R>, String> {
        Grouper::start(self.pool.clone(), name, settings, run)
    }

    /// Whether the database answers (`SELECT 1` on a pooled connection).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|conn| Ok(conn.batch_execute("SELECT 1")?)).await
    }

    /// A pooled connection for synchronous callers (CLI, start-up).
    pub fn get(&self) -> Result<diesel::r2d2::PooledConnection<Manager>, DbError> {
        self.pool.get().map_err(|e| DbError::Busy(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn open(url: &str) -> DbConnection {
        establish(&DatabaseSettings {
            url: url.to_string(),
            ..DatabaseSettings::default()
        })
        .expect("open")
    }

    /// A transaction that reads and then writes on one connection while
    /// another connection keeps committing: with `write_transaction` every
    /// one commits (a deferred transaction loses its read snapshot and
    /// fails at once with "database is locked").
    #[test]
    fn a_read_then_write_transaction_waits_for_another_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("race.db").display());
        open(&url)
            .batch_execute("CREATE TABLE t (n BIGINT NOT NULL); INSERT INTO t VALUES (0);")
            .expect("schema");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conn = open(&url);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.batch_execute("UPDATE t SET n = n + 1")
                        .expect("other writer");
                }
            })
        };
        let mut conn = open(&url);
        for _ in 0..50 {
            write_transaction(&mut conn, |conn| {
                let before = diesel::sql_query("SELECT n FROM t")
                    .get_result::<Count>(conn)?
                    .n;
                std::thread::sleep(Duration::from_millis(1));
                diesel::sql_query(format!("UPDATE t SET n = {}", before + 1)).execute(conn)?;
                Ok::<_, diesel::result::Error>(())
            })
            .expect("the read-then-write transaction commits");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        other.join().expect("other writer");
    }

    /// `database.page_size` sets the page size of a database file it
    /// creates; a file that exists keeps its own, whatever the setting.
    #[test]
    fn the_page_size_applies_to_new_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("pages.db").display());
        let with = |page_size| DatabaseSettings {
            url: url.clone(),
            page_size,
            ..DatabaseSettings::default()
        };
        let page_size = |conn: &mut DbConnection| {
            diesel::sql_query("SELECT page_size AS n FROM pragma_page_size()")
                .get_result::<Count>(conn)
                .expect("page size")
                .n
        };
        let mut created = establish(&with(8192)).expect("create");
        run_migrations(&mut created).expect("migrations");
        assert_eq!(page_size(&mut created), 8192);
        drop(created);
        let mut reopened = establish(&with(2048)).expect("reopen");
        assert_eq!(
            page_size(&mut reopened),
            8192,
            "an existing file keeps its pages"
        );
        for bad in [0, 1000, 256, 131_072] {
            assert!(with(bad).validate().is_err(), "page_size {bad} is refused");
        }
        assert!(with(4096).validate().is_ok());
    }
}
