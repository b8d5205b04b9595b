//! What the scoring path counts, kept in memory: per task, model version and
//! minute until the flusher adds it to the database, and since start for
//! `/metrics`. Recording takes one short lock and allocates only for the
//! first item of a task, version and minute.

use std::sync::Mutex;

use crate::domain::MetricSeries;
use crate::store::metrics::{MetricRow, BUCKETS};

use super::histogram::{Histogram, CONFIDENCE_BOUNDS, LATENCY_BOUNDS};

/// Where an item went; each item has exactly one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The model's label is the verdict.
    Automated,
    /// A human decides.
    Queued,
    /// The model failed (error, non-finite output, no model): queued.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Automated, Outcome::Queued, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Automated => "automated",
            Outcome::Queued => "queued",
            Outcome::Failed => "failed",
        }
    }
}

/// Marks an item may carry besides its outcome.
pub const FLAGS: [&str; 2] = ["audited", "out_of_distribution"];

/// The stages of the scoring path, timed per item.
pub const STAGES: [&str; 5] = ["featurise", "model", "policy", "store", "total"];

/// One scored item, as the recorder sees it.
#[derive(Debug, Clone, Copy)]
pub struct ItemSeen<'a> {
    pub outcome: Outcome,
    pub audited: bool,
    pub out_of_distribution: bool,
    pub label: Option<&'a str>,
    pub confidence: Option<f64>,
}

/// Seconds each item of a request spent in each stage, in [`STAGES`]
/// order: featurising and the policy are per item; the forward pass, the
/// commit and the total are the request's, which every item in it waited
/// for.
pub type StageSeconds = [f64; 5];

/// The counts of one task and model version over some time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// By [`Outcome::ALL`].
    pub items: [u64; 3],
    /// By [`FLAGS`].
    pub flags: [u64; 2],
    /// By [`STAGES`], over [`LATENCY_BOUNDS`].
    pub stages: [Histogram; 5],
    /// Predicted labels.
    pub labels: Vec<(String, u64)>,
    /// Over [`CONFIDENCE_BOUNDS`].
    pub confidence: Histogram,
    /// Refused requests by error code.
    pub rejected: Vec<(String, u64)>,
}

fn bump(list: &mut Vec<(String, u64)>, name: &str, by: u64) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some((_, count)) => *count += by,
        None => list.push((name.to_string(), by)),
    }
}

impl Counts {
    fn see(&mut self, items: &[ItemSeen<'_>], stages: &StageSeconds) {
        for item in items {
            self.items[item.outcome as usize] += 1;
            self.flags[0] += u64::from(item.audited);
            self.flags[1] += u64::from(item.out_of_distribution);
            if let Some(label) = item.label {
                bump(&mut self.labels, label, 1);
            }
            if let Some(c) = item.confidence {
                self.confidence.observe(&CONFIDENCE_BOUNDS, c, 1);
            }
        }
        let n = items.len() as u64;
        for (h, &seconds) in self.stages.iter_mut().zip(stages) {
            h.observe(&LATENCY_BOUNDS, seconds, n);
        }
    }

    /// The store's rows of these counts (zero rows left out).
    fn rows(&self, task: &str, version: &str, minute: i64) -> Vec<MetricRow> {
        let row = |series, name: &str, count: u64, h: Option<&Histogram>| MetricRow {
            task: task.to_string(),
            minute,
            series,
            name: name.to_string(),
            model_version: version.to_string(),
            count: count as i64,
            total: h.map_or(0.0, |h| h.sum),
            buckets: h.map_or([0; BUCKETS], |h| h.buckets.map(|b| b as i64)),
        };
        let mut rows = Vec::new();
        for (outcome, &n) in Outcome::ALL.iter().zip(&self.items) {
            rows.push(row(MetricSeries::Items, outcome.as_str(), n, None));
        }
        for (flag, &n) in FLAGS.iter().zip(&self.flags) {
            rows.push(row(MetricSeries::Flags, flag, n, None));
        }
        for (stage, h) in STAGES.iter().zip(&self.stages) {
            rows.push(row(MetricSeries::Stage, stage, h.count, Some(h)));
        }
        for (label, n) in &self.labels {
            rows.push(row(MetricSeries::Label, label, *n, None));
        }
        let c = &self.confidence;
        rows.push(row(MetricSeries::Confidence, "", c.count, Some(c)));
        for (code, n) in &self.rejected {
            rows.push(row(MetricSeries::Rejected, code, *n, None));
        }
        rows.retain(|r| r.count > 0);
        rows
    }

    /// Adds a row back (a flush that failed).
    fn add_row(&mut self, row: &MetricRow) {
        let n = row.count.max(0) as u64;
        let histogram = || Histogram {
            count: n,
            sum: row.total,
            buckets: row.buckets.map(|b| b.max(0) as u64),
        };
        let position = |names: &[&str]| names.iter().position(|s| *s == row.name);
        match row.series {
            MetricSeries::Items => {
                if let Some(i) = Outcome::ALL.iter().position(|o| o.as_str() == row.name) {
                    self.items[i] += n;
                }
            }
            MetricSeries::Flags => {
                if let Some(i) = position(&FLAGS) {
                    self.flags[i] += n;
                }
            }
            MetricSeries::Stage => {
                if let Some(i) = position(&STAGES) {
                    self.stages[i].merge(&histogram());
                }
            }
            MetricSeries::Label => bump(&mut self.labels, &row.name, n),
            MetricSeries::Confidence => self.confidence.merge(&histogram()),
            MetricSeries::Rejected => bump(&mut self.rejected, &row.name, n),
            // Counted by the review path in its own transaction, never
            // through the recorder.
            MetricSeries::Agreement => {}
        }
    }
}

/// The counts of one task, model version and minute (minute 0 for the
/// totals since start).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub task: String,
    /// `""` when no model ran.
    pub model_version: String,
    pub minute: i64,
    pub counts: Counts,
}

fn entry<'e>(
    entries: &'e mut Vec<Entry>,
    task: &str,
    version: &str,
    minute: i64,
) -> &'e mut Counts {
    let at = entries
        .iter()
        .position(|e| e.minute == minute && e.task == task && e.model_version == version);
    let i = at.unwrap_or_else(|| {
        entries.push(Entry {
            task: task.to_string(),
            model_version: version.to_string(),
            minute,
            counts: Counts::default(),
        });
        entries.len() - 1
    });
    &mut entries[i].counts
}

/// The scoring path's counts: pending ones for the database, and totals
/// since start for `/metrics`.
#[derive(Debug)]
pub struct Recorder {
    enabled: bool,
    pending: Mutex<Vec<Entry>>,
    totals: Mutex<Vec<Entry>>,
}

impl Recorder {
    /// A recorder; when not `enabled` it records nothing.
    pub fn new(enabled: bool) -> Recorder {
        Recorder {
            enabled,
            pending: Mutex::new(Vec::new()),
            totals: Mutex::new(Vec::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Records one request's items, scored by `version` of `task`.
    pub fn scored(
        &self,
        task: &str,
        version: Option<&str>,
        items: &[ItemSeen<'_>],
        stages: &StageSeconds,
    ) {
        if !self.enabled || items.is_empty() {
            return;
        }
        let version = version.unwrap_or("");
        let minute = current_minute();
        entry(
            &mut self.pending.lock().expect("recorder lock"),
            task,
            version,
            minute,
        )
        .see(items, stages);
        entry(
            &mut self.totals.lock().expect("recorder lock"),
            task,
            version,
            0,
        )
        .see(items, stages);
    }

    /// Records a refused request (its error code).
    pub fn rejected(&self, task: &str, code: &str) {
        if !self.enabled {
            return;
        }
        let minute = current_minute();
        bump(
            &mut entry(
                &mut self.pending.lock().expect("recorder lock"),
                task,
                "",
                minute,
            )
            .rejected,
            code,
            1,
        );
        bump(
            &mut entry(&mut self.totals.lock().expect("recorder lock"), task, "", 0).rejected,
            code,
            1,
        );
    }

    /// Takes what is pending, as the store's rows.
    pub fn take(&self) -> Vec<MetricRow> {
        let entries = std::mem::take(&mut *self.pending.lock().expect("recorder lock"));
        entries
            .iter()
            .flat_map(|e| e.counts.rows(&e.task, &e.model_version, e.minute))
            .collect()
    }

    /// Puts rows back that could not be stored, to go with the next flush.
    pub fn restore(&self, rows: &[MetricRow]) {
        let mut pending = self.pending.lock().expect("recorder lock");
        for row in rows {
            entry(&mut pending, &row.task, &row.model_version, row.minute).add_row(row);
        }
    }

    /// The totals since start, per task and model version.
    pub fn totals(&self) -> Vec<Entry> {
        self.totals.lock().expect("recorder lock").clone()
    }
}

/// Minutes since the Unix epoch, now.
pub fn current_minute() -> i64 {
    crate::domain::now().and_utc().timestamp().div_euclid(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(outcome: Outcome, label: &str, confidence: f64) -> ItemSeen<'_> {
        ItemSeen {
            outcome,
            audited: false,
            out_of_distribution: false,
            label: Some(label),
            confidence: Some(confidence),
        }
    }

    #[test]
    fn taken_rows_count_every_item_once_and_restore_puts_them_back() {
        let r = Recorder::new(true);
        let stages = [1e-5, 2e-5, 1e-6, 1e-3, 2e-3];
        r.scored(
            "t",
            Some("v1"),
            &[
                item(Outcome::Automated, "a", 0.99),
                item(Outcome::Queued, "b", 0.6),
            ],
            &stages,
        );
        r.rejected("t", "wrong_type");
        let rows = r.take();
        let count = |series, name: &str| {
            rows.iter()
                .filter(|x| x.series == series && x.name == name)
                .map(|x| x.count)
                .sum::<i64>()
        };
        assert_eq!(count(MetricSeries::Items, "automated"), 1);
        assert_eq!(count(MetricSeries::Items, "queued"), 1);
        assert_eq!(count(MetricSeries::Stage, "store"), 2);
        assert_eq!(count(MetricSeries::Label, "b"), 1);
        assert_eq!(count(MetricSeries::Confidence, ""), 2);
        assert_eq!(count(MetricSeries::Rejected, "wrong_type"), 1);
        assert!(r.take().is_empty(), "taking empties the pending counts");
        r.restore(&rows);
        let mut again = r.take();
        let mut first = rows.clone();
        let key = |x: &MetricRow| {
            (
                x.task.clone(),
                x.minute,
                x.series.as_str(),
                x.name.clone(),
                x.model_version.clone(),
            )
        };
        again.sort_by_key(key);
        first.sort_by_key(key);
        assert_eq!(again, first);
        // The totals since start keep everything.
        let totals = r.totals();
        assert_eq!(
            totals
                .iter()
                .map(|e| e.counts.items.iter().sum::<u64>())
                .sum::<u64>(),
            2
        );
    }

    #[test]
    fn a_disabled_recorder_records_nothing() {
        let r = Recorder::new(false);
        r.scored("t", None, &[item(Outcome::Failed, "a", 0.5)], &[0.0; 5]);
        assert!(r.take().is_empty());
        assert!(r.totals().is_empty());
    }
}
