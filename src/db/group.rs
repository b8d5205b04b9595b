//! Group commit on PostgreSQL for one kind of write.
//!
//! PostgreSQL takes concurrent writers, but a transaction per request pays a
//! commit (a WAL flush) and a round trip per statement each time. A
//! [`Grouper`] collects the jobs waiting in its queue and hands them to one
//! function that writes them all in one transaction — one multi-row
//! statement per table instead of one per request — and answers each job
//! only once that function has returned (after its commit), so an
//! acknowledged write is durable. Several threads take turns at the queue:
//! while one commits, the next gathers the jobs that arrived meanwhile.
//!
//! The function owns the transaction and its failure handling (a group
//! that fails can be retried job by job); this layer only queues, groups
//! and replies.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};

use super::{DbConnection, DbError, Pool};

type Reply<R> = tokio::sync::oneshot::Sender<R>;
type Run<J, R> = dyn Fn(&mut DbConnection, Vec<J>) -> Vec<R> + Send + Sync;

/// The sending half of a group writer; cheap to clone.
pub struct Grouper<J, R> {
    queue: mpsc::Sender<(J, Reply<R>)>,
}

impl<J, R> Clone for Grouper<J, R> {
    fn clone(&self) -> Self {
        Grouper {
            queue: self.queue.clone(),
        }
    }
}

/// How a group writer runs.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    /// Threads taking turns at the queue (each with a pooled connection
    /// while it writes).
    pub threads: usize,
    /// Most jobs in one group.
    pub max_jobs: usize,
}

impl<J: Send + 'static, R: Send + 'static> Grouper<J, R> {
    /// Starts `settings.threads` threads named `name` running `run` over
    /// groups of queued jobs. `run` gets the jobs in arrival order and
    /// returns one result per job, in the same order.
    pub fn start(
        pool: Pool,
        name: &str,
        settings: GroupSettings,
        run: impl Fn(&mut DbConnection, Vec<J>) -> Vec<R> + Send + Sync + 'static,
    ) -> Result<Grouper<J, R>, String> {
        let (queue, receiver) = mpsc::channel::<(J, Reply<R>)>();
        let receiver = Arc::new(Mutex::new(receiver));
        let run: Arc<Run<J, R>> = Arc::new(run);
        for n in 0..settings.threads.max(1) {
            let (receiver, run, pool) = (receiver.clone(), run.clone(), pool.clone());
            let max_jobs = settings.max_jobs.max(1);
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || serve(&pool, &receiver, &*run, max_jobs))
                .map_err(|e| format!("cannot start the {name} thread: {e}"))?;
        }
        Ok(Grouper { queue })
    }

    /// Queues `job` and waits for its result (sent after its group's
    /// commit).
    pub async fn submit(&self, job: J) -> Result<R, DbError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .send((job, reply))
            .map_err(|_| DbError::Closed("the group writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Closed("the write was abandoned".into()))
    }
}

/// One thread: waits for a job (holding the queue, so the other threads
/// wait behind it), takes every job already waiting, lets the queue go and
/// writes the group.
fn serve<J, R>(
    pool: &Pool,
    receiver: &Mutex<mpsc::Receiver<(J, Reply<R>)>>,
    run: &Run<J, R>,
    max_jobs: usize,
) {
    loop {
        let group = {
            let Ok(receiver) = receiver.lock() else {
                return;
            };
            let Ok(first) = receiver.recv() else {
                return;
            };
            let mut group = vec![first];
            while group.len() < max_jobs {
                match receiver.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group
        };
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                // Dropping the replies answers every caller with an error.
                tracing::error!(error = %e, jobs = group.len(), "no connection for a group commit");
                continue;
            }
        };
        let (jobs, replies): (Vec<J>, Vec<Reply<R>>) = group.into_iter().unzip();
        let count = jobs.len();
        match catch_unwind(AssertUnwindSafe(|| run(&mut conn, jobs))) {
            Ok(results) => {
                debug_assert_eq!(results.len(), count, "one result per job");
                tracing::trace!(jobs = count, "group commit");
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(_) => {
                // A connection left inside a transaction counts as broken
                // (diesel's `is_broken`): the pool drops it.
                tracing::error!(
                    jobs = count,
                    "a group write panicked; its callers get an error"
                );
            }
        }
    }
}
