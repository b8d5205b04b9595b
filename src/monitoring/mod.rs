//! Monitoring: what the scoring path counts (the recorder, flushed to the
//! metrics store in minute buckets), the process's own figures, and the
//! statistics the drift monitor uses.

pub mod build;
pub mod drift;
pub mod flusher;
pub mod histogram;
pub mod process;
pub mod prometheus;
pub mod recorder;
pub mod report;
pub mod stats;

pub use flusher::{Flushed, MetricsFlusher};
pub use histogram::{Histogram, CONFIDENCE_BOUNDS, LATENCY_BOUNDS};
pub use recorder::{ItemSeen, Outcome, Recorder, StageSeconds, FLAGS, STAGES};
