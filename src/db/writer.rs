//! Group commit: one thread owns the writing connection, takes every write
//! waiting in its queue, runs each in a savepoint of one transaction and
//! commits once. A reply is sent only after the commit, so an acknowledged
//! write is durable.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::Connection;

use super::{establish, DbConnection};
use crate::config::DatabaseSettings;
use crate::error::AppError;

/// Called once the transaction holding a unit of work has committed (`Ok`)
/// or failed (`Err` with the reason).
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Work = Box<dyn FnOnce(&mut DbConnection) -> Completion + Send>;

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Work>,
}

impl Writer {
    pub fn start(conn: DbConnection, settings: DatabaseSettings, max_batch: usize) -> Writer {
        let (queue, receiver) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("verdict-writer".into())
            .spawn(move || run(conn, settings, receiver, max_batch.max(1)))
            .expect("cannot start the writer thread");
        Writer { queue }
    }

    pub async fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let work: Work = Box::new(move |conn| {
            let outcome = {
                let _entered = span.enter();
                conn.transaction::<T, AppError, _>(f)
            };
            Box::new(move |commit: Result<(), String>| {
                let result = match (outcome, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(AppError::Unavailable(format!("commit failed: {e}"))),
                    (Ok(value), Ok(())) => Ok(value),
                };
                let _ = reply.send(result);
            })
        });
        self.queue
            .send(work)
            .map_err(|_| AppError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| AppError::Unavailable("the write was abandoned".into()))?
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

fn run(
    mut conn: DbConnection,
    settings: DatabaseSettings,
    queue: mpsc::Receiver<Work>,
    max_batch: usize,
) {
    while let Ok(first) = queue.recv() {
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
            match establish(&settings) {
                Ok(fresh) => conn = fresh,
                Err(e) => tracing::error!(error = %e, "reconnect failed"),
            }
            if begin(&mut conn).is_err() {
                // Dropping the work drops its reply channel: callers get 503.
                continue;
            }
        }
        let ran = catch_unwind(AssertUnwindSafe(|| {
            batch
                .into_iter()
                .map(|work| work(&mut conn))
                .collect::<Vec<_>>()
        }));
        let completions = match ran {
            Ok(completions) => completions,
            Err(_) => {
                tracing::error!(
                    "a write panicked; the batch is rolled back and the connection reopened"
                );
                match establish(&settings) {
                    Ok(fresh) => conn = fresh,
                    Err(e) => tracing::error!(error = %e, "reconnect failed"),
                }
                continue;
            }
        };
        let commit = DbConnection::commit_transaction_status(&mut conn);
        tracing::trace!(
            jobs = completions.len(),
            ok = commit.is_ok(),
            "group commit"
        );
        for completion in completions {
            completion(commit.clone());
        }
    }
}

impl DbConnection {
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
