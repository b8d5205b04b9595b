//! Concept drift: the model's errors against human verdicts as a stream,
//! one Page-Hinkley detector on blind reviews (unbiased) and one on the
//! reviews that showed the model's suggestion (its hard cases), for the
//! live model version since it went live.

use std::collections::VecDeque;

use crate::domain::{rfc3339, Timestamp};
use crate::monitoring::report::Agreement;
use crate::monitoring::stats::{wilson, PageHinkley, PageHinkleyParams};
use crate::store::monitoring::Reviewed;

/// Recent reviews each stream keeps for its accuracy.
const RECENT: usize = 200;

/// One kind of review's error stream.
#[derive(Debug, Clone)]
pub struct Stream {
    detector: PageHinkley,
    threshold: f64,
    observations: u64,
    /// Observations since the last detection.
    since_detection: Option<u64>,
    detected_at: Option<Timestamp>,
    /// Whether the model agreed, most recent last.
    recent: VecDeque<bool>,
}

impl Stream {
    pub fn new(params: PageHinkleyParams) -> Stream {
        Stream {
            detector: PageHinkley::new(params),
            threshold: params.threshold,
            observations: 0,
            since_detection: None,
            detected_at: None,
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    /// Feeds one review; true when the detector fires at it.
    pub fn observe(&mut self, agreed: bool, at: Timestamp) -> bool {
        self.observations += 1;
        self.since_detection = self.since_detection.map(|n| n + 1);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(agreed);
        let fired = self.detector.update(if agreed { 0.0 } else { 1.0 });
        if fired {
            self.since_detection = Some(0);
            self.detected_at = Some(at);
        }
        fired
    }

    /// Whether it detected drift within the last `hold` observations.
    pub fn signalling(&self, hold: u64) -> bool {
        self.since_detection.is_some_and(|n| n < hold)
    }

    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// The stream as the report shows it: accuracy over the recent
    /// reviews with its Wilson interval, and the detector.
    pub fn agreement(&self, hold: u64) -> Agreement {
        let reviewed = self.recent.len() as u64;
        let agreed = self.recent.iter().filter(|&&a| a).count() as u64;
        Agreement {
            reviewed,
            agreed,
            accuracy: (reviewed > 0).then(|| agreed as f64 / reviewed as f64),
            interval: wilson(agreed, reviewed, 0.95),
            observations: self.observations,
            page_hinkley: self.detector.statistic(),
            page_hinkley_threshold: self.threshold,
            drift: self.signalling(hold),
            detected_at: self.detected_at.as_ref().map(rfc3339),
        }
    }
}

/// Both streams of one model version.
#[derive(Debug, Clone)]
pub struct ConceptState {
    pub version: String,
    pub blind: Stream,
    pub assisted: Stream,
}

impl ConceptState {
    pub fn new(version: &str, params: PageHinkleyParams) -> ConceptState {
        ConceptState {
            version: version.to_string(),
            blind: Stream::new(params),
            assisted: Stream::new(params),
        }
    }

    /// Feeds a human verdict of an item this version predicted; others
    /// (another version, no prediction) are not the model's errors.
    pub fn observe(&mut self, r: &Reviewed) {
        let Some(predicted) = &r.predicted else {
            return;
        };
        if r.model_version.as_deref() != Some(self.version.as_str()) {
            return;
        }
        let agreed = *predicted == r.human;
        let stream = if r.blind {
            &mut self.blind
        } else {
            &mut self.assisted
        };
        stream.observe(agreed, r.decided_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(agreed: bool, blind: bool) -> Reviewed {
        Reviewed {
            item_id: "x".into(),
            reviewer: "rita".into(),
            decided_at: crate::domain::now(),
            human: "a".into(),
            blind,
            audit: blind,
            model_version: Some("v1".into()),
            predicted: Some(if agreed { "a" } else { "b" }.into()),
        }
    }

    #[test]
    fn a_rise_in_blind_errors_is_detected_and_held_then_released() {
        let mut s = ConceptState::new("v1", PageHinkleyParams::default());
        // 2% errors for 300 reviews: quiet.
        for i in 0..300 {
            s.observe(&review(i % 50 != 0, true));
        }
        assert!(!s.blind.signalling(100), "{:?}", s.blind.agreement(100));
        // Then a third wrong: detected within a few dozen reviews.
        let mut at = None;
        for i in 0..300 {
            s.observe(&review(i % 3 != 0, true));
            if at.is_none() && s.blind.signalling(100) {
                at = Some(i);
            }
        }
        let at = at.expect("detected");
        assert!(at < 100, "detected after {at} reviews");
        assert_eq!(s.assisted.observations(), 0, "blind and assisted apart");
    }

    #[test]
    fn another_versions_reviews_do_not_count() {
        let mut s = ConceptState::new("v2", PageHinkleyParams::default());
        s.observe(&review(false, true));
        assert_eq!(s.blind.observations(), 0);
    }
}
