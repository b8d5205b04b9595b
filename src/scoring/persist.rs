//! Storing scored items: new ids inserted, a known id with the same input
//! answered with its stored result, a known id with another input a
//! conflict that writes nothing of its request.
//!
//! Requests are written in groups: on SQLite the writer thread already
//! commits concurrent requests together (each here a group of one); on
//! PostgreSQL a [`Grouper`] gathers concurrent requests and
//! [`persist_group`] writes them in one transaction — one id lookup and one
//! multi-row insert per table for the whole group — answering each only
//! after the commit.

use std::collections::{BTreeMap, HashMap};

use crate::db::{Db, DbConnection, GroupSettings, Grouper};
use crate::items::{self, ItemDoc};
use crate::store::items::{self as store, ItemRow, PredictionRow, ShadowRow, VerdictRow};

use super::{Outcome, ScoringError};

/// One item's rows: the item, the acting version's prediction, the
/// automated verdict and the prediction kept aside (shadow/canary).
pub(super) type Rows = Vec<(
    ItemRow,
    Option<PredictionRow>,
    Option<VerdictRow>,
    Option<ShadowRow>,
)>;

/// One request's items, to be stored.
pub(super) struct Job {
    pub task: String,
    pub rows: Rows,
    /// Conflicts name `items[i].id` rather than `id`.
    pub batch: bool,
}

type Stored = Result<Vec<Outcome>, ScoringError>;

/// Requests with fewer items than this are grouped; larger ones are
/// written in their own transaction, in parallel with the groups.
const GROUP_BELOW: usize = 16;

/// Where scored items are written: the database's own write path, or on
/// PostgreSQL a group writer for the API's concurrent requests.
#[derive(Clone)]
pub struct ScoreStore {
    db: Db,
    group: Option<Grouper<Job, Stored>>,
}

impl ScoreStore {
    /// Each request through [`Db::write`] (SQLite's writer already groups
    /// them; on PostgreSQL one transaction each: for batch files, whose
    /// chunks are large).
    pub fn direct(db: &Db) -> ScoreStore {
        ScoreStore {
            db: db.clone(),
            group: None,
        }
    }

    /// For the API: on PostgreSQL, concurrent requests are written together
    /// (`threads` writers taking turns, at most `max_jobs` requests each).
    pub fn grouped(db: &Db, settings: GroupSettings) -> Result<ScoreStore, String> {
        if db.backend().is_sqlite() {
            return Ok(ScoreStore::direct(db));
        }
        let group = db.grouper("verdict-scoring-writer", settings, persist_group)?;
        Ok(ScoreStore {
            db: db.clone(),
            group: Some(group),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub(super) async fn persist(&self, job: Job) -> Stored {
        match &self.group {
            // A large request is its own group: grouped, it would leave the
            // database's other cores idle while it waits its turn.
            Some(group) if job.rows.len() < GROUP_BELOW => group.submit(job).await?,
            // The documents are built after the commit, off the writer.
            _ => {
                let (jobs, answers) = self
                    .db
                    .write(move |conn| {
                        let jobs = [job];
                        let mut answers = write_together(conn, &jobs)?;
                        let answer = answers.pop().expect("one answer per job")?;
                        Ok::<_, ScoringError>((jobs, answer))
                    })
                    .await?;
                Ok(outcomes(&jobs, answers))
            }
        }
    }
}

/// A group's jobs in one transaction; when that transaction fails (say
/// another instance inserted one of its ids first) each job is retried in
/// its own, so one job's failure never spoils another's.
fn persist_group(conn: &mut DbConnection, jobs: Vec<Job>) -> Vec<Stored> {
    use diesel::Connection;
    if jobs.len() > 1 {
        match conn.transaction(|conn| write_together(conn, &jobs)) {
            Ok(answers) => {
                return answers
                    .into_iter()
                    .map(|a| a.map(|a| outcomes(&jobs, a)))
                    .collect()
            }
            Err(e) => tracing::warn!(
                error = %e,
                jobs = jobs.len(),
                "a group of scoring writes failed; writing each alone"
            ),
        }
    }
    jobs.iter()
        .map(|job| {
            let job = std::slice::from_ref(job);
            let answers = conn.transaction(|conn| write_together(conn, job)?.remove(0))?;
            Ok(outcomes(job, answers))
        })
        .collect()
}

/// What one submitted item gets, as planned in its transaction.
pub(super) enum Answer {
    /// The rows of `jobs[job].rows[row]`: inserted now (`created`) or by an
    /// earlier job of the group with the same input.
    Rows {
        job: usize,
        row: usize,
        created: bool,
    },
    /// Stored before, loaded in the transaction.
    Loaded(Box<ItemDoc>),
}

/// The documents of a job's answers, from the group's rows: built after
/// the commit, outside the writer.
fn outcomes(jobs: &[Job], answers: Vec<Answer>) -> Vec<Outcome> {
    answers
        .into_iter()
        .map(|answer| match answer {
            Answer::Rows { job, row, created } => {
                let (item, prediction, verdict, _) = &jobs[job].rows[row];
                Outcome {
                    doc: ItemDoc::build(item, prediction.as_ref(), verdict.as_ref()),
                    created,
                }
            }
            Answer::Loaded(doc) => Outcome {
                doc: *doc,
                created: false,
            },
        })
        .collect()
}

/// Where one submitted item's result comes from.
#[derive(Clone, Copy)]
enum Slot {
    /// Inserted now: (job, row).
    New(usize, usize),
    /// Stored before this group: its index among the stored rows to load.
    Stored(usize),
    /// Submitted earlier in this group with the same input: (job, row),
    /// not created by this submission.
    SameAsNew(usize, usize),
}

/// Writes `jobs` inside the caller's transaction. The outer error fails
/// the whole transaction (a database error); an inner one is a job's
/// conflict, for which nothing of that job is written.
fn write_together(
    conn: &mut DbConnection,
    jobs: &[Job],
) -> Result<Vec<Result<Vec<Answer>, ScoringError>>, ScoringError> {
    // One lookup per task for every id in the group.
    let mut ids_by_task: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for job in jobs {
        let ids = ids_by_task.entry(job.task.as_str()).or_default();
        ids.extend(job.rows.iter().map(|(item, _, _, _)| item.id.as_str()));
    }
    let mut stored: HashMap<&str, HashMap<String, ItemRow>> = HashMap::new();
    for (task, ids) in &mut ids_by_task {
        ids.sort_unstable();
        ids.dedup();
        stored.insert(task, store::find_items(conn, task, ids)?);
    }

    // Plan each job against what is stored and what earlier jobs add.
    let mut added: HashMap<(&str, &str), (usize, usize)> = HashMap::new();
    let mut plans: Vec<Result<Vec<Slot>, ScoringError>> = Vec::with_capacity(jobs.len());
    let mut to_load: Vec<ItemRow> = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let conflict = |i: usize, id: &str| ScoringError::Conflict {
            field: if job.batch {
                format!("items[{i}].id")
            } else {
                "id".into()
            },
            message: format!("item {id:?} was submitted before with a different input"),
        };
        let mut mine: HashMap<&str, usize> = HashMap::new();
        let mut slots = Vec::with_capacity(job.rows.len());
        let mut loads = Vec::new();
        let mut failed = None;
        for (i, (item, _, _, _)) in job.rows.iter().enumerate() {
            let key = (job.task.as_str(), item.id.as_str());
            let known = stored.get(key.0).and_then(|rows| rows.get(key.1));
            let (sha, slot) = if let Some(prev) = known {
                loads.push(prev.clone());
                (
                    &prev.input_sha256,
                    Slot::Stored(to_load.len() + loads.len() - 1),
                )
            } else if let Some(&(pj, pi)) = added.get(&key) {
                (&jobs[pj].rows[pi].0.input_sha256, Slot::SameAsNew(pj, pi))
            } else if let Some(&pi) = mine.get(key.1) {
                (&job.rows[pi].0.input_sha256, Slot::SameAsNew(j, pi))
            } else {
                mine.insert(key.1, i);
                (&item.input_sha256, Slot::New(j, i))
            };
            if *sha != item.input_sha256 {
                failed = Some(conflict(i, &item.id));
                break;
            }
            slots.push(slot);
        }
        match failed {
            Some(e) => plans.push(Err(e)),
            None => {
                added.extend(
                    mine.into_iter()
                        .map(|(id, i)| ((job.task.as_str(), id), (j, i))),
                );
                to_load.extend(loads);
                plans.push(Ok(slots));
            }
        }
    }

    // Insert every new row of the group, one statement per table (chunked).
    let mut item_rows = Vec::new();
    let mut prediction_rows = Vec::new();
    let mut verdict_rows = Vec::new();
    let mut shadow_rows = Vec::new();
    for slot in plans.iter().flatten().flatten() {
        if let Slot::New(j, i) = *slot {
            let (item, prediction, verdict, shadow) = &jobs[j].rows[i];
            item_rows.push(item);
            prediction_rows.extend(prediction);
            verdict_rows.extend(verdict);
            shadow_rows.extend(shadow);
        }
    }
    store::insert_all(conn, &item_rows, &prediction_rows, &verdict_rows)?;
    store::insert_shadow(conn, &shadow_rows)?;

    // The stored results of known ids, one load per task.
    let mut by_task: BTreeMap<&str, Vec<ItemRow>> = BTreeMap::new();
    for row in &to_load {
        by_task
            .entry(row.task.as_str())
            .or_default()
            .push(row.clone());
    }
    let mut docs: HashMap<&str, HashMap<String, ItemDoc>> = HashMap::new();
    for (task, rows) in &by_task {
        let loaded = items::docs_for(conn, rows)?;
        docs.insert(
            task,
            loaded.into_iter().map(|d| (d.id.clone(), d)).collect(),
        );
    }

    Ok(plans
        .into_iter()
        .map(|plan| {
            Ok(plan?
                .into_iter()
                .map(|slot| match slot {
                    Slot::New(job, row) => Answer::Rows {
                        job,
                        row,
                        created: true,
                    },
                    Slot::SameAsNew(job, row) => Answer::Rows {
                        job,
                        row,
                        created: false,
                    },
                    Slot::Stored(k) => {
                        let row = &to_load[k];
                        Answer::Loaded(Box::new(
                            docs.get(row.task.as_str())
                                .and_then(|d| d.get(&row.id))
                                .cloned()
                                .expect("stored item has a document"),
                        ))
                    }
                })
                .collect())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{now, ItemStatus, ReviewState};

    fn open() -> (tempfile::TempDir, DbConnection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = crate::config::DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join("v.db").display()),
            ..Default::default()
        };
        let mut conn = crate::db::establish(&settings).expect("open");
        crate::db::run_migrations(&mut conn).expect("migrate");
        (dir, conn)
    }

    fn item(
        id: &str,
        input: &str,
    ) -> (
        ItemRow,
        Option<PredictionRow>,
        Option<VerdictRow>,
        Option<ShadowRow>,
    ) {
        let row = ItemRow {
            task: "t".into(),
            id: id.into(),
            input: input.into(),
            input_sha256: format!("sha-{input}"),
            status: ItemStatus::Queued,
            reason: None,
            review_state: ReviewState::Pending,
            blind: false,
            audit: false,
            model_version: None,
            margin: None,
            sla_deadline: None,
            created_at: now(),
            decided_at: None,
            out_of_range: None,
        };
        (row, None, None, None)
    }

    fn job(rows: &[(&str, &str)], batch: bool) -> Job {
        Job {
            task: "t".into(),
            rows: rows.iter().map(|(id, input)| item(id, input)).collect(),
            batch,
        }
    }

    fn written(jobs: &[Job], answers: Vec<Result<Vec<Answer>, ScoringError>>) -> Vec<Stored> {
        answers
            .into_iter()
            .map(|a| a.map(|a| outcomes(jobs, a)))
            .collect()
    }

    /// What each job of a group gets: `created` per item, or the conflict's field.
    fn answers(results: Vec<Stored>) -> Vec<Result<Vec<(String, bool)>, String>> {
        results
            .into_iter()
            .map(|r| match r {
                Ok(outcomes) => Ok(outcomes
                    .into_iter()
                    .map(|o| (o.doc.id.clone(), o.created))
                    .collect()),
                Err(ScoringError::Conflict { field, .. }) => Err(field),
                Err(e) => panic!("unexpected error {e}"),
            })
            .collect()
    }

    /// A group answers each job as if the jobs had been written one after
    /// the other in arrival order: an id first seen in an earlier job (or
    /// stored before) is not created again, a different input for it is
    /// that job's conflict alone, and nothing of a conflicting job is
    /// written.
    #[test]
    fn a_group_answers_each_job_as_if_written_in_turn() {
        let (_dir, mut conn) = open();
        let first = [job(&[("old", "a")], false)];
        let before = written(&first, write_together(&mut conn, &first).expect("first"));
        assert_eq!(answers(before), vec![Ok(vec![("old".to_string(), true)])]);

        let jobs = vec![
            job(&[("x", "a")], false),
            job(&[("x", "a")], false),
            job(&[("y", "a"), ("x", "b")], true),
            job(&[("old", "a"), ("z", "a"), ("z", "a")], true),
            job(&[("old", "zzz")], false),
            job(&[("y", "a")], false),
        ];
        let got = answers(written(
            &jobs,
            write_together(&mut conn, &jobs).expect("group"),
        ));
        let s = |id: &str, created: bool| (id.to_string(), created);
        assert_eq!(
            got,
            vec![
                Ok(vec![s("x", true)]),
                Ok(vec![s("x", false)]),
                Err("items[1].id".to_string()),
                Ok(vec![s("old", false), s("z", true), s("z", false)]),
                Err("id".to_string()),
                // y of the refused job was not written: created here.
                Ok(vec![s("y", true)]),
            ]
        );
        let mut ids: Vec<String> = store::find_items(&mut conn, "t", &["old", "x", "y", "z", "q"])
            .expect("find")
            .into_keys()
            .collect();
        ids.sort();
        assert_eq!(ids, ["old", "x", "y", "z"]);
    }

    /// A group whose transaction fails (here one job carries a prediction
    /// that clashes with a stored one's primary key) is retried job by
    /// job: the others are written, the failing one alone is refused.
    #[test]
    fn a_failed_group_is_retried_job_by_job() {
        let (_dir, mut conn) = open();
        let prediction = |item_id: &str| PredictionRow {
            task: "t".into(),
            item_id: item_id.into(),
            model_version: "m".into(),
            label: None,
            confidence: None,
            probabilities: None,
            error: Some("x".into()),
            featurise_us: 0,
            forward_us: 0,
            policy_us: 0,
            created_at: now(),
        };
        let mut stored = job(&[("p", "1")], false);
        stored.rows[0].1 = Some(prediction("p"));
        write_together(&mut conn, &[stored]).expect("stored");

        let mut broken = job(&[("b", "1")], false);
        broken.rows[0].1 = Some(prediction("p"));
        let jobs = vec![job(&[("a", "1")], false), broken, job(&[("c", "1")], false)];
        let got = persist_group(&mut conn, jobs);
        assert!(
            matches!(&got[1], Err(ScoringError::Database(_))),
            "{:?}",
            got[1].as_ref().err()
        );
        let created: Vec<bool> = [&got[0], &got[2]]
            .iter()
            .map(|r| r.as_ref().expect("written")[0].created)
            .collect();
        assert_eq!(created, [true, true]);
        let found = store::find_items(&mut conn, "t", &["a", "b", "c"]).expect("find");
        let mut ids: Vec<&String> = found.keys().collect();
        ids.sort();
        assert_eq!(ids, ["a", "c"]);
    }
}
