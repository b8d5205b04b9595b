//! The checkpointer: copies the WAL into the database in the background
//! (`PASSIVE`, which never blocks the writer) so that commits never
//! checkpoint, and asks the writer to rewind the WAL once it has grown past
//! its limit (see `writer.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

use super::{establish, DbConnection};
use crate::config::DatabaseSettings;
use crate::domain::Backend;

/// Pause between two background checkpoints while the WAL is quiet, and
/// while it grows ([`CHECKPOINT_BUSY`]): each pass syncs the WAL and the
/// database, and syncing every few ms under load cost throughput; when the
/// WAL is to be rewound, passes follow each other until little is left.
pub(super) const CHECKPOINT_IDLE: Duration = Duration::from_millis(100);
const CHECKPOINT_BUSY: Duration = Duration::from_millis(50);
/// Frames the writer may be left to copy when it rewinds the WAL.
const REWIND_LEFT: i64 = 256;
/// Rewinds put off because more was left; then the writer copies the rest
/// (more deferrals let the WAL outgrow its limit under heavy writes).
const MAX_DEFERRALS: u32 = 2;
const CHECKPOINT_RETRY: Duration = Duration::from_millis(5);
/// Sync-and-copy rounds before a rewind ([`Checkpointer::settle`]), and the
/// sync time under which the files count as settled.
const SETTLE_ROUNDS: u32 = 4;
const SETTLED: Duration = Duration::from_millis(2);
/// No round starts after this long (the WAL grows meanwhile).
const SETTLE_BUDGET: Duration = Duration::from_millis(25);

/// Starts the checkpointer thread on a connection of its own, for
/// `writer`'s database (whose commits do not checkpoint).
pub(super) fn start_checkpointer(
    writer: &mut DbConnection,
    settings: &DatabaseSettings,
    rewind: Arc<Rewind>,
) -> Result<(), String> {
    #[derive(diesel::QueryableByName)]
    struct PageSize {
        #[diesel(sql_type = BigInt)]
        page_size: i64,
    }
    let page_size = diesel::sql_query("PRAGMA page_size")
        .get_result::<PageSize>(writer)
        .map_err(|e| format!("cannot read the page size: {e}"))?
        .page_size;
    // The writer's share of a rewind (the frames written since the last
    // background pass, and two syncs) pauses it for a few ms: rarely, with
    // a large WAL.
    let frames = (i64::from(settings.wal_limit_mb) << 20) / page_size.max(512);
    let conn = establish(settings)?;
    // The files a rewind syncs: the WAL, then the database.
    let files = match Backend::from_url(&settings.url)? {
        Backend::Sqlite(path) => vec![PathBuf::from(format!("{path}-wal")), PathBuf::from(path)],
        Backend::Postgres(_) => Vec::new(),
    };
    std::thread::Builder::new()
        .name("verdict-checkpoint".into())
        .spawn(move || {
            Checkpointer {
                conn,
                rewind,
                rewind_frames: frames.max(1),
                copied: 0,
                deferred: 0,
                files,
            }
            .run_until_stopped()
        })
        .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
pub(super) struct CheckpointResult {
    #[diesel(sql_type = BigInt)]
    pub(super) busy: i64,
    /// Frames in the WAL.
    #[diesel(sql_type = BigInt)]
    pub(super) log: i64,
    /// Frames of the WAL copied into the database.
    #[diesel(sql_type = BigInt)]
    pub(super) checkpointed: i64,
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: copies what it can without waiting.
pub(super) fn checkpoint(conn: &mut DbConnection) -> diesel::QueryResult<CheckpointResult> {
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)
}

/// The checkpointer's and the writer's signals.
#[derive(Default)]
pub(super) struct Rewind {
    /// Set by the checkpointer, cleared by the writer once it has copied the
    /// last frames.
    pub(super) wanted: AtomicBool,
    /// The writer has stopped: so does the checkpointer.
    pub(super) writer_gone: AtomicBool,
}

/// What one pass of the checkpointer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Frames were copied into the database (`copied`: in all since the
    /// last rewind); the WAL grows on.
    Copied { copied: i64 },
    /// Nothing new to copy.
    Idle,
    /// More was left than the writer should copy: tried again shortly.
    Deferred,
    /// The writer copied the last frames; the WAL starts over.
    Rewound,
    /// The checkpoint failed (logged); tried again later.
    Failed,
}

/// The background half of the checkpoints (see the writer's module
/// comment): a plain job on a connection of its own.
pub struct Checkpointer {
    conn: DbConnection,
    rewind: Arc<Rewind>,
    /// WAL frames past which the WAL is to be rewound.
    rewind_frames: i64,
    copied: i64,
    deferred: u32,
    /// The WAL and the database file, synced before a rewind.
    files: Vec<PathBuf>,
}

impl Checkpointer {
    /// Loops [`Checkpointer::run_once`] until the writer stops.
    pub fn run_until_stopped(mut self) {
        while !self.rewind.writer_gone.load(Ordering::Acquire) {
            let (_, pause) = self.run_once();
            std::thread::sleep(pause);
        }
    }

    /// Before handing a rewind to the writer: syncs the WAL and the
    /// database, then copies what arrived meanwhile, until a sync finds
    /// little to write (at most [`SETTLE_ROUNDS`] rounds, none started after
    /// [`SETTLE_BUDGET`]). A background pass
    /// that does not reach the end of the WAL never syncs the database
    /// (SQLite syncs it only after a complete copy), so without this the
    /// writer's own pass flushed every page copied since the last rewind —
    /// hundreds of MB at 10,000 items/s, ~20 ms in which nothing commits.
    /// Returns the rounds run and the time they took.
    fn settle(&mut self) -> (u32, Duration) {
        let started = std::time::Instant::now();
        let mut rounds = 0;
        while rounds < SETTLE_ROUNDS && started.elapsed() < SETTLE_BUDGET {
            rounds += 1;
            let sync = std::time::Instant::now();
            for file in &self.files {
                // Any descriptor's fsync flushes the file's dirty pages.
                if let Err(e) = std::fs::File::open(file).and_then(|f| f.sync_data()) {
                    tracing::warn!(file = %file.display(), error = %e, "cannot sync before a rewind");
                }
            }
            let synced = sync.elapsed();
            if let Err(e) = checkpoint(&mut self.conn) {
                tracing::warn!(error = %e, "background checkpoint failed");
                break;
            }
            if synced < SETTLED {
                break;
            }
        }
        (rounds, started.elapsed())
    }

    /// One pass: copies what it can; when the WAL is past its limit, copies
    /// until little is left and has the writer rewind it. Returns what it
    /// did and how long to wait before the next pass.
    pub fn run_once(&mut self) -> (Pass, Duration) {
        let rewind = self.rewind.clone();
        let rewind_frames = self.rewind_frames;
        match checkpoint(&mut self.conn) {
            Ok(done) if done.busy == 0 && done.log >= rewind_frames => {
                // Copy again until little is left for the writer: what was
                // written while this pass ran.
                let mut left = done.log - done.checkpointed;
                for _ in 0..4 {
                    if left <= REWIND_LEFT {
                        break;
                    }
                    match checkpoint(&mut self.conn) {
                        Ok(again) => left = again.log - again.checkpointed,
                        Err(_) => break,
                    }
                }
                if left > REWIND_LEFT && self.deferred < MAX_DEFERRALS {
                    // Writes outran the copy, or a long read holds it back
                    // (a checkpoint cannot pass the oldest reader's
                    // snapshot): try again shortly rather than leave the
                    // writer a long copy; but not for ever, or the WAL would
                    // grow without bound.
                    self.deferred += 1;
                    return (Pass::Deferred, CHECKPOINT_RETRY);
                }
                let (rounds, synced) = self.settle();
                tracing::debug!(
                    rounds,
                    us = synced.as_micros() as u64,
                    log = done.log,
                    "WAL settled before its rewind"
                );
                self.deferred = 0;
                rewind.wanted.store(true, Ordering::Release);
                while rewind.wanted.load(Ordering::Acquire)
                    && !rewind.writer_gone.load(Ordering::Acquire)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.copied = 0;
                (Pass::Rewound, CHECKPOINT_BUSY)
            }
            Ok(done) => {
                let grew = done.checkpointed > self.copied;
                self.copied = done.checkpointed;
                if grew {
                    (
                        Pass::Copied {
                            copied: self.copied,
                        },
                        CHECKPOINT_BUSY,
                    )
                } else {
                    (Pass::Idle, CHECKPOINT_IDLE)
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "background checkpoint failed");
                (Pass::Failed, CHECKPOINT_IDLE)
            }
        }
    }
}
