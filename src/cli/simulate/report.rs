//! The summary at the end of a run: as text, or as JSON with `--json`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub run: String,
    pub task: String,
    /// Item ids are this prefix and the item number, from 0.
    pub id_prefix: String,
    pub items: Items,
    pub labels: Labels,
    pub errors: Errors,
    pub rate: Rate,
    /// Per request, from the first attempt to the answer (retries included).
    pub latency_ms: Latency,
    pub seconds: Seconds,
    /// Items still waiting for a human at the end (the API's queue depth).
    pub queue_left: Option<i64>,
    /// Whether the reviewers emptied the queue before the drain timeout.
    pub drained: bool,
    /// Whether the run was stopped (Ctrl-C) before the end.
    pub cancelled: bool,
}

#[derive(Debug, Serialize)]
pub struct Items {
    pub planned: u64,
    /// Accepted by the API (2xx).
    pub sent: u64,
    /// Decided by the model (audited ones included).
    pub decided: u64,
    /// Queued for a human.
    pub queued: u64,
    /// Decided by the model and also queued blind for a human.
    pub audited: u64,
    /// Refused, or given up after retries.
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct Labels {
    /// Labels the web UI accepted.
    pub given: u64,
    /// Of those, wrong on purpose (`--reviewer-error`).
    pub wrong: u64,
    /// Label forms answered with a notice (expired or taken claim).
    pub refused: u64,
    /// Items of other runs skipped (their true label is unknown here).
    pub foreign_skipped: u64,
    pub reviewers: usize,
}

#[derive(Debug, Serialize)]
pub struct Errors {
    pub total: u64,
    /// 429, 503 and lost connections retried.
    pub retries: u64,
    pub by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Rate {
    pub target: f64,
    pub achieved: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct Seconds {
    pub submitting: f64,
    pub draining: f64,
    pub total: f64,
}

impl Latency {
    /// Nearest-rank percentiles of latencies in microseconds, in ms.
    pub fn of(mut micros: Vec<u64>) -> Latency {
        micros.sort_unstable();
        let at = |p: f64| {
            if micros.is_empty() {
                return 0.0;
            }
            let rank = ((micros.len() as f64 * p).ceil() as usize).clamp(1, micros.len());
            (micros[rank - 1] as f64 / 10.0).round() / 100.0
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl Summary {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let i = &self.items;
        let l = &self.labels;
        let _ = writeln!(
            s,
            "run {} on {}: ids {}0 … {}{}",
            self.run,
            self.task,
            self.id_prefix,
            self.id_prefix,
            i.planned.saturating_sub(1)
        );
        let _ = writeln!(
            s,
            "  items    {} sent of {}: {} decided by the model ({} also audited blind), {} queued for a human, {} failed",
            i.sent, i.planned, i.decided, i.audited, i.queued, i.failed
        );
        let queue = match self.queue_left {
            Some(n) => format!("{n} left in the queue"),
            None => "queue depth unknown".into(),
        };
        let _ = writeln!(
            s,
            "  labels   {} given by {} reviewers through the web UI ({} wrong on purpose), {} refused, {} foreign skipped; {queue}",
            l.given, l.reviewers, l.wrong, l.refused, l.foreign_skipped
        );
        let _ = writeln!(
            s,
            "  rate     {:.1} items/s (target {}), latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.rate.achieved, self.rate.target, self.latency_ms.p50, self.latency_ms.p99, self.latency_ms.max
        );
        let _ = writeln!(
            s,
            "  time     {:.1} s submitting, {:.1} s draining{}",
            self.seconds.submitting,
            self.seconds.draining,
            match (self.cancelled, self.drained) {
                (true, _) => " (stopped before the end)",
                (false, true) => "",
                (false, false) => " (the queue was not emptied)",
            }
        );
        let _ = writeln!(
            s,
            "  errors   {} ({} retries)",
            self.errors.total, self.errors.retries
        );
        for (kind, n) in &self.errors.by_kind {
            let _ = writeln!(s, "           {n:>6} × {kind}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let micros: Vec<u64> = (1..=100).rev().map(|i| i * 1000).collect();
        assert_eq!(
            Latency::of(micros),
            Latency {
                p50: 50.0,
                p99: 99.0,
                max: 100.0
            }
        );
        assert_eq!(Latency::of(vec![1234]).p50, 1.23);
        assert_eq!(Latency::of(Vec::new()).p99, 0.0);
    }
}
