//! Simulated reviewers: each signs in to the web UI, opens the review page,
//! reads the item id and the CSRF token from it and posts the label form,
//! answering the item's true label (a wrong one with probability
//! `--reviewer-error`). Also the accounts they use, made through the admin
//! page when `--admin` is given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use super::data::{mix, unit, Scenario};
use super::web::{self, Browser};
use super::{inc, Counters, Stop};

/// `--admin USER:PASSWORD`: an admin account of the web UI.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
    pub password: String,
}

impl std::str::FromStr for Admin {
    type Err = String;

    fn from_str(s: &str) -> Result<Admin, String> {
        match s.split_once(':') {
            Some((name, password)) if !name.is_empty() && !password.is_empty() => Ok(Admin {
                name: name.to_string(),
                password: password.to_string(),
            }),
            _ => Err("expected USER:PASSWORD".into()),
        }
    }
}

/// The names of `count` simulated reviewers.
pub fn names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("sim-reviewer-{i}")).collect()
}

/// A user as the admin Users page lists them.
#[derive(Debug, PartialEq)]
struct Listed {
    role: String,
    tasks: Vec<String>,
    disabled: bool,
}

/// The Users page's table: name → role, tasks, state.
fn listed_users(html: &str) -> HashMap<String, Listed> {
    web::table_rows(html)
        .into_iter()
        .filter(|cells| cells.len() >= 4)
        .map(|cells| {
            let tasks = cells[2].split(',').map(|t| t.trim().to_string()).collect();
            (
                cells[0].clone(),
                Listed {
                    role: cells[1].clone(),
                    tasks,
                    disabled: cells[3] == "disabled",
                },
            )
        })
        .collect()
}

/// Makes sure every reviewer account exists, is enabled and may work
/// `task`, through the admin Users page (`/admin/users`, CSRF): missing
/// accounts are added with `password`, disabled ones enabled. An existing
/// account without the task is refused (the page cannot grant tasks).
/// Returns what was done, one line each.
pub async fn ensure_accounts(
    base: &str,
    admin: &Admin,
    names: &[String],
    password: &str,
    task: &str,
) -> anyhow::Result<Vec<String>> {
    let mut browser = Browser::new(base)?;
    browser
        .sign_in(&admin.name, &admin.password)
        .await
        .context("--admin")?;
    let page = browser.get("/admin/users").await?;
    if page.status != 200 {
        bail!(
            "--admin: {:?} cannot open the Users page (it answered {}); is the account an admin?",
            admin.name,
            page.status
        );
    }
    let csrf = web::input_value(&page.body, "csrf").context("the Users page has no CSRF token")?;
    let users = listed_users(&page.body);
    let mut done = Vec::new();
    for name in names {
        match users.get(name) {
            None => {
                let answer = browser
                    .post_form(
                        "/admin/users",
                        &[
                            ("csrf", csrf.as_str()),
                            ("name", name.as_str()),
                            ("role", "reviewer"),
                            ("tasks", task),
                            ("password", password),
                        ],
                    )
                    .await?;
                if !answer.redirects_to("/admin/users") {
                    let why = web::alert(&answer.body)
                        .unwrap_or_else(|| format!("the server answered {}", answer.status));
                    bail!("cannot add the reviewer {name:?}: {why}");
                }
                done.push(format!("added reviewer {name} (task {task})"));
            }
            Some(user) => {
                if user.role != "admin" && !user.tasks.iter().any(|t| t == task) {
                    bail!(
                        "the user {name:?} exists but may not work {task:?} (tasks: {}); \
                         remove the name clash or use a database where it can",
                        user.tasks.join(", ")
                    );
                }
                if user.disabled {
                    let answer = browser
                        .post_form(
                            &format!("/admin/users/{name}/enable"),
                            &[("csrf", csrf.as_str())],
                        )
                        .await?;
                    if !answer.redirects_to("/admin/users") {
                        bail!(
                            "cannot enable {name:?}: the server answered {}",
                            answer.status
                        );
                    }
                    done.push(format!("enabled reviewer {name}"));
                }
            }
        }
    }
    Ok(done)
}

/// What the review page shows.
#[derive(Debug, PartialEq)]
pub enum ReviewPage {
    /// An item claimed for this reviewer.
    Item {
        id: String,
        csrf: String,
        labels: Vec<String>,
    },
    /// Nothing waits for this reviewer.
    Empty,
    /// Something else (not the review page of this task).
    Unexpected,
}

/// Reads the review page of `task`: the item id from the label form's
/// action (`/review/{task}/{id}/label`), the session's CSRF token and the
/// label buttons.
pub fn read_review_page(html: &str, task: &str) -> ReviewPage {
    let prefix = format!("/review/{task}/");
    let id = web::form_actions(html).into_iter().find_map(|action| {
        action
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("/label"))
            .map(String::from)
    });
    match (id, web::input_value(html, "csrf")) {
        (Some(id), Some(csrf)) => ReviewPage::Item {
            id,
            csrf,
            labels: web::button_values(html, "label"),
        },
        (None, Some(_)) if html.contains("the queue is empty") => ReviewPage::Empty,
        _ => ReviewPage::Unexpected,
    }
}

/// The label reviewer `reviewer` (0-based) gives item `n`: its true label,
/// or with probability `error` another of `offered` (chosen by a hash of
/// the seed, the item and the reviewer, so a rerun answers alike).
pub fn answer<'a>(
    scenario: &'a Scenario,
    offered: &'a [String],
    n: u64,
    reviewer: usize,
    error: f64,
) -> Option<(&'a str, bool)> {
    let truth = scenario.true_label_of(n);
    if !offered.iter().any(|l| l == truth) {
        return None;
    }
    let h = mix(mix(scenario.seed) ^ mix(n) ^ mix(0x7265_7669_6577 + reviewer as u64));
    let others: Vec<&String> = offered.iter().filter(|l| *l != truth).collect();
    if !others.is_empty() && unit(h) < error {
        let pick = (mix(h) % others.len() as u64) as usize;
        return Some((others[pick].as_str(), true));
    }
    Some((truth, false))
}

/// One simulated reviewer.
pub struct Reviewer {
    pub index: usize,
    pub name: String,
    pub password: String,
    pub browser: Browser,
    pub task: String,
    /// Item ids of this run: `{prefix}{n}`.
    pub prefix: String,
    pub items: u64,
    pub scenario: Arc<Scenario>,
    pub error_rate: f64,
    /// Mean seconds spent on an item before the label is posted.
    pub think: f64,
    pub counters: Arc<Counters>,
}

/// How long a reviewer waits before looking at an empty queue again.
const IDLE: Duration = Duration::from_millis(250);
/// Foreign items in a row, after submission ended, that make a reviewer
/// stop: the queue holds only items this run did not send.
const FOREIGN_IN_A_ROW: u32 = 3;

impl Reviewer {
    /// Works the queue until `stop` is cancelled, or once submission is
    /// over (`stop.submitted()`): with `drain`, until the queue is empty
    /// or `drain` has passed since; without, at once.
    pub async fn run(mut self, stop: Stop, drain: Option<Duration>) {
        let review_path = format!("/review/{}", self.task);
        let mut foreign_in_a_row = 0;
        let mut failures_in_a_row = 0u32;
        loop {
            if stop.cancelled() {
                return;
            }
            if let Some(submitted) = stop.submitted_at() {
                match drain {
                    None => return,
                    Some(limit) if submitted.elapsed() >= limit => return,
                    Some(_) => {}
                }
            }
            if failures_in_a_row >= 20 {
                self.error(
                    &stop,
                    format!("{}: gave up after 20 failures in a row", self.name),
                );
                return;
            }
            let page = match self.browser.get(&review_path).await {
                Ok(page) => page,
                Err(e) => {
                    self.error(&stop, format!("review page: {}", transport(&e)));
                    failures_in_a_row += 1;
                    stop.sleep(backoff(failures_in_a_row)).await;
                    continue;
                }
            };
            match page.status {
                200 => {}
                303 if page.redirects_to("/sign-in") => {
                    // The session ended: sign in again.
                    if let Err(e) = self.browser.sign_in(&self.name, &self.password).await {
                        self.error(&stop, format!("{e:#}"));
                        return;
                    }
                    continue;
                }
                403 | 404 => {
                    self.error(
                        &stop,
                        format!("{} cannot open {review_path}: {}", self.name, page.status),
                    );
                    return;
                }
                status => {
                    self.error(&stop, format!("review page: {status}"));
                    failures_in_a_row += 1;
                    stop.sleep(backoff(failures_in_a_row)).await;
                    continue;
                }
            }
            failures_in_a_row = 0;
            let (id, csrf, labels) = match read_review_page(&page.body, &self.task) {
                ReviewPage::Item { id, csrf, labels } => (id, csrf, labels),
                ReviewPage::Empty => {
                    if stop.submitted() {
                        return;
                    }
                    stop.sleep(IDLE).await;
                    continue;
                }
                ReviewPage::Unexpected => {
                    self.error(&stop, "review page: not the page expected".into());
                    failures_in_a_row += 1;
                    stop.sleep(backoff(failures_in_a_row)).await;
                    continue;
                }
            };
            let number = id
                .strip_prefix(&self.prefix)
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n < self.items);
            let Some(n) = number else {
                // Not an item of this run: its true label is unknown here.
                inc(&self.counters.foreign_skipped);
                let path = format!("{review_path}/{id}/skip");
                if let Err(e) = self
                    .browser
                    .post_form(&path, &[("csrf", csrf.as_str())])
                    .await
                {
                    self.error(&stop, format!("skip: {}", transport(&e)));
                }
                foreign_in_a_row += 1;
                if stop.submitted() && foreign_in_a_row >= FOREIGN_IN_A_ROW {
                    return;
                }
                stop.sleep(Duration::from_secs(1)).await;
                continue;
            };
            foreign_in_a_row = 0;
            let Some((label, wrong)) =
                answer(&self.scenario, &labels, n, self.index, self.error_rate)
            else {
                self.error(
                    &stop,
                    format!(
                        "item {id}: its true label {:?} is not among the page's labels {labels:?}",
                        self.scenario.true_label_of(n)
                    ),
                );
                return;
            };
            if self.think > 0.0 {
                // Between half and one and a half times the mean.
                let h = unit(mix(n ^ mix(self.index as u64)));
                stop.sleep(Duration::from_secs_f64(self.think * (0.5 + h)))
                    .await;
            }
            let path = format!("{review_path}/{id}/label");
            let fields = [("csrf", csrf.as_str()), ("label", label)];
            match self.browser.post_form(&path, &fields).await {
                Ok(answer) if answer.redirects_to(&review_path) => {
                    let refused = answer
                        .location
                        .as_deref()
                        .is_some_and(|l| l.contains("notice="));
                    if refused {
                        inc(&self.counters.labels_refused);
                    } else {
                        inc(&self.counters.labels);
                        if wrong {
                            inc(&self.counters.labels_wrong);
                        }
                    }
                }
                Ok(answer) => self.error(&stop, format!("label form: {}", answer.status)),
                Err(e) => self.error(&stop, format!("label form: {}", transport(&e))),
            }
        }
    }
}

impl Reviewer {
    /// Counts an error, unless the run was stopped: requests cut off by
    /// Ctrl-C (which stops `verdict demo`'s server too) are no errors.
    fn error(&self, stop: &Stop, kind: String) {
        if !stop.cancelled() {
            self.counters.error(kind);
        }
    }
}

/// A short name for a request that got no answer.
pub fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "no connection"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "connection failed"
    }
}

/// 100 ms doubling to at most 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

#[cfg(test)]
mod tests {
    use super::super::data::DemoData;
    use super::*;

    const ITEM_PAGE: &str = r#"<h1>tumor-triage · <span class="mono">sim-ab12-7</span></h1>
    <form class="card labels" method="post" action="/review/tumor-triage/sim-ab12-7/label">
      <input type="hidden" name="csrf" value="Xy_9-tok">
      <button type="submit" name="label" value="malignant" data-key="1"><kbd>1</kbd> malignant</button>
      <button type="submit" name="label" value="benign" data-key="2"><kbd>2</kbd> benign</button>
      <label>Comment (optional) <textarea name="comment" rows="2"></textarea></label>
    </form>
    <form method="post" action="/review/tumor-triage/sim-ab12-7/skip">
      <input type="hidden" name="csrf" value="Xy_9-tok">
    </form>
    <form method="post" action="/review/tumor-triage/undo" class="undo">"#;

    #[test]
    fn the_item_id_csrf_token_and_labels_are_read_from_the_review_page() {
        assert_eq!(
            read_review_page(ITEM_PAGE, "tumor-triage"),
            ReviewPage::Item {
                id: "sim-ab12-7".into(),
                csrf: "Xy_9-tok".into(),
                labels: vec!["malignant".into(), "benign".into()],
            }
        );
        // Another task's page is not this task's item.
        assert_eq!(read_review_page(ITEM_PAGE, "other"), ReviewPage::Unexpected);
    }

    #[test]
    fn the_empty_queue_and_other_pages_are_told_apart() {
        let empty = r#"<div class="card" data-review><h1>tumor-triage: the queue is empty</h1>
            <form method="post" action="/review/tumor-triage/undo" class="undo">
            <input type="hidden" name="csrf" value="tok"></form>"#;
        assert_eq!(read_review_page(empty, "tumor-triage"), ReviewPage::Empty);
        let sign_in = r#"<form class="card sign-in" method="post" action="/sign-in">
            <input type="hidden" name="csrf" value="tok">"#;
        assert_eq!(
            read_review_page(sign_in, "tumor-triage"),
            ReviewPage::Unexpected
        );
    }

    #[test]
    fn the_users_page_lists_names_roles_tasks_and_state() {
        let html = r#"<tbody>
  <tr>
    <td>admin</td>
    <td>admin</td>
    <td>all</td>
    <td>active</td>
    <td><form method="post" action="/admin/users/admin/disable" class="inline"><button type="submit" class="link">Disable</button></form></td>
  </tr>
  <tr>
    <td>sim-reviewer-1</td><td>reviewer</td><td>tumor-triage, digits</td><td>disabled</td><td></td>
  </tr></tbody>"#;
        let users = listed_users(html);
        assert_eq!(users.len(), 2);
        assert_eq!(
            users["sim-reviewer-1"],
            Listed {
                role: "reviewer".into(),
                tasks: vec!["tumor-triage".into(), "digits".into()],
                disabled: true,
            }
        );
        assert!(!users["admin"].disabled);
    }

    #[test]
    fn admin_credentials_split_at_the_first_colon() {
        let a: Admin = "ana:pass:word".parse().unwrap();
        assert_eq!((a.name.as_str(), a.password.as_str()), ("ana", "pass:word"));
        assert!("ana".parse::<Admin>().is_err());
        assert!(":pw".parse::<Admin>().is_err());
        assert_eq!(names(2), ["sim-reviewer-1", "sim-reviewer-2"]);
    }

    fn scenario() -> Scenario {
        let rows = (0..40).map(|i| vec![i as f64]).collect();
        let classes = (0..40).map(|i| i % 2).collect();
        let data = DemoData::new(
            vec!["x".into()],
            vec!["malignant".into(), "benign".into()],
            rows,
            classes,
        );
        Scenario::new(data, 1, 0.01, &[], None).unwrap()
    }

    #[test]
    fn reviewers_answer_the_true_label_and_err_at_their_rate() {
        let s = scenario();
        let offered = vec!["malignant".to_string(), "benign".to_string()];
        for n in 0..200 {
            assert_eq!(
                answer(&s, &offered, n, 0, 0.0),
                Some((s.true_label_of(n), false))
            );
        }
        let wrong = (0..4000)
            .filter(|&n| {
                let (label, wrong) = answer(&s, &offered, n, 1, 0.1).unwrap();
                assert_eq!(wrong, label != s.true_label_of(n));
                wrong
            })
            .count();
        assert!((300..500).contains(&wrong), "{wrong} wrong of 4000 at 10 %");
        // The same reviewer answers the same item alike; another may not.
        assert_eq!(
            answer(&s, &offered, 9, 1, 0.5),
            answer(&s, &offered, 9, 1, 0.5)
        );
        // A label the page does not offer cannot be given.
        assert_eq!(answer(&s, &["other".to_string()], 1, 0, 0.0), None);
    }
}
