//! Every enum of the model, each stored as the text beside its variant.

use crate::text_enum;

text_enum! {
    /// How far the model may decide alone (DESIGN.md, "Automation level").
    pub enum AutomationLevel {
        /// Every item is queued; no model runs.
        HumanOnly => "human_only",
        /// The model scores and is recorded; every item is queued, blind.
        Shadow => "shadow",
        /// Every item is queued; the reviewer sees the suggestion.
        Assist => "assist",
        /// The model decides when its confidence clears the threshold.
        Partial => "partial",
        /// The model decides every item.
        Full => "full",
    }
}

impl AutomationLevel {
    /// Whether items of this level are scored at all.
    pub fn runs_model(self) -> bool {
        self != AutomationLevel::HumanOnly
    }
}

text_enum! {
    /// Why an item waits for a human.
    pub enum QueueReason {
        HumanOnly => "human_only",
        Shadow => "shadow",
        Assist => "assist",
        LowConfidence => "low_confidence",
        ModelError => "model_error",
        /// A feature is outside the model's training range.
        OutOfDistribution => "out_of_distribution",
        /// An admin sent the item back for review.
        Reopened => "reopened",
    }
}

text_enum! {
    /// What happens to an item with a feature outside the model's training
    /// range (by more than the task's margin).
    #[derive(Default)]
    pub enum OutOfRange {
        /// A human decides (`reason: out_of_distribution`).
        #[default]
        Queue => "queue",
        /// The policy decides as usual; the item is marked.
        Flag => "flag",
        /// Not checked.
        Off => "off",
    }
}

text_enum! {
    /// The order in which a task's queue hands out items.
    #[derive(Default)]
    pub enum QueueOrder {
        /// Earliest SLA deadline first, then the model's least certain (the
        /// queue index's order: fast at any depth).
        #[default]
        DeadlineThenUncertainty => "deadline_then_uncertainty",
        /// The model's least certain first, then the deadline.
        UncertaintyThenDeadline => "uncertainty_then_deadline",
        /// First come, first served.
        OldestFirst => "oldest_first",
    }
}

text_enum! {
    /// Whether an item's verdict is final.
    pub enum ItemStatus {
        /// A human decides.
        Queued => "queued",
        /// The verdict is final.
        Decided => "decided",
    }
}

text_enum! {
    /// Where an item stands with the reviewers.
    pub enum ReviewState {
        /// No human looks at it.
        None => "none",
        /// Waiting for a reviewer (an uncertain item or a blind audit).
        Pending => "pending",
        /// Reviewed as much as it needs.
        Done => "done",
        /// Reviewers disagreed, or one flagged it: an admin decides.
        Adjudication => "adjudication",
    }
}

text_enum! {
    /// Which queue to claim from.
    pub enum QueueKind {
        /// Items waiting for a reviewer.
        Review => "review",
        /// Ties between reviewers and flagged items, for admins.
        Adjudication => "adjudication",
    }
}

impl QueueKind {
    /// The review state of the items this queue hands out.
    pub fn state(self) -> ReviewState {
        match self {
            QueueKind::Review => ReviewState::Pending,
            QueueKind::Adjudication => ReviewState::Adjudication,
        }
    }
}

text_enum! {
    /// Whose verdict it is.
    pub enum VerdictSource {
        Model => "model",
        Human => "human",
    }
}

text_enum! {
    /// How a verdict was reached.
    pub enum VerdictBasis {
        /// The model decided (`source` model).
        Model => "model",
        /// One reviewer's label.
        Single => "single",
        /// The majority of several reviewers.
        Consensus => "consensus",
        /// An admin settled a tie or a flagged item.
        Adjudication => "adjudication",
        /// An admin overruled the verdict after it was given.
        Correction => "correction",
    }
}

text_enum! {
    /// What an outbox message is.
    pub enum OutboxKind {
        Email => "email",
        Webhook => "webhook",
    }
}

text_enum! {
    /// Where an outbox message stands.
    pub enum OutboxStatus {
        /// Waiting to be sent (or to be retried).
        Pending => "pending",
        Sent => "sent",
        /// Given up on after its attempts; an admin may retry it.
        Dead => "dead",
    }
}

text_enum! {
    /// What an alert is about.
    pub enum AlertKind {
        /// An item waited past its task's SLA.
        SlaBreach => "sla_breach",
        /// More items queued than the task's limit.
        Backlog => "backlog",
        /// The oldest queued item is older than the limit.
        OldestItem => "oldest_item",
        /// Outbox messages given up on.
        DeadMessages => "dead_messages",
        /// Too many items the model failed on.
        ErrorRate => "error_rate",
        /// An input feature's distribution moved away from the reference
        /// (subject: the feature).
        DataDrift => "data_drift",
        /// The model's outputs moved: label mix, confidence, repeats.
        OutputDrift => "output_drift",
        /// The model's errors against human verdicts rose.
        ConceptDrift => "concept_drift",
        /// The share of items automated fell.
        AutomationDrop => "automation_drop",
        /// The label-free accuracy estimate fell.
        EstimatedAccuracyDrop => "estimated_accuracy_drop",
        /// Scoring latency's 99th percentile is over the limit.
        P99Latency => "p99_latency",
        /// A candidate model version crossed a limit and was withdrawn
        /// (subject: the version).
        CandidateWithdrawn => "candidate_withdrawn",
    }
}

text_enum! {
    /// How a candidate model version runs beside the live one.
    pub enum CandidateMode {
        /// It scores every item; nothing uses its predictions.
        Shadow => "shadow",
        /// It decides the items a stable hash of their id sends it (a
        /// percentage); both versions score every item.
        Canary => "canary",
    }
}

text_enum! {
    /// Where a batch scoring job is.
    pub enum JobState {
        /// Uploaded; no instance has taken it yet.
        Queued => "queued",
        /// An instance scores it (or held it and died: the next claim
        /// resumes it).
        Running => "running",
        /// Every row scored; the results can be downloaded.
        Done => "done",
        /// A row was refused (or the task is gone); see the error.
        Failed => "failed",
    }
}

text_enum! {
    /// How urgent an alert is.
    pub enum Severity {
        Warning => "warning",
        Critical => "critical",
    }
}

text_enum! {
    /// What a user may do; enforced on the server.
    pub enum Role {
        /// Works the queues of the tasks they are given.
        Reviewer => "reviewer",
        /// Everything, on every task.
        Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for level in AutomationLevel::ALL {
            assert_eq!(AutomationLevel::parse(level.as_str()), Some(*level));
        }
        for state in ReviewState::ALL {
            assert_eq!(ReviewState::parse(state.as_str()), Some(*state));
        }
        assert_eq!(OutboxStatus::parse("nope"), None);
        assert_eq!(QueueOrder::default(), QueueOrder::DeadlineThenUncertainty);
    }

    #[test]
    fn serde_uses_the_stored_text() {
        assert_eq!(
            serde_json::to_string(&QueueReason::LowConfidence).unwrap(),
            "\"low_confidence\""
        );
        let level: AutomationLevel = serde_json::from_str("\"partial\"").unwrap();
        assert_eq!(level, AutomationLevel::Partial);
        let err = serde_json::from_str::<AutomationLevel>("\"sometimes\"").unwrap_err();
        assert!(err.to_string().contains("expected one of"), "{err}");
    }
}

text_enum! {
    /// What a row of the metrics store counts.
    pub enum MetricSeries {
        /// Items by outcome: `automated`, `queued`, `failed` (queued
        /// because the model failed); each item has exactly one.
        Items => "items",
        /// Items marked besides their outcome: `audited`,
        /// `out_of_distribution`.
        Flags => "flags",
        /// Time an item spent in a stage, a latency histogram.
        Stage => "stage",
        /// Predicted labels.
        Label => "label",
        /// The model's confidence, a histogram over [0, 1].
        Confidence => "confidence",
        /// Requests refused, by error code.
        Rejected => "rejected",
        /// Human labels against the model's label for the item, counted
        /// when a reviewer labels: `blind_agreed`, `blind_disagreed`,
        /// `assisted_agreed`, `assisted_disagreed` (an undone label
        /// subtracts its count).
        Agreement => "agreement",
    }
}
