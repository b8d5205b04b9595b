//! The automation policy: given the task's automation level and the model's
//! outcome, does the model decide or does a human? A pure function.

use std::collections::BTreeMap;

use crate::domain::{AutomationLevel, OutOfRange, QueueReason};

/// A task's policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub level: AutomationLevel,
    pub threshold: Option<f64>,
    pub label_thresholds: BTreeMap<String, f64>,
    pub audit_rate: f64,
    /// What an item outside the model's training range gets.
    pub out_of_range: OutOfRange,
}

/// What the model said about one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelOutcome<'a> {
    /// No model ran (human_only).
    NotRun,
    /// The model is missing or failed.
    Failed,
    Scored {
        label: &'a str,
        confidence: f64,
        /// A feature is outside the model's training range.
        outside: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The model's label is the verdict. With `audit` the item is also queued
    /// blind so a human labels it for measurement.
    Automate { audit: bool },
    /// A human decides; `blind` hides the model's prediction from the reviewer.
    Queue { reason: QueueReason, blind: bool },
}

/// Decides one item. `audit_draw` is uniform in [0, 1): the item is audited
/// when it falls below the audit rate.
pub fn decide(policy: &Policy, outcome: ModelOutcome<'_>, audit_draw: f64) -> Decision {
    let scored = match outcome {
        ModelOutcome::Scored {
            label, confidence, ..
        } if confidence.is_finite() => Some((label, confidence)),
        _ => None,
    };
    let outside = matches!(outcome, ModelOutcome::Scored { outside: true, .. })
        && policy.out_of_range == OutOfRange::Queue;
    let queue = |reason, blind| Decision::Queue { reason, blind };
    match (policy.level, scored) {
        (AutomationLevel::HumanOnly, _) => queue(QueueReason::HumanOnly, true),
        (AutomationLevel::Shadow, _) => queue(QueueReason::Shadow, true),
        (_, None) => queue(QueueReason::ModelError, true),
        (AutomationLevel::Assist, Some(_)) => queue(QueueReason::Assist, false),
        // The model was never shown such an input: its confidence means
        // nothing there.
        (AutomationLevel::Partial | AutomationLevel::Full, Some(_)) if outside => {
            queue(QueueReason::OutOfDistribution, false)
        }
        (AutomationLevel::Full, Some(_)) => Decision::Automate {
            audit: audit_draw < policy.audit_rate,
        },
        (AutomationLevel::Partial, Some((label, confidence))) => {
            let threshold = policy
                .label_thresholds
                .get(label)
                .copied()
                .or(policy.threshold);
            match threshold {
                Some(t) if confidence >= t => Decision::Automate {
                    audit: audit_draw < policy.audit_rate,
                },
                _ => queue(QueueReason::LowConfidence, false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(level: AutomationLevel) -> Policy {
        Policy {
            level,
            threshold: Some(0.9),
            label_thresholds: BTreeMap::new(),
            audit_rate: 0.0,
            out_of_range: OutOfRange::Queue,
        }
    }

    const SURE: ModelOutcome<'static> = ModelOutcome::Scored {
        label: "benign",
        confidence: 0.99,
        outside: false,
    };
    const UNSURE: ModelOutcome<'static> = ModelOutcome::Scored {
        label: "benign",
        confidence: 0.6,
        outside: false,
    };
    const SURE_BUT_OUTSIDE: ModelOutcome<'static> = ModelOutcome::Scored {
        label: "benign",
        confidence: 1.0,
        outside: true,
    };

    #[test]
    fn an_item_outside_the_training_range_is_queued_however_sure_the_model_is() {
        for level in [AutomationLevel::Partial, AutomationLevel::Full] {
            let mut p = policy(level);
            assert_eq!(
                decide(&p, SURE_BUT_OUTSIDE, 0.5),
                Decision::Queue {
                    reason: QueueReason::OutOfDistribution,
                    blind: false
                }
            );
            // Flagged or unchecked, the policy decides as usual.
            for setting in [OutOfRange::Flag, OutOfRange::Off] {
                p.out_of_range = setting;
                assert_eq!(
                    decide(&p, SURE_BUT_OUTSIDE, 0.5),
                    Decision::Automate { audit: false }
                );
            }
        }
        // Levels that queue everything keep their own reason.
        let p = policy(AutomationLevel::Assist);
        assert_eq!(
            decide(&p, SURE_BUT_OUTSIDE, 0.5),
            Decision::Queue {
                reason: QueueReason::Assist,
                blind: false
            }
        );
    }

    #[test]
    fn human_only_queues_everything_blind() {
        let p = policy(AutomationLevel::HumanOnly);
        for outcome in [ModelOutcome::NotRun, SURE, ModelOutcome::Failed] {
            assert_eq!(
                decide(&p, outcome, 0.5),
                Decision::Queue {
                    reason: QueueReason::HumanOnly,
                    blind: true
                }
            );
        }
    }

    #[test]
    fn shadow_queues_even_a_sure_prediction_and_hides_it() {
        let p = policy(AutomationLevel::Shadow);
        assert_eq!(
            decide(&p, SURE, 0.5),
            Decision::Queue {
                reason: QueueReason::Shadow,
                blind: true
            }
        );
    }

    #[test]
    fn assist_queues_with_the_suggestion_shown() {
        let p = policy(AutomationLevel::Assist);
        assert_eq!(
            decide(&p, SURE, 0.5),
            Decision::Queue {
                reason: QueueReason::Assist,
                blind: false
            }
        );
        assert_eq!(
            decide(&p, ModelOutcome::Failed, 0.5),
            Decision::Queue {
                reason: QueueReason::ModelError,
                blind: true
            }
        );
    }

    #[test]
    fn partial_automates_only_above_the_threshold() {
        let p = policy(AutomationLevel::Partial);
        assert_eq!(decide(&p, SURE, 0.5), Decision::Automate { audit: false });
        assert_eq!(
            decide(&p, UNSURE, 0.5),
            Decision::Queue {
                reason: QueueReason::LowConfidence,
                blind: false
            }
        );
        // The threshold itself clears.
        let exact = ModelOutcome::Scored {
            label: "benign",
            confidence: 0.9,
            outside: false,
        };
        assert_eq!(decide(&p, exact, 0.5), Decision::Automate { audit: false });
    }

    #[test]
    fn partial_per_label_thresholds_override_the_global_one() {
        let mut p = policy(AutomationLevel::Partial);
        p.label_thresholds.insert("malignant".into(), 0.999);
        let malignant = ModelOutcome::Scored {
            label: "malignant",
            confidence: 0.99,
            outside: false,
        };
        assert!(matches!(decide(&p, malignant, 0.5), Decision::Queue { .. }));
        assert_eq!(decide(&p, SURE, 0.5), Decision::Automate { audit: false });
        // A label with no threshold at all is never automated.
        p.threshold = None;
        assert!(matches!(decide(&p, SURE, 0.5), Decision::Queue { .. }));
    }

    #[test]
    fn full_automates_any_prediction() {
        let p = policy(AutomationLevel::Full);
        assert_eq!(decide(&p, UNSURE, 0.5), Decision::Automate { audit: false });
    }

    #[test]
    fn audit_rate_queues_a_share_of_automated_items() {
        for level in [AutomationLevel::Partial, AutomationLevel::Full] {
            let mut p = policy(level);
            p.audit_rate = 0.02;
            assert_eq!(decide(&p, SURE, 0.01), Decision::Automate { audit: true });
            assert_eq!(decide(&p, SURE, 0.02), Decision::Automate { audit: false });
            assert_eq!(decide(&p, SURE, 0.9), Decision::Automate { audit: false });
        }
        // A rate of 1 audits everything, a rate of 0 nothing.
        let mut p = policy(AutomationLevel::Full);
        p.audit_rate = 1.0;
        assert_eq!(
            decide(&p, SURE, 0.999_999),
            Decision::Automate { audit: true }
        );
        p.audit_rate = 0.0;
        assert_eq!(decide(&p, SURE, 0.0), Decision::Automate { audit: false });
    }

    #[test]
    fn model_failure_or_nan_fails_safe_to_the_queue() {
        let nan = ModelOutcome::Scored {
            label: "benign",
            confidence: f64::NAN,
            outside: false,
        };
        for level in [AutomationLevel::Partial, AutomationLevel::Full] {
            let p = policy(level);
            for outcome in [ModelOutcome::Failed, ModelOutcome::NotRun, nan] {
                assert_eq!(
                    decide(&p, outcome, 0.5),
                    Decision::Queue {
                        reason: QueueReason::ModelError,
                        blind: true
                    }
                );
            }
        }
    }
}
