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
/// while it grows ([`CHECKPOINT_BUSY`]). Each pass first syncs the WAL:
/// the writer's next commit waits on the WAL's last page while it is being
/// written back, so the less a sync has to write the shorter that wait —
/// at 10,000 items/s a pass every 50 ms synced ~10 MB and stalled a commit
/// for ~4 ms twenty times a second (paced p99 10–19 ms); every 10 ms, ~2 MB
/// and no measurable stall (p99 6–9 ms), at the same throughput. When the
/// WAL is to be rewound, passes follow each other until little is left.
pub(super) const CHECKPOINT_IDLE: Duration = Duration::from_millis(100);
const CHECKPOINT_BUSY: Duration = Duration::from_millis(10);
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
                pinned_at: None,
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
    /// Set by the writer when its copy could not reach the end of the WAL
    /// (a reader's snapshot holds the frames after it), so the WAL does not
    /// start over.
    pub(super) pinned: AtomicBool,
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
    /// A reader's snapshot keeps the last rewind's frames from being
    /// copied: nothing is asked of the writer until it has moved on.
    Pinned,
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
    /// Where the copy stopped when a rewind failed because a reader's
    /// snapshot held the WAL ([`Pass::Pinned`] until a copy gets past it).
    pinned_at: Option<i64>,
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
            Ok(done) if self.pinned_at.is_some_and(|at| done.checkpointed <= at) => {
                // A long read (an export, a monitor's pass) still holds the
                // snapshot the last rewind stopped at: syncing and asking the
                // writer again would only repeat the failure, every few ms.
                (Pass::Pinned, CHECKPOINT_IDLE)
            }
            Ok(done) if done.busy == 0 && done.log >= rewind_frames => {
                self.pinned_at = None;
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
                if rewind.pinned.swap(false, Ordering::AcqRel) {
                    match checkpoint(&mut self.conn) {
                        Ok(now) => self.pinned_at = Some(now.checkpointed),
                        Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
                    }
                    tracing::debug!(at = ?self.pinned_at, "a reader holds the WAL: rewind put off");
                    return (Pass::Pinned, CHECKPOINT_IDLE);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::writer::{configure_writer, finish_rewind};
    use diesel::connection::SimpleConnection;

    fn settings(dir: &std::path::Path) -> DatabaseSettings {
        DatabaseSettings {
            url: format!("sqlite://{}", dir.join("pinned.db").display()),
            ..DatabaseSettings::default()
        }
    }

    fn write_rows(conn: &mut DbConnection, n: usize) {
        let rows = vec!["(randomblob(1500))"; n].join(",");
        conn.batch_execute(&format!("INSERT INTO t (b) VALUES {rows}"))
            .expect("insert");
    }

    /// A checkpointer pass with the writer's half run on `writer` whenever
    /// the pass asks for it (as the writer thread does between commits).
    fn pass(checkpointer: &mut Checkpointer, writer: &mut DbConnection) -> Pass {
        let rewind = checkpointer.rewind.clone();
        std::thread::scope(|scope| {
            let helper = scope.spawn(|| {
                while !rewind.writer_gone.load(Ordering::Acquire) {
                    finish_rewind(writer, &rewind);
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
            let (pass, _) = checkpointer.run_once();
            rewind.writer_gone.store(true, Ordering::Release);
            helper.join().expect("writer");
            rewind.writer_gone.store(false, Ordering::Release);
            pass
        })
    }

    /// A reader whose snapshot holds the WAL makes the rewind fail; the
    /// checkpointer then waits for it instead of syncing the files and
    /// asking the writer again on every pass (which, under load, it did
    /// every ~25 ms for as long as the read lasted), and rewinds once the
    /// reader is gone.
    #[test]
    fn a_rewind_held_back_by_a_reader_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = settings(dir.path());
        let mut writer = establish(&settings).expect("writer");
        configure_writer(&mut writer, &settings).expect("configure");
        writer
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
            .expect("schema");
        let mut checkpointer = Checkpointer {
            conn: establish(&settings).expect("checkpointer"),
            rewind: Arc::new(Rewind::default()),
            rewind_frames: 64,
            copied: 0,
            deferred: 0,
            pinned_at: None,
            files: Vec::new(),
        };
        write_rows(&mut writer, 20);

        // A reader takes its snapshot, then the WAL grows past the mark.
        let mut reader = establish(&settings).expect("reader");
        reader
            .batch_execute("BEGIN; SELECT count(*) FROM t;")
            .expect("snapshot");
        write_rows(&mut writer, 200);
        assert_eq!(pass(&mut checkpointer, &mut writer), Pass::Pinned);
        write_rows(&mut writer, 50);
        for _ in 0..3 {
            assert_eq!(
                pass(&mut checkpointer, &mut writer),
                Pass::Pinned,
                "no rewind is asked for while the reader holds the WAL"
            );
            assert!(!checkpointer.rewind.wanted.load(Ordering::Acquire));
        }

        reader.batch_execute("COMMIT").expect("end the read");
        write_rows(&mut writer, 5);
        assert_eq!(pass(&mut checkpointer, &mut writer), Pass::Rewound);
        // The next commit starts the WAL over: a pass finds it short.
        write_rows(&mut writer, 1);
        let done = checkpoint(&mut checkpointer.conn).expect("checkpoint");
        assert!(done.log < 64, "the WAL started over ({} frames)", done.log);
    }
}
