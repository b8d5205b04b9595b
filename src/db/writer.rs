//! Group commit: one thread owns the writing connection, takes every write
//! waiting in its queue, runs each in a savepoint of one transaction and
//! commits once. A reply is sent only after the commit, so an acknowledged
//! write is durable.
//!
//! WAL checkpoints stay out of the commit path: the writer's connection does
//! not checkpoint on commit; a checkpointer thread with its own connection
//! copies the WAL into the database in the background (`PASSIVE`, which
//! never blocks the writer). A passive checkpoint under steady writes never
//! catches up with the end of the WAL, and SQLite only rewinds the WAL once
//! every frame is copied, so when the WAL has grown past `wal_limit_mb`
//! the checkpointer asks the writer to copy the last few frames itself
//! between two commits (nothing is appended meanwhile); the next commit then
//! starts the WAL from the beginning again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::Connection;

use super::checkpointer::{checkpoint, start_checkpointer, Rewind, CHECKPOINT_IDLE};
use super::DbError;
use super::{establish, DbConnection};
use crate::config::DatabaseSettings;

/// A group's work and commit taking longer than this is logged (debug).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(5);
/// One unit of work taking longer than this is logged (debug), in the span
/// of the code that asked for it: every write committed with it waits.
const SLOW_UNIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Called once the transaction holding a unit of work has committed (`Ok`)
/// or failed (`Err` with the reason).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs one unit of work; `alone` when it is the only one of its
/// transaction. Returns its completion and whether it succeeded.
type Work = Box<dyn FnOnce(&mut DbConnection, bool) -> (Completion, bool) + Send>;

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Work>,
}

impl Writer {
    /// Starts the writer thread on `conn` and, on SQLite, the checkpointer.
    pub fn start(
        mut conn: DbConnection,
        settings: DatabaseSettings,
        max_batch: usize,
    ) -> Result<Writer, String> {
        let rewind = Arc::new(Rewind::default());
        configure_writer(&mut conn, &settings)?;
        if let DbConnection::Sqlite(_) = conn {
            start_checkpointer(&mut conn, &settings, rewind.clone())?;
        }
        let (queue, receiver) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("verdict-writer".into())
            .spawn(move || {
                run(conn, settings, receiver, max_batch.max(1), &rewind);
                rewind.writer_gone.store(true, Ordering::Release);
            })
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        Ok(Writer { queue })
    }

    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let work: Work = Box::new(move |conn, alone| {
            let outcome = {
                let _entered = span.enter();
                // Alone in its transaction, a unit needs no savepoint (whose
                // journal copies every page before its first change: a
                // batch file's chunk is thousands of pages); if it fails,
                // the transaction is rolled back instead of committed.
                let started = std::time::Instant::now();
                let outcome = if alone {
                    f(conn)
                } else {
                    conn.transaction::<T, E, _>(f)
                };
                let took = started.elapsed();
                if took > SLOW_UNIT {
                    // In the caller's span: says whose write it was.
                    tracing::debug!(us = took.as_micros() as u64, "slow unit of work");
                }
                outcome
            };
            let ok = outcome.is_ok();
            let completion: Completion = Box::new(move |commit: Result<(), String>| {
                let result = match (outcome, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(DbError::Closed(format!("commit failed: {e}")).into()),
                    (Ok(value), Ok(())) => Ok(value),
                };
                let _ = reply.send(result);
            });
            (completion, ok)
        });
        self.queue
            .send(work)
            .map_err(|_| DbError::Closed("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Closed("the write was abandoned".into()))?
    }
}

fn begin(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Pg(c) => AnsiTransactionManager::begin_transaction(c),
    }
}

/// The writer's commits never checkpoint (the checkpointer does), and its
/// page cache holds a large transaction's dirty pages until the commit.
pub(super) fn configure_writer(
    conn: &mut DbConnection,
    settings: &DatabaseSettings,
) -> Result<(), String> {
    use diesel::connection::SimpleConnection;
    if let DbConnection::Sqlite(_) = conn {
        conn.batch_execute(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{};",
            u64::from(settings.writer_cache_mb) * 1024
        ))
        .map_err(|e| format!("cannot configure the writer: {e}"))?;
    }
    Ok(())
}

fn run(
    mut conn: DbConnection,
    settings: DatabaseSettings,
    queue: mpsc::Receiver<Work>,
    max_batch: usize,
    rewind: &Rewind,
) {
    loop {
        let first = match queue.recv_timeout(CHECKPOINT_IDLE) {
            Ok(work) => work,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                finish_rewind(&mut conn, rewind);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Everything waiting joins this commit: under concurrency groups
        // grow by themselves; a lone writer never waits.
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        if let Err(e) = begin(&mut conn) {
            tracing::error!(error = %e, "cannot begin a write transaction; reconnecting");
            reopen(&mut conn, &settings);
            if begin(&mut conn).is_err() {
                // Dropping the work drops its reply channel: callers get 503.
                continue;
            }
        }
        let alone = batch.len() == 1;
        let started = std::time::Instant::now();
        let ran = catch_unwind(AssertUnwindSafe(|| {
            batch
                .into_iter()
                .map(|work| work(&mut conn, alone))
                .collect::<Vec<_>>()
        }));
        let completions = match ran {
            Ok(completions) => completions,
            Err(_) => {
                tracing::error!(
                    "a write panicked; the batch is rolled back and the connection reopened"
                );
                reopen(&mut conn, &settings);
                continue;
            }
        };
        let worked = started.elapsed();
        let commit = if alone && !completions[0].1 {
            DbConnection::rollback_transaction_status(&mut conn)
        } else {
            DbConnection::commit_transaction_status(&mut conn)
        };
        let took = started.elapsed();
        if took > SLOW_COMMIT {
            tracing::debug!(
                us = took.as_micros() as u64,
                work_us = worked.as_micros() as u64,
                jobs = completions.len(),
                "slow group commit"
            );
        }
        tracing::trace!(
            jobs = completions.len(),
            ok = commit.is_ok(),
            "group commit"
        );
        for (completion, _) in completions {
            completion(commit.clone());
        }
        finish_rewind(&mut conn, rewind);
    }
}

/// Replaces the writer's connection with a fresh one, configured as at
/// start (no checkpoints in its commits on SQLite).
fn reopen(conn: &mut DbConnection, settings: &DatabaseSettings) {
    let fresh = establish(settings).and_then(|mut fresh| {
        configure_writer(&mut fresh, settings)?;
        Ok(fresh)
    });
    match fresh {
        Ok(fresh) => *conn = fresh,
        Err(e) => tracing::error!(error = %e, "reconnect failed"),
    }
}

/// The writer's half of a rewind, between two commits: copies the frames
/// written since the checkpointer's last pass, so the next commit starts the
/// WAL from the beginning. When a reader's snapshot keeps it from copying
/// them all the WAL cannot start over; the checkpointer is told
/// ([`Rewind::pinned`]) so that it waits for that reader rather than ask
/// again at once.
pub(super) fn finish_rewind(conn: &mut DbConnection, rewind: &Rewind) {
    if !rewind.wanted.load(Ordering::Acquire) {
        return;
    }
    let started = std::time::Instant::now();
    let complete = match checkpoint(conn) {
        Ok(done) => {
            tracing::debug!(
                us = started.elapsed().as_micros() as u64,
                busy = done.busy,
                log = done.log,
                checkpointed = done.checkpointed,
                "checkpoint before rewinding the WAL"
            );
            done.busy == 0 && done.checkpointed >= done.log
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint before rewinding the WAL failed");
            false
        }
    };
    rewind.pinned.store(!complete, Ordering::Release);
    rewind.wanted.store(false, Ordering::Release);
}

impl DbConnection {
    /// Rolls back a transaction whose only unit of work failed (the unit
    /// reports its own error; a failed rollback reopens the connection's
    /// state on the next begin).
    fn rollback_transaction_status(conn: &mut DbConnection) -> Result<(), String> {
        <DbConnection as Connection>::TransactionManager::rollback_transaction(conn).map_err(|e| {
            tracing::error!(error = %e, "rollback failed");
            e.to_string()
        })
    }

    fn commit_transaction_status(conn: &mut DbConnection) -> Result<(), String> {
        match <DbConnection as Connection>::TransactionManager::commit_transaction(conn) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let _ =
                    <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
                Err(e.to_string())
            }
        }
    }
}
