//! Batch scoring of files (`verdict score`, and the jobs of
//! `POST /api/v1/tasks/{task}/jobs`): a CSV or JSONL file read a chunk at
//! a time, each chunk scored through [`scoring::score`] — the API's
//! forward pass, policy and store, in one transaction per chunk — so items
//! are recorded, uncertain ones queued for reviewers, and a known id
//! returns its stored result (a re-run resumes). A bad row stops the run:
//! its chunk is not written, the chunks before it are.
//!
//! While the writer stores one chunk the next is read, featurised, scored
//! and decided on a blocking thread ([`scoring::prepare`]); the documents
//! of the stored chunk are built after its commit, off the writer.

pub mod jobs;
pub mod read;

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::db::{Db, DbError};
use crate::monitoring::Recorder;
use crate::scoring::{self, Featurised, Outcome, Prepared, ScoringError};
use crate::tasks::TaskRuntime;
pub use read::{Chunk, FileReader, Format, RowError};

/// Rows a chunk holds unless told otherwise: large enough that a
/// transaction's fixed costs vanish, small enough that a refused chunk
/// costs little to send again.
pub const DEFAULT_CHUNK_ROWS: usize = 10_000;

/// What a run has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Rows read from the file (those read ahead included).
    pub rows_read: u64,
    /// Items written or found stored, with a result line.
    pub scored: u64,
    /// Of those, the ones this run stored (the rest were known ids).
    pub created: u64,
    /// Decided by the model (audited ones included).
    pub automated: u64,
    /// Waiting for a reviewer.
    pub queued: u64,
    /// Rows read but not written: the refused row's chunk.
    pub refused: u64,
}

impl Tally {
    fn add(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            self.scored += 1;
            self.created += u64::from(o.created);
            match o.doc.status.as_str() {
                "decided" => self.automated += 1,
                _ => self.queued += 1,
            }
        }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A row was refused; its chunk was not written.
    #[error(transparent)]
    Row(#[from] RowError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("reading the file failed: {0}")]
    Reader(String),
}

impl BatchError {
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::Row(e) => e.code,
            BatchError::Database(_) => "internal",
            BatchError::Reader(_) => "internal",
        }
    }
}

/// One chunk scored and stored: its lines and documents, in file order.
pub struct Scored {
    /// 0 for the first chunk of the run.
    pub index: u64,
    pub lines: Vec<u64>,
    pub outcomes: Vec<Outcome>,
}

impl Scored {
    /// The documents as JSONL, one line per item: what the API returns
    /// for each.
    pub fn jsonl(&self, out: &mut Vec<u8>) {
        for o in &self.outcomes {
            serde_json::to_writer(&mut *out, &o.doc).expect("a document serialises");
            out.push(b'\n');
        }
    }
}

/// A run over one file: [`Run::next`] scores the next chunk.
pub struct Run<R: Read + Send + 'static> {
    db: Db,
    recorder: Arc<Recorder>,
    task: Arc<TaskRuntime>,
    chunk_rows: usize,
    /// `None` once the file is read to its end or refused.
    reader: Option<FileReader<R>>,
    /// The chunk read and scored while the one before was stored, with
    /// the file's line of each item.
    ahead: Option<(Vec<u64>, Prepared)>,
    /// A refused row found while reading ahead, reported after the chunk
    /// before it.
    refused: Option<BatchError>,
    index: u64,
    pub tally: Tally,
}

impl<R: Read + Send + 'static> Run<R> {
    pub fn new(
        db: Db,
        recorder: Arc<Recorder>,
        task: Arc<TaskRuntime>,
        reader: FileReader<R>,
        chunk_rows: usize,
    ) -> Self {
        Run {
            db,
            recorder,
            task,
            chunk_rows: chunk_rows.max(1),
            reader: Some(reader),
            ahead: None,
            refused: None,
            index: 0,
            tally: Tally::default(),
        }
    }

    /// Starts at chunk `index` with what the chunks before it did (a
    /// resumed job); the reader must be past their rows.
    pub fn resume_at(mut self, index: u64, tally: Tally) -> Self {
        self.index = index;
        self.tally = tally;
        self
    }

    /// Scores and stores the next chunk; `None` at the end of the file.
    /// After an error the run is over.
    pub async fn next(&mut self) -> Result<Option<Scored>, BatchError> {
        if let Some(e) = self.refused.take() {
            return Err(e);
        }
        let (lines, prepared) = match self.ahead.take() {
            Some(ahead) => ahead,
            None => match self.read().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let db = scoring::ScoreStore::direct(&self.db);
        let recorder = self.recorder.clone();
        let storing = scoring::store(&db, &recorder, prepared);
        let (scored, ahead) = futures_util::future::join(storing, self.read()).await;
        match ahead {
            Ok(ahead) => self.ahead = ahead,
            Err(e) => self.refused = Some(e),
        }
        let outcomes = match scored {
            Ok(outcomes) => outcomes,
            Err(e) => {
                self.reader = None;
                self.ahead = None;
                self.refused = None;
                return Err(self.refuse(match e.item_index() {
                    Some(i) => BatchError::Row(RowError::scoring(lines[i], e)),
                    None => match e {
                        ScoringError::Database(e) => BatchError::Database(e),
                        e => BatchError::Row(RowError::scoring(lines[0], e)),
                    },
                }));
            }
        };
        self.tally.add(&outcomes);
        if self.refused.is_some() {
            self.tally.refused = self.tally.rows_read - self.tally.scored;
        }
        let index = self.index;
        self.index += 1;
        Ok(Some(Scored {
            index,
            lines,
            outcomes,
        }))
    }

    fn refuse(&mut self, e: BatchError) -> BatchError {
        self.tally.refused = self.tally.rows_read - self.tally.scored;
        e
    }

    /// Reads, featurises and scores the next chunk on a blocking thread,
    /// with the deployment serving now.
    async fn read(&mut self) -> Result<Option<(Vec<u64>, Prepared)>, BatchError> {
        let Some(mut reader) = self.reader.take() else {
            return Ok(None);
        };
        let task = self.task.clone();
        let max = self.chunk_rows;
        let span = tracing::Span::current();
        let (reader, read) = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let serving = task.serving();
            let read = reader
                .next_chunk(serving.live.as_deref(), max)
                .map(|chunk| {
                    chunk.map(|chunk| {
                        let Chunk {
                            lines,
                            ids,
                            features,
                            featurise,
                        } = chunk;
                        let items = Featurised {
                            ids,
                            features,
                            featurise,
                            submitted: Instant::now(),
                        };
                        (lines, scoring::prepare(&task, serving, items, true))
                    })
                });
            (reader, read)
        })
        .await
        .map_err(|e| BatchError::Reader(e.to_string()))?;
        self.tally.rows_read = reader.rows_read();
        match read {
            Ok(Some(chunk)) => {
                self.reader = Some(reader);
                Ok(Some(chunk))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                let e = BatchError::Row(e);
                Err(self.refuse(e))
            }
        }
    }
}
