//! What the dashboard and `GET /api/v1/tasks/{task}/monitoring` show of a
//! task over a range: software figures (from the metrics store), outputs,
//! data drift (the drift monitor's latest window), concept drift from human
//! labels, and the label-free accuracy estimates beside the realised
//! accuracy. Plain data; [`super::build`] fills it in.

use serde::{Deserialize, Serialize};

/// One task over `since..until`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq)]
pub struct TaskReport {
    pub task: String,
    /// RFC 3339.
    pub since: String,
    pub until: String,
    /// Width of the slots of every time series, in minutes.
    pub slot_minutes: i64,
    pub live_model_version: Option<String>,
    pub software: Software,
    pub output: Output,
    pub drift: DataDrift,
    pub concept: Concept,
    pub estimates: Estimates,
    /// Alerts of the task that fired in the range or are still open.
    pub alerts: Vec<AlertLine>,
}

/// Throughput, outcomes, latency, the queue and the process.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Software {
    pub items: u64,
    pub automated: u64,
    pub queued: u64,
    pub failed: u64,
    /// Scoring requests refused (4xx), by any client.
    pub rejected: u64,
    pub items_per_minute: f64,
    /// Share of items automated / queued / failed (0 without items).
    pub automated_share: f64,
    pub queued_share: f64,
    pub failed_share: f64,
    /// Per stage (`featurise`, `model`, `policy`, `store`, `total`).
    pub stages: Vec<StageLatency>,
    /// One entry per slot, oldest first, empty slots included.
    pub series: Vec<SoftwareSlot>,
    pub queue_depth: i64,
    pub oldest_waiting_seconds: Option<f64>,
    pub process: ProcessFigures,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct StageLatency {
    pub stage: String,
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct SoftwareSlot {
    /// RFC 3339 start of the slot.
    pub start: String,
    pub automated: u64,
    pub queued: u64,
    pub failed: u64,
    pub rejected: u64,
    /// The `total` stage's percentiles in the slot.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// This instance's process (the one answering).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct ProcessFigures {
    /// CPU used since start over wall time since start, in % of one core.
    pub cpu_percent: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub uptime_seconds: Option<f64>,
}

/// A distribution on fixed bins: `edges` has one more entry than the
/// share lists; shares sum to 1 (or are all 0 without data).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Distribution {
    pub edges: Vec<f64>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// The model's outputs over the range, against the card's reference.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Output {
    pub labels: Vec<LabelShare>,
    /// Confidence over [0, 1] in 20 bins.
    pub confidence: Distribution,
    pub mean_confidence: Option<f64>,
    pub reference_mean_confidence: Option<f64>,
    /// Share of scored items whose confidence is below the task threshold.
    pub share_below_threshold: Option<f64>,
    /// The automation rate the held-out rows would have had at the task's
    /// threshold.
    pub reference_automation_rate: Option<f64>,
    /// The drift monitor's output tests on its latest window.
    pub window: Option<OutputWindow>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct LabelShare {
    pub label: String,
    pub count: u64,
    pub share: f64,
    pub reference_share: Option<f64>,
}

/// Output drift on the monitor's window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct OutputWindow {
    pub items: usize,
    /// Chi-squared of the window's label counts against the reference mix.
    pub label_mix: Test,
    /// Two-sample KS of the window's confidence against the held-out one.
    pub confidence: Test,
    pub mean_confidence: Option<f64>,
    pub share_below_threshold: Option<f64>,
    pub failed_share: f64,
    pub automation_rate: f64,
    /// Share of items whose input (its hash) appeared before in the window.
    pub repeated_share: f64,
    pub drifted: bool,
}

/// A test's figures: the statistic, its p-value, the effect-size threshold
/// calibrated on the reference (when there is one) and the p-value level.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Test {
    pub statistic: f64,
    pub pvalue: f64,
    pub threshold: Option<f64>,
    pub alpha: f64,
    pub drifted: bool,
}

/// Input drift per feature on the monitor's latest window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct DataDrift {
    /// When the window was last evaluated (RFC 3339); `None` before the
    /// first full window.
    pub evaluated_at: Option<String>,
    pub model_version: Option<String>,
    pub window_items: usize,
    /// Items the monitor has read since it started following the task.
    pub items_seen: u64,
    /// `sample` (the card's reference values) or `histogram` (older cards:
    /// compared with the card's 20-bin histograms, chi-squared instead of
    /// KS, coarser).
    pub method: String,
    /// The per-feature p-value level: the family-wise level over the
    /// number of features.
    pub alpha: f64,
    /// Worst first (largest statistic over its threshold).
    pub features: Vec<FeatureDrift>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct FeatureDrift {
    pub feature: String,
    /// KS statistic (or chi-squared on histograms), p-value, threshold.
    pub test: Test,
    /// Population stability index and its calibrated threshold.
    pub psi: f64,
    pub psi_threshold: Option<f64>,
    /// Share of the window outside the training range (with the margin).
    pub out_of_range_share: f64,
    /// Reference and window on the PSI bins (reference quantiles plus an
    /// overflow bin each side, the outer edges at the window's extremes).
    pub distribution: Distribution,
}

/// The model against human verdicts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Concept {
    /// Blind audits (and other blind reviews of scored items): unbiased.
    pub blind: Agreement,
    /// Items reviewed with the model's suggestion shown (uncertain items,
    /// assist): the model's hard cases, biased.
    pub assisted: Agreement,
    /// Per slot, oldest first.
    pub series: Vec<AgreementSlot>,
}

/// The model against humans on one kind of review.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Agreement {
    /// Reviewed items in the range, and those where the model agreed.
    pub reviewed: u64,
    pub agreed: u64,
    pub accuracy: Option<f64>,
    /// 95% Wilson interval of the accuracy.
    pub interval: Option<(f64, f64)>,
    /// Page-Hinkley on the model's errors, for the live version since it
    /// went live: observations, statistic, threshold, and whether it
    /// signals drift now.
    pub observations: u64,
    pub page_hinkley: f64,
    pub page_hinkley_threshold: f64,
    pub drift: bool,
    /// When it last signalled (RFC 3339).
    pub detected_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct AgreementSlot {
    pub start: String,
    pub blind_reviewed: u64,
    pub blind_agreed: u64,
    pub assisted_reviewed: u64,
    pub assisted_agreed: u64,
}

/// Accuracy without labels, beside the accuracy humans measured.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Estimates {
    /// Held-out accuracy in the model card.
    pub reference_accuracy: Option<f64>,
    /// Confidence-based performance estimation: mean calibrated confidence
    /// (isotonic on the held-out rows) over the monitor's window.
    pub cbpe: Option<f64>,
    /// Average thresholded confidence (Garg et al. 2022): share of the
    /// window above the held-out threshold.
    pub atc: Option<f64>,
    /// From blind audits in the range, with its 95% Wilson interval.
    pub realised: Option<f64>,
    pub realised_interval: Option<(f64, f64)>,
    pub realised_reviewed: u64,
    /// The estimates at each evaluation in the range, oldest first.
    pub series: Vec<EstimateSlot>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct EstimateSlot {
    pub at: String,
    pub cbpe: Option<f64>,
    pub atc: Option<f64>,
    /// Largest KS statistic over its threshold among the features.
    pub worst_drift: Option<f64>,
}

/// An alert as the report lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct AlertLine {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub severity: String,
    pub summary: String,
    pub fired_at: String,
    pub resolved_at: Option<String>,
}

/// The overview: one line per task.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct Overview {
    pub since: String,
    pub until: String,
    pub tasks: Vec<TaskLine>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize, PartialEq, Default)]
pub struct TaskLine {
    pub task: String,
    pub live_model_version: Option<String>,
    pub items: u64,
    pub items_per_minute: f64,
    pub automated_share: f64,
    pub failed_share: f64,
    pub p99_ms: Option<f64>,
    pub queue_depth: i64,
    pub drifted_features: usize,
    pub realised_accuracy: Option<f64>,
    pub estimated_accuracy: Option<f64>,
    pub open_alerts: usize,
    /// Items per slot over the range, for a sparkline.
    pub series: Vec<u64>,
}
