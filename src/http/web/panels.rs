//! The monitoring report shaped for reading: every figure formatted, each
//! "over its threshold" decided once, every chart drawn. The dashboard's
//! templates show these structs and compute nothing; the figures are the
//! report's own ([`crate::monitoring::report`]).

use super::charts::{self, BarSeries, LineSeries, Lines, StackedBars, Unit, YRange};
use super::format::{self, NONE};
use crate::config::TaskConfig;
use crate::monitoring::build::Span;
use crate::monitoring::report::*;

/// A headline figure: what it is, its value, a line of detail.
pub struct Tile {
    pub label: &'static str,
    pub value: String,
    pub detail: String,
    /// Shown in red: something needs a look.
    pub bad: bool,
}

impl Tile {
    fn new(label: &'static str, value: String, detail: String) -> Tile {
        Tile {
            label,
            value,
            detail,
            bad: false,
        }
    }

    fn bad(mut self, bad: bool) -> Tile {
        self.bad = bad;
        self
    }
}

pub struct StageRow {
    pub stage: String,
    pub count: String,
    pub p50: String,
    pub p95: String,
    pub p99: String,
    pub total: bool,
}

/// A figure now against its reference.
pub struct CompareRow {
    pub name: &'static str,
    pub current: String,
    pub reference: String,
    /// Current minus reference (`+2.1 pts`), or empty.
    pub difference: String,
}

pub struct TestView {
    pub name: &'static str,
    pub statistic: String,
    pub threshold: String,
    pub pvalue: String,
    pub alpha: String,
    pub drifted: bool,
}

impl TestView {
    fn of(name: &'static str, t: &Test) -> TestView {
        TestView {
            name,
            statistic: format::sig(t.statistic),
            threshold: t.threshold.map(format::sig).unwrap_or_else(|| NONE.into()),
            pvalue: format::pvalue(t.pvalue),
            alpha: format::pvalue(t.alpha),
            drifted: t.drifted,
        }
    }
}

/// The drift monitor's output tests on its window.
pub struct WindowView {
    pub items: String,
    pub tests: Vec<TestView>,
    pub automation_rate: String,
    pub failed_share: String,
    pub repeated_share: String,
    pub drifted: bool,
}

pub struct FeatureRow {
    pub name: String,
    pub statistic: String,
    pub threshold: String,
    pub statistic_over: bool,
    pub pvalue: String,
    pub pvalue_under: bool,
    pub psi: String,
    pub psi_threshold: String,
    pub psi_over: bool,
    pub out_of_range: String,
    pub out_of_range_any: bool,
    pub drifted: bool,
    /// Reference against current on the PSI bins, small.
    pub chart: String,
}

/// The model against humans on one kind of review.
pub struct AgreementView {
    pub title: &'static str,
    pub note: &'static str,
    /// `No blind audits in the range.` when there were none.
    pub none: &'static str,
    pub reviewed_any: bool,
    /// Whether Page-Hinkley has a threshold (the monitor follows the task).
    pub detector: bool,
    pub accuracy: String,
    pub interval: String,
    pub reviewed: String,
    pub agreed: String,
    pub page_hinkley: String,
    pub page_hinkley_threshold: String,
    pub observations: String,
    pub drift: bool,
    pub detected_at: String,
}

pub struct AlertView {
    pub open: bool,
    pub severity: String,
    pub kind: String,
    pub subject: String,
    pub summary: String,
    pub fired_at: String,
    pub resolved_at: String,
}

/// One task's dashboard.
pub struct TaskDash {
    pub task: String,
    pub model: String,
    /// `partial at 0.95`, `full`, …
    pub automation: String,
    /// `Nov 27 14:00 – Nov 28 14:00 UTC`.
    pub range: String,
    pub slots: String,
    /// When the figures were read.
    pub read_at: String,
    pub span: &'static str,
    pub headline: Vec<Tile>,

    pub traffic_chart: String,
    pub rejected: String,
    pub rejected_chart: Option<String>,
    pub stages: Vec<StageRow>,
    pub latency_chart: String,

    pub labels_chart: String,
    pub confidence_chart: String,
    pub outputs: Vec<CompareRow>,
    pub window: Option<WindowView>,

    pub drift_status: String,
    pub drift_any: bool,
    pub drift_meta: Vec<String>,
    pub drift_notes: Vec<String>,
    /// `KS`, or `χ²` when the card has histograms only.
    pub statistic_name: &'static str,
    pub features: Vec<FeatureRow>,

    pub agreements: Vec<AgreementView>,
    pub agreement_chart: String,

    pub accuracy: Vec<Tile>,
    pub estimates_chart: String,

    pub process: Vec<Tile>,

    pub alerts: Vec<AlertView>,
    pub open_alerts: usize,
}

fn span_words(span: Span) -> &'static str {
    match span {
        Span::Hour => "the last hour",
        Span::Day => "the last day",
        Span::Week => "the last week",
    }
}

fn slot_words(minutes: i64) -> String {
    match minutes {
        m if m % 1440 == 0 => format!("{}-day slots", m / 1440),
        m if m % 60 == 0 => format!("{}-hour slots", m / 60),
        m => format!("{m}-minute slots"),
    }
}

/// A slot's width as the y axis says it: `minute`, `15 minutes`, `2 hours`.
fn slot_unit(minutes: i64) -> String {
    let (n, unit) = match minutes {
        m if m % 1440 == 0 => (m / 1440, "day"),
        m if m % 60 == 0 => (m / 60, "hour"),
        m => (m, "minute"),
    };
    if n == 1 {
        unit.to_string()
    } else {
        format!("{n} {unit}s")
    }
}

fn range_words(r_since: &str, r_until: &str) -> String {
    format!(
        "{} – {} UTC",
        format::short_time(r_since),
        format::short_time(r_until)
    )
}

/// `+2.1 pts` / `−3.9 pts` between two shares.
fn points(current: Option<f64>, reference: Option<f64>) -> String {
    match (current, reference) {
        (Some(c), Some(r)) if c.is_finite() && r.is_finite() => {
            let d = (c - r) * 100.0;
            if d.abs() < 0.05 {
                "±0 pts".into()
            } else if d > 0.0 {
                format!("+{d:.1} pts")
            } else {
                format!("−{:.1} pts", -d)
            }
        }
        _ => String::new(),
    }
}

fn confidence(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| format!("{v:.3}"))
        .unwrap_or_else(|| NONE.into())
}

fn total_stage(s: &Software) -> Option<&StageLatency> {
    s.stages.iter().find(|st| st.stage == "total")
}

fn opt_time(t: &Option<String>) -> String {
    t.as_deref()
        .map(format::time)
        .unwrap_or_else(|| NONE.into())
}

/// Agreement in a slot, or a gap when nobody reviewed.
fn agreement(agreed: u64, reviewed: u64) -> Option<f64> {
    (reviewed > 0).then(|| agreed as f64 / reviewed as f64)
}

fn accuracy_detail(interval: Option<(f64, f64)>, reviewed: u64) -> String {
    match interval {
        Some((lo, hi)) => format!(
            "95% interval {}, {} reviewed",
            format::interval(lo, hi),
            format::count(reviewed)
        ),
        None if reviewed == 0 => "no blind audits in the range".into(),
        None => format!("{} reviewed", format::count(reviewed)),
    }
}

/// The dashboard of one task from its report.
pub fn task(span: Span, config: &TaskConfig, r: &TaskReport) -> TaskDash {
    let s = &r.software;
    let total = total_stage(s);
    let open_alerts = r.alerts.iter().filter(|a| a.resolved_at.is_none()).count();
    // As the overview has it (`build::task_line`): CBPE is the estimate.
    let estimated = r.estimates.cbpe;

    let headline = vec![
        Tile::new(
            "Items per minute",
            format::rate(s.items_per_minute),
            format!("{} items in {}", format::count(s.items), span_words(span)),
        ),
        Tile::new(
            "Automated",
            format::pct(s.automated_share),
            format!("{} decided by the model", format::count(s.automated)),
        ),
        Tile::new(
            "Queued",
            format::pct(s.queued_share),
            format!("{} sent to reviewers", format::count(s.queued)),
        ),
        Tile::new(
            "Failed",
            format::pct(s.failed_share),
            format!("{} model errors, queued", format::count(s.failed)),
        )
        .bad(s.failed > 0),
        Tile::new(
            "p99 latency",
            format::opt_ms(total.and_then(|t| t.p99_ms)),
            format!("p50 {}", format::opt_ms(total.and_then(|t| t.p50_ms))),
        ),
        Tile::new(
            "Queue",
            format::count_i(s.queue_depth),
            match s.oldest_waiting_seconds {
                Some(age) => format!("waiting, the oldest for {}", format::duration(age)),
                None => "nothing waiting".into(),
            },
        ),
        Tile::new(
            "Open alerts",
            open_alerts.to_string(),
            format!("{} in the range", r.alerts.len()),
        )
        .bad(open_alerts > 0),
        Tile::new(
            "Accuracy, estimated",
            format::opt_pct(estimated),
            match r.estimates.realised {
                Some(a) => format!(
                    "realised {} on {} blind audits",
                    format::pct(a),
                    format::count(r.estimates.realised_reviewed)
                ),
                None => "no blind audits in the range".into(),
            },
        ),
    ];

    // Traffic.
    let x: Vec<String> = s
        .series
        .iter()
        .map(|slot| format::slot_label(&slot.start, r.slot_minutes))
        .collect();
    let column = |f: fn(&SoftwareSlot) -> u64| -> Vec<f64> {
        s.series.iter().map(|slot| f(slot) as f64).collect()
    };
    let (automated, queued, failed, rejected) = (
        column(|s| s.automated),
        column(|s| s.queued),
        column(|s| s.failed),
        column(|s| s.rejected),
    );
    let per_slot = format!("per {}", slot_unit(r.slot_minutes));
    let traffic_chart = charts::stacked_bars(&StackedBars {
        title: "Items per slot by outcome",
        y_label: &format!("items {per_slot}"),
        x_labels: &x,
        series: &[
            BarSeries {
                name: "automated",
                color: charts::BLUE,
                values: &automated,
            },
            BarSeries {
                name: "queued",
                color: charts::AMBER,
                values: &queued,
            },
            BarSeries {
                name: "failed",
                color: charts::RED,
                values: &failed,
            },
        ],
        unit: Unit::Count,
    });
    let rejected_chart = (s.rejected > 0).then(|| {
        charts::stacked_bars(&StackedBars {
            title: "Rejected scoring requests per slot",
            y_label: &format!("requests {per_slot}"),
            x_labels: &x,
            series: &[BarSeries {
                name: "rejected",
                color: charts::GREY,
                values: &rejected,
            }],
            unit: Unit::Count,
        })
    });
    let p50: Vec<Option<f64>> = s.series.iter().map(|slot| slot.p50_ms).collect();
    let p99: Vec<Option<f64>> = s.series.iter().map(|slot| slot.p99_ms).collect();
    let latency_chart = charts::lines(&Lines {
        title: "Latency per slot (total)",
        y_label: "latency",
        x_labels: &x,
        series: &[
            LineSeries {
                name: "p50",
                color: charts::BLUE,
                dashed: false,
                values: &p50,
            },
            LineSeries {
                name: "p99",
                color: charts::PURPLE,
                dashed: true,
                values: &p99,
            },
        ],
        unit: Unit::Ms,
        y_range: YRange::FromZero,
        reference: None,
    });
    // No table of dashes before anything was timed.
    let timed = s.stages.iter().any(|st| st.count > 0);
    let stages = s
        .stages
        .iter()
        .filter(|_| timed)
        .map(|st| StageRow {
            stage: st.stage.clone(),
            count: format::count(st.count),
            p50: format::opt_ms(st.p50_ms),
            p95: format::opt_ms(st.p95_ms),
            p99: format::opt_ms(st.p99_ms),
            total: st.stage == "total",
        })
        .collect();

    // Outputs.
    let o = &r.output;
    let categories: Vec<String> = o.labels.iter().map(|l| l.label.clone()).collect();
    let shares: Vec<f64> = o.labels.iter().map(|l| l.share).collect();
    let reference_shares: Vec<Option<f64>> = o.labels.iter().map(|l| l.reference_share).collect();
    let labels_chart = charts::bars_pair(&charts::BarsPair {
        title: "Label mix: current against the model card",
        categories: &categories,
        current: if s.items > 0 || shares.iter().any(|&v| v > 0.0) {
            &shares
        } else {
            &[]
        },
        reference: &reference_shares,
    });
    let confidence_chart = charts::histogram_pair(&charts::HistogramPair {
        names: ("reference", "current"),
        title: "Confidence: current against the model card",
        edges: &o.confidence.edges,
        reference: &o.confidence.reference,
        current: &o.confidence.current,
        size: charts::Size::Full,
    });
    let scored = s.items > 0;
    let reference_below = o
        .share_below_threshold
        .and(o.reference_automation_rate.map(|a| 1.0 - a));
    let automation_now = scored.then_some(s.automated_share);
    let outputs = vec![
        CompareRow {
            name: "Mean confidence",
            current: confidence(o.mean_confidence),
            reference: confidence(o.reference_mean_confidence),
            difference: match (o.mean_confidence, o.reference_mean_confidence) {
                (Some(c), Some(r)) => format!("{:+.3}", c - r).replace('-', "−"),
                _ => String::new(),
            },
        },
        CompareRow {
            name: "Below the threshold",
            current: format::opt_pct(o.share_below_threshold),
            reference: format::opt_pct(reference_below),
            difference: points(o.share_below_threshold, reference_below),
        },
        CompareRow {
            name: "Automation rate",
            current: format::opt_pct(automation_now),
            reference: format::opt_pct(o.reference_automation_rate),
            difference: points(automation_now, o.reference_automation_rate),
        },
    ];
    let window = o.window.as_ref().map(|w| WindowView {
        items: format::count(w.items as u64),
        tests: vec![
            TestView::of("Label mix (χ²)", &w.label_mix),
            TestView::of("Confidence (KS)", &w.confidence),
        ],
        automation_rate: format::pct(w.automation_rate),
        failed_share: format::pct(w.failed_share),
        repeated_share: format::pct(w.repeated_share),
        drifted: w.drifted,
    });

    // Input drift.
    let d = &r.drift;
    let drifted = d.features.iter().filter(|f| f.test.drifted).count();
    let histogram = d.method == "histogram";
    let drift_status = match (d.evaluated_at.is_some(), drifted) {
        (false, _) => "Not evaluated yet".to_string(),
        (true, 0) => format!("No feature drifted (of {})", d.features.len()),
        (true, n) => format!(
            "{n} of {} feature{} drifted",
            d.features.len(),
            if d.features.len() == 1 { "" } else { "s" }
        ),
    };
    let mut drift_meta = Vec::new();
    if let Some(at) = &d.evaluated_at {
        drift_meta.push(format!("evaluated {}", format::time(at)));
        drift_meta.push(format!(
            "window of {} items",
            format::count(d.window_items as u64)
        ));
        if let Some(v) = &d.model_version {
            drift_meta.push(format!("model {v}"));
        }
        drift_meta.push(format!("α {} per feature", format::pvalue(d.alpha)));
    }
    let mut drift_notes = Vec::new();
    if d.evaluated_at.is_none() {
        drift_notes.push(if d.window_items > 0 {
            format!(
                "The drift monitor has not evaluated this task yet: the first evaluation comes after {} items ({} seen so far).",
                format::count(d.window_items as u64),
                format::count(d.items_seen)
            )
        } else {
            "The drift monitor has not evaluated this task yet: the first evaluation comes after its first full window of items.".to_string()
        });
    }
    if histogram {
        drift_notes.push(
            "This model card has no reference sample: each feature is compared with the card's 20-bin histogram (chi-squared instead of KS), so drift shows later and coarser than with a sample."
                .to_string(),
        );
    }
    let features = d
        .features
        .iter()
        .map(|f| {
            let over = |v: f64, t: Option<f64>| t.is_some_and(|t| v > t);
            FeatureRow {
                name: f.feature.clone(),
                statistic: format::sig(f.test.statistic),
                threshold: f
                    .test
                    .threshold
                    .map(format::sig)
                    .unwrap_or_else(|| NONE.into()),
                statistic_over: over(f.test.statistic, f.test.threshold),
                pvalue: format::pvalue(f.test.pvalue),
                pvalue_under: f.test.pvalue < f.test.alpha,
                psi: format::sig(f.psi),
                psi_threshold: f
                    .psi_threshold
                    .map(format::sig)
                    .unwrap_or_else(|| NONE.into()),
                psi_over: over(f.psi, f.psi_threshold),
                out_of_range: format::pct(f.out_of_range_share),
                out_of_range_any: f.out_of_range_share > 0.0,
                drifted: f.test.drifted,
                chart: charts::histogram_pair(&charts::HistogramPair {
                    names: ("reference", "current"),
                    title: &format!("{}: reference against current", f.feature),
                    edges: &f.distribution.edges,
                    reference: &f.distribution.reference,
                    current: &f.distribution.current,
                    size: charts::Size::Mini,
                }),
            }
        })
        .collect();

    // Model against humans.
    let c = &r.concept;
    let agreement_view = |title, note, none, a: &Agreement| AgreementView {
        title,
        note,
        none,
        reviewed_any: a.reviewed > 0,
        detector: a.page_hinkley_threshold > 0.0,
        accuracy: format::opt_pct(a.accuracy),
        interval: a
            .interval
            .map(|(lo, hi)| format::interval(lo, hi))
            .unwrap_or_else(|| NONE.into()),
        reviewed: format::count(a.reviewed),
        agreed: format::count(a.agreed),
        page_hinkley: format::sig(a.page_hinkley),
        page_hinkley_threshold: format::sig(a.page_hinkley_threshold),
        observations: format::count(a.observations),
        drift: a.drift,
        detected_at: opt_time(&a.detected_at),
    };
    let agreements = vec![
        agreement_view(
            "Blind audits",
            "reviewers did not see the model: unbiased",
            "No blind audit in the range.",
            &c.blind,
        ),
        agreement_view(
            "Assisted reviews",
            "the model's uncertain items, suggestion shown: its hard cases, biased",
            "No assisted review in the range.",
            &c.assisted,
        ),
    ];
    let cx: Vec<String> = c
        .series
        .iter()
        .map(|slot| format::slot_label(&slot.start, r.slot_minutes))
        .collect();
    let blind: Vec<Option<f64>> = c
        .series
        .iter()
        .map(|slot| agreement(slot.blind_agreed, slot.blind_reviewed))
        .collect();
    let assisted: Vec<Option<f64>> = c
        .series
        .iter()
        .map(|slot| agreement(slot.assisted_agreed, slot.assisted_reviewed))
        .collect();
    let agreement_chart = charts::lines(&Lines {
        title: "Agreement of the model with reviewers per slot",
        y_label: "agreement",
        x_labels: &cx,
        series: &[
            LineSeries {
                name: "blind",
                color: charts::BLUE,
                dashed: false,
                values: &blind,
            },
            LineSeries {
                name: "assisted",
                color: charts::AMBER,
                dashed: true,
                values: &assisted,
            },
        ],
        unit: Unit::Share,
        y_range: YRange::Fit,
        reference: None,
    });

    // Accuracy.
    let e = &r.estimates;
    let accuracy = vec![
        Tile::new(
            "Estimated (CBPE)",
            format::opt_pct(e.cbpe),
            "mean calibrated confidence".into(),
        ),
        Tile::new(
            "Estimated (ATC)",
            format::opt_pct(e.atc),
            "share above the held-out threshold".into(),
        ),
        Tile::new(
            "Realised",
            format::opt_pct(e.realised),
            accuracy_detail(e.realised_interval, e.realised_reviewed),
        ),
        Tile::new(
            "Held-out",
            format::opt_pct(e.reference_accuracy),
            "the model card's test split".into(),
        ),
    ];
    let ex: Vec<String> = e
        .series
        .iter()
        .map(|slot| format::slot_label(&slot.at, r.slot_minutes))
        .collect();
    let cbpe: Vec<Option<f64>> = e.series.iter().map(|slot| slot.cbpe).collect();
    let atc: Vec<Option<f64>> = e.series.iter().map(|slot| slot.atc).collect();
    let estimates_chart = charts::lines(&Lines {
        title: "Estimated accuracy at each drift evaluation",
        y_label: "accuracy",
        x_labels: &ex,
        series: &[
            LineSeries {
                name: "CBPE",
                color: charts::BLUE,
                dashed: false,
                values: &cbpe,
            },
            LineSeries {
                name: "ATC",
                color: charts::PURPLE,
                dashed: true,
                values: &atc,
            },
        ],
        unit: Unit::Share,
        y_range: YRange::Fit,
        reference: e.reference_accuracy.map(|a| ("held-out", a)),
    });

    // Process.
    let p = &s.process;
    let process = vec![
        Tile::new(
            "CPU",
            p.cpu_percent
                .map(|c| format!("{c:.1}%"))
                .unwrap_or_else(|| NONE.into()),
            "of one core, on average since start".into(),
        ),
        Tile::new(
            "Memory",
            p.resident_bytes
                .map(format::bytes)
                .unwrap_or_else(|| NONE.into()),
            "resident".into(),
        ),
        Tile::new(
            "Open files",
            p.open_fds.map(format::count).unwrap_or_else(|| NONE.into()),
            "file descriptors".into(),
        ),
        Tile::new(
            "Uptime",
            p.uptime_seconds
                .map(format::duration)
                .unwrap_or_else(|| NONE.into()),
            "since this instance started".into(),
        ),
    ];

    // Alerts, open first (the report lists them newest first).
    let mut alerts: Vec<AlertView> = r
        .alerts
        .iter()
        .map(|a| AlertView {
            open: a.resolved_at.is_none(),
            severity: a.severity.clone(),
            kind: a.kind.clone(),
            subject: a.subject.clone(),
            summary: a.summary.clone(),
            fired_at: format::time(&a.fired_at),
            resolved_at: opt_time(&a.resolved_at),
        })
        .collect();
    alerts.sort_by_key(|a| !a.open);

    TaskDash {
        task: r.task.clone(),
        model: r
            .live_model_version
            .clone()
            .unwrap_or_else(|| "none".into()),
        automation: match config.threshold {
            Some(t) if config.automation == crate::domain::AutomationLevel::Partial => {
                format!("{} at {t}", config.automation.as_str())
            }
            _ => config.automation.as_str().to_string(),
        },
        range: range_words(&r.since, &r.until),
        slots: slot_words(r.slot_minutes),
        read_at: format::time(&r.until),
        span: span.as_str(),
        headline,
        traffic_chart,
        rejected: format::count(s.rejected),
        rejected_chart,
        stages,
        latency_chart,
        labels_chart,
        confidence_chart,
        outputs,
        window,
        drift_status,
        drift_any: drifted > 0,
        drift_meta,
        drift_notes,
        statistic_name: if histogram { "χ²" } else { "KS" },
        features,
        agreements,
        agreement_chart,
        accuracy,
        estimates_chart,
        process,
        alerts,
        open_alerts,
    }
}

/// One task on the overview.
pub struct TaskCard {
    pub task: String,
    pub href: String,
    pub model: String,
    pub rate: String,
    pub items: String,
    pub spark: String,
    pub automated: String,
    pub failed: String,
    pub failed_any: bool,
    pub p99: String,
    pub queue: String,
    pub drifted: String,
    pub drifted_any: bool,
    pub estimated: String,
    pub realised: String,
    pub open_alerts: usize,
}

pub struct OverviewView {
    pub range: String,
    pub read_at: String,
    pub cards: Vec<TaskCard>,
}

/// The overview from every task's report.
pub fn overview(span: Span, reports: &[TaskReport]) -> OverviewView {
    let cards = reports
        .iter()
        .map(|r| {
            let line = crate::monitoring::build::task_line(r);
            let series: Vec<f64> = line.series.iter().map(|&n| n as f64).collect();
            TaskCard {
                href: format!("/dashboard/{}?span={}", line.task, span.as_str()),
                model: line
                    .live_model_version
                    .clone()
                    .unwrap_or_else(|| "none".into()),
                rate: format::rate(line.items_per_minute),
                items: format::count(line.items),
                spark: charts::sparkline(
                    &format!("{}: items per slot", line.task),
                    &series,
                    Unit::Count,
                ),
                automated: format::pct(line.automated_share),
                failed: format::pct(line.failed_share),
                failed_any: line.failed_share > 0.0,
                p99: format::opt_ms(line.p99_ms),
                queue: format::count_i(line.queue_depth),
                drifted: if r.drift.evaluated_at.is_some() {
                    format!("{} of {}", line.drifted_features, r.drift.features.len())
                } else {
                    "not evaluated".into()
                },
                drifted_any: line.drifted_features > 0,
                estimated: format::opt_pct(line.estimated_accuracy),
                realised: format::opt_pct(line.realised_accuracy),
                open_alerts: line.open_alerts,
                task: line.task,
            }
        })
        .collect();
    let (since, until) = reports
        .first()
        .map(|r| (r.since.clone(), r.until.clone()))
        .unwrap_or_default();
    OverviewView {
        range: if since.is_empty() {
            String::new()
        } else {
            range_words(&since, &until)
        },
        read_at: if until.is_empty() {
            String::new()
        } else {
            format::time(&until)
        },
        cards,
    }
}
