//! `[[tasks]]`: the decision problems and how far each model may decide
//! alone.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::escalation::check_address;
use super::ConfigError;
use crate::domain::{AutomationLevel, OutOfRange, QueueOrder, TaskName};

/// One decision problem and how far its model may decide alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub name: TaskName,
    /// One line or a short paragraph (Markdown), on the Queues page and
    /// above the guidelines.
    #[serde(default)]
    pub description: String,
    /// How to decide (Markdown), shown on the review page.
    #[serde(default)]
    pub guidelines: String,
    /// A Markdown file of guidelines, relative to the configuration file;
    /// appended to `guidelines`.
    #[serde(default)]
    pub guidelines_file: Option<std::path::PathBuf>,
    /// What each label means (Markdown), by label: beside the label's
    /// button on the review page.
    #[serde(default)]
    pub label_definitions: BTreeMap<String, String>,
    pub automation: AutomationLevel,
    /// Confidence at or above which the model decides (`partial`).
    pub threshold: Option<f64>,
    /// Per-label thresholds; override `threshold` for their label.
    #[serde(default)]
    pub label_thresholds: BTreeMap<String, f64>,
    /// Share of model-decided items also queued blind for a human.
    #[serde(default)]
    pub audit_rate: f64,
    /// Minutes a queued item may wait for a human.
    #[serde(default = "default_sla_minutes")]
    pub sla_minutes: u32,
    /// Independent human labels an item needs.
    #[serde(default = "default_reviews_required")]
    pub reviews_required: u32,
    /// How the review queue orders items.
    #[serde(default)]
    pub queue_order: QueueOrder,
    /// The version made live when the task has no deployment yet; by default
    /// the newest version in the models directory.
    pub model_version: Option<String>,
    /// Where the final human verdict of an item is POSTed.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Signs webhook bodies (HMAC-SHA256); `VERDICT_CALLBACK_SECRET_<TASK>`
    /// (the task name upper-cased, other characters `_`) overrides it.
    #[serde(default)]
    pub callback_secret: Option<String>,
    /// Get this task's alerts (besides `mail.recipients`).
    #[serde(default)]
    pub alert_recipients: Vec<String>,
    /// An item with a feature outside the model's training range: `queue`
    /// it for a human, `flag` it, or `off`.
    #[serde(default)]
    pub out_of_range: OutOfRange,
    /// How far beyond the training range a value may go, as a share of the
    /// range's width, before it counts as outside.
    #[serde(default = "default_out_of_range_margin")]
    pub out_of_range_margin: f64,
    /// What a human review costs and what a wrong automated verdict costs
    /// (one unit, any): the threshold advisor shows the cheapest threshold.
    #[serde(default)]
    pub review_cost: Option<f64>,
    #[serde(default)]
    pub error_cost: Option<f64>,
    /// What a candidate version must show before it is promoted, and the
    /// limits past which verdict withdraws it by itself.
    #[serde(default)]
    pub candidate: CandidateRules,
}

/// `[tasks.candidate]`: the guard rails of a candidate version.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateRules {
    /// Items the candidate must have scored (shadow or canary) before it
    /// may be promoted without `force`.
    pub min_items: u64,
    /// Of those, items with a human verdict to compare it with.
    pub min_audits: u64,
    /// Withdrawn when the 99 % lower bound of its share of failed forward
    /// passes exceeds this.
    pub max_error_rate: f64,
    /// Withdrawn when the 99 % lower bound of its disagreement with human
    /// verdicts exceeds this.
    pub max_disagreement: f64,
    /// Withdrawn when its forward pass's p99 per item exceeds this many
    /// milliseconds (over at least `min_latency_items` items).
    pub max_p99_ms: f64,
    /// The fewest items the latency limit is judged on.
    pub min_latency_items: u64,
}

impl Default for CandidateRules {
    fn default() -> Self {
        CandidateRules {
            min_items: 1000,
            min_audits: 50,
            max_error_rate: 0.01,
            max_disagreement: 0.25,
            max_p99_ms: 50.0,
            min_latency_items: 200,
        }
    }
}

fn default_out_of_range_margin() -> f64 {
    0.1
}

impl TaskConfig {
    /// Reads `guidelines_file` (relative to `dir`, the configuration file's
    /// directory) into `guidelines`; `index` names the task in errors.
    pub(super) fn read_guidelines(
        &mut self,
        dir: &std::path::Path,
        index: usize,
    ) -> Result<(), ConfigError> {
        let Some(file) = &self.guidelines_file else {
            return Ok(());
        };
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::at(
                format!("tasks[{index}].guidelines_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        if !self.guidelines.trim().is_empty() {
            self.guidelines.push_str("\n\n");
        }
        self.guidelines.push_str(&text);
        Ok(())
    }
}

/// The environment variable holding a task's webhook secret.
pub fn callback_secret_var(task: &str) -> String {
    let upper: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VERDICT_CALLBACK_SECRET_{upper}")
}

fn default_sla_minutes() -> u32 {
    60
}

fn default_reviews_required() -> u32 {
    1
}

/// The demo task's guidelines (the data set is a teaching set: these
/// describe it, they are not medical advice).
const DEMO_GUIDELINES: &str = "\
Each item is one fine-needle aspirate of a breast mass, described by 30 \
measurements of its cell nuclei: the **mean**, the **error** (standard error) \
and the **worst** (mean of the three largest) of ten features.

- In this data set the **worst** radius, concave points and perimeter \
  separate the two labels most clearly.
- A value marked *outside* is beyond anything the model was trained on; \
  its suggestion is not to be trusted there.
- Unsure? Skip (`s`): the item goes to another reviewer.";

/// Without a file: the demo task.
pub(super) fn default_tasks() -> Vec<TaskConfig> {
    vec![TaskConfig {
        name: TaskName::parse("tumor-triage").expect("valid demo task name"),
        description:
            "Breast cancer fine-needle aspirates: malignant or benign (Wisconsin diagnostic data)"
                .into(),
        guidelines: DEMO_GUIDELINES.into(),
        guidelines_file: None,
        label_definitions: BTreeMap::from([
            (
                "malignant".to_string(),
                "The cells show cancer: large, irregular nuclei (high *radius*, *concavity*, *concave points*).".to_string(),
            ),
            (
                "benign".to_string(),
                "No cancer: small, smooth, regular nuclei.".to_string(),
            ),
        ]),
        automation: AutomationLevel::Partial,
        threshold: Some(0.95),
        label_thresholds: BTreeMap::new(),
        audit_rate: 0.02,
        sla_minutes: 60,
        reviews_required: 1,
        queue_order: Default::default(),
        model_version: None,
        callback_url: None,
        callback_secret: None,
        alert_recipients: Vec::new(),
        out_of_range: OutOfRange::Queue,
        out_of_range_margin: default_out_of_range_margin(),
        review_cost: None,
        error_cost: None,
        candidate: CandidateRules::default(),
    }]
}

/// At least one task, no name twice, and each task valid.
pub(super) fn validate_tasks(tasks: &[TaskConfig]) -> Result<(), ConfigError> {
    if tasks.is_empty() {
        return Err(ConfigError::at("tasks", "at least one task is needed"));
    }
    let mut seen = HashSet::new();
    for (i, task) in tasks.iter().enumerate() {
        if !seen.insert(task.name.as_str()) {
            return Err(ConfigError::at(
                format!("tasks[{i}].name"),
                format!("task {:?} is defined twice", task.name.as_str()),
            ));
        }
        task.validate(i)?;
    }
    Ok(())
}

impl TaskConfig {
    /// Checks the task at `index` of `tasks` (the index names it in errors).
    pub fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let key = |field: &str| format!("tasks[{index}].{field}");
        self.validate_thresholds(&key)?;
        if !(self.out_of_range_margin.is_finite() && self.out_of_range_margin >= 0.0) {
            return Err(ConfigError::at(
                key("out_of_range_margin"),
                format!("must be 0 or more, got {}", self.out_of_range_margin),
            ));
        }
        for (field, cost) in [
            ("review_cost", self.review_cost),
            ("error_cost", self.error_cost),
        ] {
            if cost.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
                return Err(ConfigError::at(key(field), "must be a number, 0 or more"));
            }
        }
        for (field, value) in [
            ("candidate.max_error_rate", self.candidate.max_error_rate),
            (
                "candidate.max_disagreement",
                self.candidate.max_disagreement,
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::at(
                    key(field),
                    format!("must be between 0 and 1, got {value}"),
                ));
            }
        }
        if !(self.candidate.max_p99_ms.is_finite() && self.candidate.max_p99_ms > 0.0) {
            return Err(ConfigError::at(
                key("candidate.max_p99_ms"),
                "must be a number above 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.audit_rate) {
            return Err(ConfigError::at(
                key("audit_rate"),
                format!("must be between 0 and 1, got {}", self.audit_rate),
            ));
        }
        if self.sla_minutes == 0 {
            return Err(ConfigError::at(key("sla_minutes"), "must be at least 1"));
        }
        if self.reviews_required == 0 {
            return Err(ConfigError::at(
                key("reviews_required"),
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.callback_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::at(
                    key("callback_url"),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        for address in &self.alert_recipients {
            check_address(&key("alert_recipients"), address)?;
        }
        Ok(())
    }

    /// Every threshold in 0..=1, and `partial` has at least one.
    fn validate_thresholds(&self, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let labelled = self
            .label_thresholds
            .iter()
            .map(|(l, v)| (l.as_str(), Some(*v)));
        for (label, value) in std::iter::once(("", self.threshold)).chain(labelled) {
            if let Some(value) = value {
                if !(0.0..=1.0).contains(&value) {
                    let field = if label.is_empty() {
                        key("threshold")
                    } else {
                        key(&format!("label_thresholds.{label}"))
                    };
                    return Err(ConfigError::at(
                        field,
                        format!("must be between 0 and 1, got {value}"),
                    ));
                }
            }
        }
        if self.automation == AutomationLevel::Partial
            && self.threshold.is_none()
            && self.label_thresholds.is_empty()
        {
            return Err(ConfigError::at(
                key("threshold"),
                "automation = \"partial\" needs a threshold or label_thresholds",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn candidate_rules_default_and_a_bad_limit_is_named() {
        let base = "[[tasks]]\nname = \"t\"\nautomation = \"partial\"\nthreshold = 0.9\n";
        let settings = Settings::from_toml(base).unwrap();
        assert_eq!(settings.tasks[0].candidate.min_items, 1000);
        let settings =
            Settings::from_toml(&format!("{base}[tasks.candidate]\nmin_audits = 5\n")).unwrap();
        assert_eq!(settings.tasks[0].candidate.min_audits, 5);
        assert_eq!(settings.tasks[0].candidate.max_p99_ms, 50.0);
        let e = Settings::from_toml(&format!("{base}[tasks.candidate]\nmax_disagreement = 2\n"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            e.0.starts_with("tasks[0].candidate.max_disagreement:"),
            "{e}"
        );
        assert!(Settings::from_toml(&format!("{base}[tasks.candidate]\nmin_itmes = 5\n")).is_err());
    }

    #[test]
    fn out_of_range_threshold_is_named() {
        let e = Settings::from_toml(
            "[[tasks]]\nname = \"t\"\nautomation = \"partial\"\nthreshold = 1.5\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(e.0.starts_with("tasks[0].threshold:"), "{e}");
    }

    #[test]
    fn partial_without_threshold_is_refused() {
        let e = Settings::from_toml("[[tasks]]\nname = \"t\"\nautomation = \"partial\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.contains("tasks[0].threshold"), "{e}");
    }

    #[test]
    fn bad_automation_level_is_named() {
        let e =
            Settings::from_toml("[[tasks]]\nname = \"t\"\nautomation = \"mostly\"\n").unwrap_err();
        assert!(e.0.contains("automation") || e.0.contains("mostly"), "{e}");
    }
}
