//! Filling in a [`TaskReport`] and the [`Overview`]: software and output
//! figures from the metrics store over the range, the queue and alerts from
//! their tables, and the drift monitor's latest evaluation.

use std::collections::BTreeMap;

use crate::db::{DbConnection, DbError};
use crate::domain::{now, rfc3339, AutomationLevel, MetricSeries, Timestamp};
use crate::ml::LoadedModel;
use crate::store::alerts as alerts_store;
use crate::store::metrics::{self as metrics_store, Summed, BUCKETS};

use super::drift::monitor::{EvaluationSummary, MonitorState};
use super::histogram::{Histogram, CONFIDENCE_BOUNDS, LATENCY_BOUNDS};
use super::recorder::STAGES;
use super::report::*;
use crate::store::monitoring as monitoring_store;

/// Most evaluations a report reads.
const EVALUATIONS_READ: i64 = 20_000;

/// The ranges the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Span {
    #[default]
    Hour,
    Day,
    Week,
}

impl Span {
    pub const ALL: [Span; 3] = [Span::Hour, Span::Day, Span::Week];

    pub fn as_str(self) -> &'static str {
        match self {
            Span::Hour => "hour",
            Span::Day => "day",
            Span::Week => "week",
        }
    }

    pub fn parse(s: &str) -> Option<Span> {
        Span::ALL.into_iter().find(|r| r.as_str() == s)
    }

    fn minutes(self) -> i64 {
        match self {
            Span::Hour => 60,
            Span::Day => 24 * 60,
            Span::Week => 7 * 24 * 60,
        }
    }

    /// The range that ends now.
    pub fn ending_now(self) -> Range {
        let until = now();
        Range::new(until - chrono::Duration::minutes(self.minutes()), until)
    }
}

/// A time range and the width of its chart slots (about 60–100 slots).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub since: Timestamp,
    pub until: Timestamp,
    pub slot_minutes: i64,
}

/// Slot widths to choose from, in minutes.
const SLOT_WIDTHS: [i64; 10] = [1, 2, 5, 10, 15, 30, 60, 120, 360, 1440];

impl Range {
    /// `since..until` with a slot width that gives at most 100 slots.
    pub fn new(since: Timestamp, until: Timestamp) -> Range {
        let minutes = ((until - since).num_minutes()).max(1);
        let slot_minutes = SLOT_WIDTHS
            .into_iter()
            .find(|w| minutes / w <= 100)
            .unwrap_or(1440);
        Range {
            since,
            until,
            slot_minutes,
        }
    }

    /// Minutes since the epoch of the first minute in the range, and of
    /// the first after it: a minute counts when it started in the range.
    fn minutes(&self) -> (i64, i64) {
        let from = self.since.and_utc().timestamp().div_euclid(60);
        let to = self.until.and_utc().timestamp().div_euclid(60) + 1;
        (from, to)
    }

    /// The slots' first minutes.
    fn slots(&self) -> Vec<i64> {
        let (from, to) = self.minutes();
        let origin = metrics_store::slot_origin(from, self.slot_minutes);
        (origin..to).step_by(self.slot_minutes as usize).collect()
    }
}

fn minute_time(minute: i64) -> String {
    chrono::DateTime::from_timestamp(minute * 60, 0)
        .map(|t| rfc3339(&t.naive_utc()))
        .unwrap_or_default()
}

/// The task a report is about, as the service runs it.
pub struct TaskView<'a> {
    pub task: &'a str,
    pub level: AutomationLevel,
    pub threshold: Option<f64>,
    pub model: Option<&'a LoadedModel>,
}

fn histogram_of(s: &Summed) -> Histogram {
    Histogram {
        count: s.count.max(0) as u64,
        sum: s.total,
        buckets: s.buckets.map(|b| b.max(0) as u64),
    }
}

fn ms(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| s * 1000.0)
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl From<crate::store::alerts::Alert> for AlertLine {
    fn from(a: crate::store::alerts::Alert) -> Self {
        AlertLine {
            id: a.id,
            kind: a.kind.as_str().to_string(),
            subject: a.subject,
            severity: a.severity.as_str().to_string(),
            summary: a.summary,
            fired_at: rfc3339(&a.fired_at),
            resolved_at: a.resolved_at.as_ref().map(rfc3339),
        }
    }
}

/// [`task_report`] of a task as it runs now (its live model).
pub fn report_of(
    conn: &mut DbConnection,
    task: &crate::tasks::TaskRuntime,
    range: &Range,
) -> Result<TaskReport, DbError> {
    let model = task.live();
    let view = TaskView {
        task: task.name(),
        level: task.config.automation,
        threshold: task.config.threshold,
        model: model.as_deref(),
    };
    task_report(conn, &view, range)
}

/// Reads the task's figures over `range`.
pub fn task_report(
    conn: &mut DbConnection,
    view: &TaskView<'_>,
    range: &Range,
) -> Result<TaskReport, DbError> {
    let (from, to) = range.minutes();
    let whole = to - from;
    // One pass over the range's buckets, per slot; the range's totals are
    // the slots' sums.
    let all = metrics_store::sums_all(conn, view.task, from, to, range.slot_minutes)?;
    let of = |series: MetricSeries| -> Vec<Summed> {
        all.iter().filter(|s| s.series == series).cloned().collect()
    };
    let items_by_slot = of(MetricSeries::Items);
    let rejected_by_slot = of(MetricSeries::Rejected);
    let stages_by_slot = of(MetricSeries::Stage);
    let stages = &stages_by_slot;
    let labels = of(MetricSeries::Label);
    let confidence = of(MetricSeries::Confidence);

    let mut software = Software::default();
    let mut series: BTreeMap<i64, SoftwareSlot> = range
        .slots()
        .into_iter()
        .map(|m| {
            (
                m,
                SoftwareSlot {
                    start: minute_time(m),
                    ..Default::default()
                },
            )
        })
        .collect();
    for s in &items_by_slot {
        let n = s.count.max(0) as u64;
        let slot = series.entry(s.slot).or_default();
        match s.name.as_str() {
            "automated" => (slot.automated += n, software.automated += n),
            "queued" => (slot.queued += n, software.queued += n),
            "failed" => (slot.failed += n, software.failed += n),
            _ => ((), ()),
        };
    }
    for s in &rejected_by_slot {
        let n = s.count.max(0) as u64;
        series.entry(s.slot).or_default().rejected += n;
        software.rejected += n;
    }
    let mut total_by_slot: BTreeMap<i64, Histogram> = BTreeMap::new();
    for s in stages_by_slot.iter().filter(|s| s.name == "total") {
        total_by_slot
            .entry(s.slot)
            .or_default()
            .merge(&histogram_of(s));
    }
    for (slot, h) in &total_by_slot {
        if let Some(entry) = series.get_mut(slot) {
            entry.p50_ms = ms(h.quantile(&LATENCY_BOUNDS, 0.5));
            entry.p99_ms = ms(h.quantile(&LATENCY_BOUNDS, 0.99));
        }
    }
    software.series = series.into_values().collect();
    software.items = software.automated + software.queued + software.failed;
    software.items_per_minute = software.items as f64 / (whole.max(1) as f64);
    software.automated_share = share(software.automated, software.items);
    software.queued_share = share(software.queued, software.items);
    software.failed_share = share(software.failed, software.items);
    software.stages = STAGES
        .iter()
        .map(|stage| {
            let mut h = Histogram::default();
            for s in stages.iter().filter(|s| s.name == *stage) {
                h.merge(&histogram_of(s));
            }
            StageLatency {
                stage: stage.to_string(),
                count: h.count,
                p50_ms: ms(h.quantile(&LATENCY_BOUNDS, 0.5)),
                p95_ms: ms(h.quantile(&LATENCY_BOUNDS, 0.95)),
                p99_ms: ms(h.quantile(&LATENCY_BOUNDS, 0.99)),
            }
        })
        .collect();
    software.queue_depth = alerts_store::count_waiting(conn, view.task)?;
    let at = now();
    software.oldest_waiting_seconds = alerts_store::oldest_waiting(conn, view.task)?
        .map(|t| ((at - t).num_milliseconds() as f64 / 1000.0).max(0.0));
    software.process = process_figures();

    let state: Option<MonitorState> =
        monitoring_store::state(conn, view.task)?.and_then(|s| serde_json::from_str(&s).ok());
    let mut output = output(view, &labels, &confidence);
    output.window = state.as_ref().and_then(|s| s.output.clone());
    let concept = concept(&of(MetricSeries::Agreement), range, state.as_ref());
    let estimates = estimates(conn, view, range, state.as_ref(), &concept)?;
    let alerts = alerts_store::of_task_since(conn, view.task, range.since)?
        .into_iter()
        .map(AlertLine::from)
        .collect();
    Ok(TaskReport {
        task: view.task.to_string(),
        since: rfc3339(&range.since),
        until: rfc3339(&range.until),
        slot_minutes: range.slot_minutes,
        live_model_version: view.model.map(|m| m.version().to_string()),
        software,
        output,
        drift: state.map(|s| s.drift).unwrap_or_default(),
        concept,
        estimates,
        alerts,
    })
}

/// Model against humans over the range (accuracy, interval, per slot) from
/// the agreement buckets, with the detectors' state from the monitor.
fn concept(agreement: &[Summed], range: &Range, state: Option<&MonitorState>) -> Concept {
    let mut series: BTreeMap<i64, AgreementSlot> = range
        .slots()
        .into_iter()
        .map(|m| {
            (
                m,
                AgreementSlot {
                    start: minute_time(m),
                    ..Default::default()
                },
            )
        })
        .collect();
    let (mut blind, mut assisted) = ((0u64, 0u64), (0u64, 0u64));
    for s in agreement {
        let n = s.count.max(0) as u64;
        let entry = series.entry(s.slot).or_default();
        match s.name.as_str() {
            "blind_agreed" => {
                blind = (blind.0 + n, blind.1 + n);
                entry.blind_reviewed += n;
                entry.blind_agreed += n;
            }
            "blind_disagreed" => {
                blind.0 += n;
                entry.blind_reviewed += n;
            }
            "assisted_agreed" => {
                assisted = (assisted.0 + n, assisted.1 + n);
                entry.assisted_reviewed += n;
                entry.assisted_agreed += n;
            }
            "assisted_disagreed" => {
                assisted.0 += n;
                entry.assisted_reviewed += n;
            }
            _ => {}
        }
    }
    let agreement = |(n, k): (u64, u64), detector: Option<&Agreement>| Agreement {
        reviewed: n,
        agreed: k,
        accuracy: (n > 0).then(|| k as f64 / n as f64),
        interval: super::stats::wilson(k, n, 0.95),
        ..detector
            .cloned()
            .map(|d| Agreement {
                reviewed: 0,
                agreed: 0,
                accuracy: None,
                interval: None,
                ..d
            })
            .unwrap_or_default()
    };
    Concept {
        blind: agreement(blind, state.map(|s| &s.blind)),
        assisted: agreement(assisted, state.map(|s| &s.assisted)),
        series: series.into_values().collect(),
    }
}

/// The estimates: the monitor's latest and their history in the range,
/// beside the accuracy blind audits measured in the range.
fn estimates(
    conn: &mut DbConnection,
    view: &TaskView<'_>,
    range: &Range,
    state: Option<&MonitorState>,
    concept: &Concept,
) -> Result<Estimates, DbError> {
    let rows = monitoring_store::evaluations_between(
        conn,
        view.task,
        range.since,
        range.until,
        EVALUATIONS_READ,
    )?;
    // At most 200 points: every k-th evaluation.
    let every = rows.len().div_ceil(200).max(1);
    let series = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0 || *i + 1 == rows.len())
        .filter_map(|(_, r)| {
            let s: EvaluationSummary = serde_json::from_str(&r.summary).ok()?;
            Some(EstimateSlot {
                at: rfc3339(&r.evaluated_at),
                cbpe: s.cbpe,
                atc: s.atc,
                worst_drift: s.worst,
            })
        })
        .collect();
    Ok(Estimates {
        reference_accuracy: state
            .and_then(|s| s.reference_accuracy)
            .or(view.model.map(|m| m.card.metrics.accuracy)),
        cbpe: state.and_then(|s| s.cbpe),
        atc: state.and_then(|s| s.atc),
        realised: concept.blind.accuracy,
        realised_interval: concept.blind.interval,
        realised_reviewed: concept.blind.reviewed,
        series,
    })
}

/// The output figures over the range, against the card's reference.
fn output(view: &TaskView<'_>, labels: &[Summed], confidence: &[Summed]) -> Output {
    let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
    for s in labels {
        *by_label.entry(s.name.clone()).or_default() += s.count.max(0) as u64;
    }
    let reference_mix = view.model.map(|m| &m.card.output_reference.label_mix);
    if let Some(m) = view.model {
        for l in &m.card.labels {
            by_label.entry(l.clone()).or_default();
        }
    }
    let scored: u64 = by_label.values().sum();
    let labels = by_label
        .into_iter()
        .map(|(label, count)| LabelShare {
            reference_share: reference_mix.map(|mix| mix.get(&label).copied().unwrap_or(0.0)),
            share: share(count, scored),
            label,
            count,
        })
        .collect();

    let mut h = Histogram::default();
    for s in confidence {
        h.merge(&histogram_of(s));
    }
    let mut edges = vec![0.0];
    edges.extend(CONFIDENCE_BOUNDS);
    edges.push(1.0);
    let current: Vec<f64> = h.buckets.iter().map(|&b| share(b, h.count)).collect();
    let reference = view
        .model
        .map(|m| {
            let r = &m.card.output_reference.confidence;
            let total: u64 = r.counts.iter().sum();
            r.counts
                .iter()
                .map(|&c| share(c, total))
                .collect::<Vec<_>>()
        })
        .filter(|r: &Vec<f64>| r.len() == BUCKETS)
        .unwrap_or_else(|| vec![0.0; BUCKETS]);
    let held_out = view
        .model
        .and_then(|m| m.card.reference_sample.as_ref())
        .map(|r| &r.held_out.confidence);
    let threshold = match view.level {
        AutomationLevel::Partial => view.threshold,
        AutomationLevel::Full => Some(0.0),
        _ => None,
    };
    Output {
        labels,
        confidence: Distribution {
            edges,
            reference,
            current,
        },
        mean_confidence: h.mean(),
        reference_mean_confidence: held_out.and_then(|c| super::stats::mean(c)),
        share_below_threshold: threshold.and_then(|t| share_below(&h, t)),
        reference_automation_rate: match (held_out, threshold) {
            (Some(c), Some(t)) if !c.is_empty() => {
                Some(c.iter().filter(|&&v| v >= t).count() as f64 / c.len() as f64)
            }
            _ => None,
        },
        window: None,
    }
}

/// Share of a confidence histogram below `t`, interpolated in its bucket.
fn share_below(h: &Histogram, t: f64) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let mut below = 0.0;
    for (i, &n) in h.buckets.iter().enumerate() {
        let lo = if i == 0 {
            0.0
        } else {
            CONFIDENCE_BOUNDS[i - 1]
        };
        let hi = if i == BUCKETS - 1 {
            1.0
        } else {
            CONFIDENCE_BOUNDS[i]
        };
        if t >= hi {
            below += n as f64;
        } else if t > lo {
            below += n as f64 * (t - lo) / (hi - lo);
        }
    }
    Some(below / h.count as f64)
}

/// This process's figures for the dashboard.
fn process_figures() -> ProcessFigures {
    let p = super::process::read();
    let uptime = p
        .start_time_seconds
        .map(|s| (chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - s).max(0.0));
    ProcessFigures {
        cpu_percent: match (p.cpu_seconds, uptime) {
            (Some(cpu), Some(up)) if up > 0.0 => Some(100.0 * cpu / up),
            _ => None,
        },
        resident_bytes: p.resident_bytes,
        open_fds: p.open_fds,
        uptime_seconds: uptime,
    }
}

/// One line of the overview from a task's report.
pub fn task_line(report: &TaskReport) -> TaskLine {
    let s = &report.software;
    TaskLine {
        task: report.task.clone(),
        live_model_version: report.live_model_version.clone(),
        items: s.items,
        items_per_minute: s.items_per_minute,
        automated_share: s.automated_share,
        failed_share: s.failed_share,
        p99_ms: s
            .stages
            .iter()
            .find(|st| st.stage == "total")
            .and_then(|st| st.p99_ms),
        queue_depth: s.queue_depth,
        drifted_features: report
            .drift
            .features
            .iter()
            .filter(|f| f.test.drifted)
            .count(),
        realised_accuracy: report.estimates.realised,
        estimated_accuracy: report.estimates.cbpe,
        open_alerts: report
            .alerts
            .iter()
            .filter(|a| a.resolved_at.is_none())
            .count(),
        series: s
            .series
            .iter()
            .map(|slot| slot.automated + slot.queued + slot.failed)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_have_at_most_a_hundred_slots() {
        for span in Span::ALL {
            let r = span.ending_now();
            let slots = r.slots().len();
            assert!((50..=101).contains(&slots), "{span:?}: {slots} slots");
        }
    }

    #[test]
    fn the_share_below_a_bucket_bound_is_exact() {
        let mut h = Histogram::default();
        h.observe(&CONFIDENCE_BOUNDS, 0.93, 3);
        h.observe(&CONFIDENCE_BOUNDS, 0.99, 1);
        assert_eq!(share_below(&h, 0.95), Some(0.75));
        assert_eq!(share_below(&h, 1.0), Some(1.0));
    }
}
