//! `/metrics` in the Prometheus text format (version 0.0.4): this
//! instance's counters since start, the queue and alert gauges read from
//! the database, the drift scores, and the process's own figures. Names
//! follow Prometheus' conventions: base units, `_total` counters, `_seconds`;
//! no item ids in labels.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::db::{DbConnection, DbError};
use crate::domain::{now, AlertKind};
use crate::store::alerts as alerts_store;

use super::histogram::{Histogram, CONFIDENCE_BOUNDS, LATENCY_BOUNDS};
use super::process::ProcessStats;
use super::recorder::{Entry, Outcome, FLAGS, STAGES};
use crate::store::metrics::BUCKETS;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the database says now, for the gauges.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Per task: items waiting for a human, and the age of the oldest.
    pub queues: Vec<(String, i64, Option<f64>)>,
    /// Open alerts per kind (every kind, zeros included).
    pub alerts: Vec<(AlertKind, i64)>,
    /// Per task and feature: the latest drift score (KS statistic).
    pub drift: Vec<(String, String, f64)>,
}

/// Reads the gauges of `tasks` from the database.
pub fn gauges(conn: &mut DbConnection, tasks: &[String]) -> Result<Gauges, DbError> {
    let at = now();
    let mut queues = Vec::with_capacity(tasks.len());
    for task in tasks {
        let depth = alerts_store::count_waiting(conn, task)?;
        let oldest = alerts_store::oldest_waiting(conn, task)?
            .map(|t| ((at - t).num_milliseconds() as f64 / 1000.0).max(0.0));
        queues.push((task.clone(), depth, oldest));
    }
    let open: BTreeMap<AlertKind, i64> = alerts_store::open_by_kind(conn)?.into_iter().collect();
    let alerts = AlertKind::ALL
        .iter()
        .map(|k| (*k, open.get(k).copied().unwrap_or(0)))
        .collect();
    let mut drift = Vec::new();
    for task in tasks {
        let state = crate::store::monitoring::state(conn, task)?
            .and_then(|s| serde_json::from_str::<super::drift::MonitorState>(&s).ok());
        for f in state.map(|s| s.drift.features).unwrap_or_default() {
            drift.push((task.clone(), f.feature, f.test.statistic));
        }
    }
    Ok(Gauges {
        queues,
        alerts,
        drift,
    })
}

/// A label value escaped as the text format asks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{a="x",b="y"}`.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A float as the text format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    pairs: &[(&str, &str)],
    bounds: &[f64; BUCKETS - 1],
    h: &Histogram,
) {
    let mut cumulative = 0u64;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = if i < BUCKETS - 1 {
            number(bounds[i])
        } else {
            "+Inf".into()
        };
        let mut with_le = pairs.to_vec();
        with_le.push(("le", &le));
        let _ = writeln!(out, "{name}_bucket{} {cumulative}", labels(&with_le));
    }
    let _ = writeln!(out, "{name}_sum{} {}", labels(pairs), number(h.sum));
    let _ = writeln!(out, "{name}_count{} {}", labels(pairs), h.count);
}

/// The whole exposition.
/// `limited`: requests this instance refused with 429, per limit (see
/// `rate_limits::LimitKind`).
pub fn render(
    totals: &[Entry],
    gauges: &Gauges,
    limited: &[(&str, u64)],
    process: &ProcessStats,
) -> String {
    let mut out = String::with_capacity(16 * 1024);

    family(
        &mut out,
        "verdict_items_total",
        "counter",
        "Items scored by this instance, by outcome (automated, queued, failed).",
    );
    for e in totals {
        for (o, n) in Outcome::ALL.iter().zip(e.counts.items) {
            let l = labels(&[
                ("task", &e.task),
                ("model_version", &e.model_version),
                ("outcome", o.as_str()),
            ]);
            let _ = writeln!(out, "verdict_items_total{l} {n}");
        }
    }
    family(
        &mut out,
        "verdict_item_flags_total",
        "counter",
        "Items scored by this instance that were audited or out of distribution.",
    );
    for e in totals {
        for (flag, n) in FLAGS.iter().zip(e.counts.flags) {
            let l = labels(&[
                ("task", &e.task),
                ("model_version", &e.model_version),
                ("flag", flag),
            ]);
            let _ = writeln!(out, "verdict_item_flags_total{l} {n}");
        }
    }
    family(
        &mut out,
        "verdict_predictions_total",
        "counter",
        "Predictions by label.",
    );
    for e in totals {
        for (label, n) in &e.counts.labels {
            let l = labels(&[
                ("task", &e.task),
                ("model_version", &e.model_version),
                ("label", label),
            ]);
            let _ = writeln!(out, "verdict_predictions_total{l} {n}");
        }
    }
    family(
        &mut out,
        "verdict_requests_rejected_total",
        "counter",
        "Scoring requests refused, by error code.",
    );
    for e in totals {
        for (code, n) in &e.counts.rejected {
            let l = labels(&[("task", &e.task), ("code", code)]);
            let _ = writeln!(out, "verdict_requests_rejected_total{l} {n}");
        }
    }

    family(
        &mut out,
        "verdict_requests_limited_total",
        "counter",
        "Requests this instance refused with 429, by the limit that refused them.",
    );
    for (limit, n) in limited {
        let l = labels(&[("limit", limit)]);
        let _ = writeln!(out, "verdict_requests_limited_total{l} {n}");
    }

    // Stage latency per task (model versions merged).
    let mut stages: BTreeMap<(&str, usize), Histogram> = BTreeMap::new();
    let mut confidence: BTreeMap<(&str, &str), Histogram> = BTreeMap::new();
    for e in totals {
        for (i, h) in e.counts.stages.iter().enumerate() {
            stages.entry((&e.task, i)).or_default().merge(h);
        }
        if e.counts.confidence.count > 0 {
            confidence
                .entry((&e.task, &e.model_version))
                .or_default()
                .merge(&e.counts.confidence);
        }
    }
    family(
        &mut out,
        "verdict_stage_seconds",
        "histogram",
        "Time an item spent in each stage of scoring: featurise, model, policy, store, total.",
    );
    for ((task, i), h) in &stages {
        if h.count > 0 {
            histogram(
                &mut out,
                "verdict_stage_seconds",
                &[("task", task), ("stage", STAGES[*i])],
                &LATENCY_BOUNDS,
                h,
            );
        }
    }
    family(
        &mut out,
        "verdict_confidence",
        "histogram",
        "The model's confidence (its largest probability).",
    );
    for ((task, version), h) in &confidence {
        histogram(
            &mut out,
            "verdict_confidence",
            &[("task", task), ("model_version", version)],
            &CONFIDENCE_BOUNDS,
            h,
        );
    }

    family(
        &mut out,
        "verdict_queue_depth",
        "gauge",
        "Items waiting for a human.",
    );
    for (task, depth, _) in &gauges.queues {
        let _ = writeln!(
            out,
            "verdict_queue_depth{} {depth}",
            labels(&[("task", task)])
        );
    }
    family(
        &mut out,
        "verdict_oldest_item_age_seconds",
        "gauge",
        "Age of the oldest item waiting for a human (0 when none waits).",
    );
    for (task, _, age) in &gauges.queues {
        let _ = writeln!(
            out,
            "verdict_oldest_item_age_seconds{} {}",
            labels(&[("task", task)]),
            number(age.unwrap_or(0.0))
        );
    }
    family(&mut out, "verdict_drift_score", "gauge", "Latest two-sample Kolmogorov-Smirnov statistic of each input feature against the model card's reference.");
    for (task, feature, score) in &gauges.drift {
        let _ = writeln!(
            out,
            "verdict_drift_score{} {}",
            labels(&[("task", task), ("feature", feature)]),
            number(*score)
        );
    }
    family(
        &mut out,
        "verdict_alerts_firing",
        "gauge",
        "Open alerts by kind.",
    );
    for (kind, n) in &gauges.alerts {
        let _ = writeln!(
            out,
            "verdict_alerts_firing{} {n}",
            labels(&[("kind", kind.as_str())])
        );
    }

    let mut gauge = |name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", number(v));
        }
    };
    gauge(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        process.cpu_seconds,
    );
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        process.resident_bytes.map(|v| v as f64),
    );
    gauge(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        process.virtual_bytes.map(|v| v as f64),
    );
    gauge(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        process.open_fds.map(|v| v as f64),
    );
    gauge(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        process.max_fds.map(|v| v as f64),
    );
    gauge(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        process.start_time_seconds,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::recorder::{ItemSeen, Recorder};

    #[test]
    fn histograms_are_cumulative_and_end_at_inf_with_the_count() {
        let r = Recorder::new(true);
        let item = ItemSeen {
            outcome: Outcome::Automated,
            audited: false,
            out_of_distribution: false,
            label: Some("a \"quoted\" label"),
            confidence: Some(0.97),
        };
        r.scored(
            "t",
            Some("v1"),
            &[item, item],
            &[1e-5, 2e-4, 1e-6, 3e-3, 4e-3],
        );
        let limited = [("token", 3), ("address", 0)];
        let text = render(
            &r.totals(),
            &Gauges::default(),
            &limited,
            &ProcessStats::default(),
        );
        assert!(
            text.contains("verdict_requests_limited_total{limit=\"token\"} 3\n")
                && text.contains("verdict_requests_limited_total{limit=\"address\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"verdict_items_total{task="t",model_version="v1",outcome="automated"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"label="a \"quoted\" label""#), "{text}");
        assert!(
            text.contains(r#"verdict_stage_seconds_bucket{task="t",stage="store",le="0.0025"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"verdict_stage_seconds_bucket{task="t",stage="store",le="0.005"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"verdict_stage_seconds_bucket{task="t",stage="store",le="+Inf"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"verdict_stage_seconds_count{task="t",stage="store"} 2"#),
            "{text}"
        );
    }
}
