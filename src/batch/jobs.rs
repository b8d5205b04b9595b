//! Batch scoring jobs: a file uploaded through the API, stored in the
//! database with its results, and scored by a [`JobRunner`] in whichever
//! instance claims it. A claim is a lease renewed at every chunk; when an
//! instance dies its lease runs out and the next claim resumes the job
//! after the last chunk whose results were stored (a chunk scored again
//! finds its items stored and returns them: nothing is written twice).

use std::io::Cursor;
use std::sync::Arc;

use serde::Serialize;

use super::{BatchError, FileReader, Format, Run, Tally};
use crate::config::JobSettings;
use crate::db::{Db, DbError};
use crate::domain::{now, rfc3339, JobState};
use crate::monitoring::Recorder;
use crate::store::jobs::{self as store, Counts, Failure, JobRow, NewJob};
use crate::tasks::Registry;

/// Why a job could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the file is empty")]
    EmptyFile,
    #[error("no job {0:?}")]
    NotFound(String),
    #[error("job {id:?} is {state}: its results are there once it is done")]
    NotDone { id: String, state: &'static str },
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        JobError::Database(e.into())
    }
}

impl JobError {
    pub fn code(&self) -> &'static str {
        match self {
            JobError::EmptyFile => "empty_file",
            JobError::NotFound(_) => "job_not_found",
            JobError::NotDone { .. } => "job_not_done",
            JobError::Database(_) => "internal",
        }
    }
}

/// What a client sees of a job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobDoc {
    pub id: String,
    pub task: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// `csv` or `jsonl`.
    pub format: String,
    pub input_bytes: i64,
    pub counts: JobCounts,
    /// Why a failed job stopped; the rows before the refused row's chunk
    /// are stored.
    pub error: Option<JobErrorDoc>,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Where the results are, once done.
    pub results: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobCounts {
    pub rows_read: i64,
    pub scored: i64,
    /// Items this job stored (the rest were known ids).
    pub created: i64,
    pub automated: i64,
    pub queued_for_review: i64,
    pub refused: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobErrorDoc {
    pub line: Option<i64>,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

impl From<&JobRow> for JobDoc {
    fn from(row: &JobRow) -> Self {
        JobDoc {
            id: row.id.clone(),
            task: row.task.clone(),
            state: row.state.as_str(),
            format: row.format.clone(),
            input_bytes: row.input_bytes,
            counts: JobCounts {
                rows_read: row.counts.rows_read,
                scored: row.counts.scored,
                created: row.counts.created,
                automated: row.counts.automated,
                queued_for_review: row.counts.queued,
                refused: row.counts.refused,
            },
            error: row.error_code.as_ref().map(|code| JobErrorDoc {
                line: row.error_line,
                code: code.clone(),
                field: row.error_field.clone().filter(|f| !f.is_empty()),
                message: row.error_message.clone().unwrap_or_default(),
            }),
            created_by: row.created_by.clone(),
            created_at: rfc3339(&row.created_at),
            started_at: row.started_at.as_ref().map(rfc3339),
            finished_at: row.finished_at.as_ref().map(rfc3339),
            results: (row.state == JobState::Done)
                .then(|| format!("/api/v1/tasks/{}/jobs/{}/results", row.task, row.id)),
        }
    }
}

/// Stores an uploaded file as a queued job of `task`.
pub async fn create(
    db: &Db,
    task: &str,
    format: Format,
    input: Vec<u8>,
    created_by: &str,
    settings: &JobSettings,
) -> Result<JobDoc, JobError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(JobError::EmptyFile);
    }
    let id = format!("job-{}", &crate::crypto::random_token()[..20]);
    let (task, created_by) = (task.to_string(), created_by.to_string());
    let chunk_rows = settings.chunk_rows as i64;
    db.write(move |conn| {
        store::insert(
            conn,
            &NewJob {
                id: &id,
                task: &task,
                format: format.as_str(),
                input: &input,
                chunk_rows,
                created_by: &created_by,
                created_at: now(),
            },
        )?;
        let row = store::find(conn, &task, &id)?.ok_or_else(|| JobError::NotFound(id.clone()))?;
        Ok(JobDoc::from(&row))
    })
    .await
}

/// A job of `task`.
pub async fn get(db: &Db, task: &str, id: &str) -> Result<JobDoc, JobError> {
    let (task, id) = (task.to_string(), id.to_string());
    db.read(move |conn| {
        let row = store::find(conn, &task, &id)?.ok_or(JobError::NotFound(id))?;
        Ok(JobDoc::from(&row))
    })
    .await
}

/// Checks that a job of `task` is done before its results are read.
pub async fn done(db: &Db, task: &str, id: &str) -> Result<(), JobError> {
    let (task, id) = (task.to_string(), id.to_string());
    let row = db
        .read(move |conn| store::find(conn, &task, &id)?.ok_or(JobError::NotFound(id)))
        .await?;
    match row.state {
        JobState::Done => Ok(()),
        state => Err(JobError::NotDone {
            id: row.id,
            state: state.as_str(),
        }),
    }
}

/// The next result chunks of a job after chunk `after` (JSONL bytes),
/// up to `limit` of them; empty at the end.
pub async fn results_after(
    db: &Db,
    id: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Vec<u8>)>, JobError> {
    let id = id.to_string();
    db.read(move |conn| Ok(store::results(conn, &id, after, limit)?))
        .await
}

/// What a pass of the runner did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// The job it claimed, if any.
    pub job: Option<String>,
    /// Its state at the end of the pass (`running` when the lease was
    /// lost to another instance).
    pub state: Option<JobState>,
    /// Chunks it stored in this pass.
    pub chunks: u64,
}

/// The job runner: claims one due job at a time and scores it to the end.
pub struct JobRunner {
    db: Db,
    recorder: Arc<Recorder>,
    tasks: Arc<Registry>,
    settings: JobSettings,
    /// Whom this runner's leases name: random, one per runner.
    owner: String,
}

impl JobRunner {
    pub fn new(
        db: Db,
        recorder: Arc<Recorder>,
        tasks: Arc<Registry>,
        settings: JobSettings,
    ) -> Self {
        JobRunner {
            db,
            recorder,
            tasks,
            settings,
            owner: crate::crypto::random_token()[..16].to_string(),
        }
    }

    /// Runs passes until the runtime stops: at once again after a job,
    /// else after `jobs.poll_ms`.
    pub async fn run_until_stopped(self) {
        let poll = std::time::Duration::from_millis(self.settings.poll_ms);
        loop {
            match self.run_once().await {
                Ok(pass) if pass.job.is_some() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "batch job pass failed"),
            }
            tokio::time::sleep(poll).await;
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.lease_secs as i64)
    }

    /// One pass: claims the oldest due job (a queued one, or one whose
    /// instance stopped renewing its lease) and scores it to its end.
    #[tracing::instrument(name = "job_runner", skip_all)]
    pub async fn run_once(&self) -> Result<Pass, DbError> {
        let at = now();
        if !self
            .db
            .read(move |conn| Ok::<_, DbError>(store::any_due(conn, at)?))
            .await?
        {
            return Ok(Pass::default());
        }
        let (owner, lease) = (self.owner.clone(), self.lease());
        let claimed = self
            .db
            .write(move |conn| Ok::<_, DbError>(store::claim(conn, &owner, now(), lease)?))
            .await?;
        let Some(job) = claimed else {
            return Ok(Pass::default());
        };
        tracing::info!(job = %job.id, task = %job.task, attempt = job.attempts, resume_at_chunk = job.counts.chunks_done, "batch job claimed");
        let mut pass = Pass {
            job: Some(job.id.clone()),
            ..Pass::default()
        };
        let state = self.score(&job, &mut pass).await?;
        pass.state = Some(state);
        Ok(pass)
    }

    async fn score(&self, job: &JobRow, pass: &mut Pass) -> Result<JobState, DbError> {
        let tally = Tally {
            rows_read: job.counts.rows_read as u64,
            scored: job.counts.scored as u64,
            created: job.counts.created as u64,
            automated: job.counts.automated as u64,
            queued: job.counts.queued as u64,
            refused: 0,
        };
        let Some(task) = self.tasks.get(&job.task).cloned() else {
            let message = format!(
                "no task named {:?} in this instance's configuration",
                job.task
            );
            return self
                .fail(
                    job,
                    tally,
                    job.counts.chunks_done,
                    None,
                    "unknown_task",
                    "",
                    &message,
                )
                .await;
        };
        let id = job.id.clone();
        let input = self
            .db
            .read(move |conn| Ok::<_, DbError>(store::input(conn, &id)?))
            .await?;
        let format = Format::parse(&job.format).unwrap_or(Format::Csv);
        let mut reader = match FileReader::open(Cursor::new(input), format, "id") {
            Ok(reader) => reader,
            Err(e) => {
                return self
                    .fail(
                        job,
                        tally,
                        0,
                        Some(e.line as i64),
                        e.code,
                        &e.field,
                        &e.message,
                    )
                    .await
            }
        };
        // Resume after the chunks already stored.
        let skip = job.counts.chunks_done as u64 * job.chunk_rows as u64;
        if let Err(e) = reader.skip(skip) {
            return self
                .fail(
                    job,
                    tally,
                    job.counts.chunks_done,
                    Some(e.line as i64),
                    e.code,
                    &e.field,
                    &e.message,
                )
                .await;
        }
        let mut run = Run::new(
            self.db.clone(),
            self.recorder.clone(),
            task,
            reader,
            job.chunk_rows as usize,
        )
        .resume_at(job.counts.chunks_done as u64, tally);
        let mut chunks_done = job.counts.chunks_done;
        loop {
            match run.next().await {
                Ok(Some(scored)) => {
                    let mut body = Vec::with_capacity(scored.outcomes.len() * 512);
                    scored.jsonl(&mut body);
                    chunks_done = scored.index as i64 + 1;
                    let counts = counts(&run.tally, chunks_done);
                    let (id, owner, lease_until) =
                        (job.id.clone(), self.owner.clone(), now() + self.lease());
                    let chunk = scored.index as i64;
                    let held = self
                        .db
                        .write(move |conn| {
                            Ok::<_, DbError>(store::record_chunk(
                                conn,
                                &id,
                                &owner,
                                chunk,
                                &body,
                                &counts,
                                lease_until,
                            )?)
                        })
                        .await?;
                    if !held {
                        tracing::warn!(job = %job.id, "batch job lease lost; another instance goes on");
                        return Ok(JobState::Running);
                    }
                    pass.chunks += 1;
                }
                Ok(None) => {
                    let counts = counts(&run.tally, chunks_done);
                    let (id, owner) = (job.id.clone(), self.owner.clone());
                    let held = self
                        .db
                        .write(move |conn| {
                            Ok::<_, DbError>(store::finish(
                                conn,
                                &id,
                                &owner,
                                &counts,
                                None,
                                now(),
                            )?)
                        })
                        .await?;
                    tracing::info!(job = %job.id, scored = run.tally.scored, held, "batch job done");
                    return Ok(if held {
                        JobState::Done
                    } else {
                        JobState::Running
                    });
                }
                Err(BatchError::Row(e)) => {
                    return self
                        .fail(
                            job,
                            run.tally,
                            chunks_done,
                            Some(e.line as i64),
                            e.code,
                            &e.field,
                            &e.message,
                        )
                        .await
                }
                // The database or the reader thread: the lease runs out and
                // a later claim tries again.
                Err(BatchError::Database(e)) => return Err(e),
                Err(BatchError::Reader(e)) => return Err(DbError::Closed(e)),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        job: &JobRow,
        tally: Tally,
        chunks_done: i64,
        line: Option<i64>,
        code: &str,
        field: &str,
        message: &str,
    ) -> Result<JobState, DbError> {
        let counts = counts(&tally, chunks_done);
        let (id, owner) = (job.id.clone(), self.owner.clone());
        let (code, field, message) = (code.to_string(), field.to_string(), message.to_string());
        tracing::info!(job = %job.id, ?line, %code, %message, "batch job failed");
        self.db
            .write(move |conn| {
                let failure = Failure {
                    line,
                    code: &code,
                    field: &field,
                    message: &message,
                };
                Ok::<_, DbError>(store::finish(
                    conn,
                    &id,
                    &owner,
                    &counts,
                    Some(&failure),
                    now(),
                )?)
            })
            .await?;
        Ok(JobState::Failed)
    }
}

fn counts(t: &Tally, chunks_done: i64) -> Counts {
    Counts {
        chunks_done,
        rows_read: t.rows_read as i64,
        scored: t.scored as i64,
        created: t.created as i64,
        automated: t.automated as i64,
        queued: t.queued as i64,
        refused: t.refused as i64,
    }
}
