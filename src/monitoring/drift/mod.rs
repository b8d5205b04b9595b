//! Drift: the reference a model version is judged against, the window of
//! recent items and its evaluation (data and output drift, the label-free
//! accuracy estimates), the concept-drift streams from human verdicts, and
//! the job that runs them ([`DriftMonitor`]).

pub mod concept;
pub mod evaluate;
pub mod monitor;
pub mod reference;

pub use evaluate::{evaluate, Evaluation, Levels, WindowItem};
pub use monitor::{DriftMonitor, MonitorPass, MonitorState, CATCH_UP};
pub use reference::{Method, Reference, ReferenceSettings};

#[cfg(test)]
mod tests;
