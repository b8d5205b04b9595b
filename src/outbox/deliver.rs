//! What the worker does with the messages it claimed: webhooks one by one,
//! emails grouped by recipient (so the hourly limit and the digest see them
//! together), and why a delivery failed.

use std::collections::BTreeMap;

use super::Message;
use crate::domain::OutboxKind;
use crate::mail::MailError;
use crate::webhooks::WebhookError;

/// Why a message was not delivered; the text is recorded with the attempt
/// and the message retried.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("no mail server is configured ([smtp])")]
    NoMailServer,
}

impl DeliveryError {
    /// A stable code for logs and callers.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::Webhook(e) => e.code(),
            DeliveryError::Mail(e) => e.code(),
            DeliveryError::NoMailServer => "no_mail_server",
        }
    }
}

/// What one send delivers.
pub(super) enum Job {
    Webhook(Message),
    /// Emails to one recipient, rate-limit checked together.
    Emails(String, Vec<Message>),
}

impl Job {
    /// The claimed messages, webhooks first (in claim order), then the
    /// emails of each recipient.
    pub(super) fn plan(claimed: Vec<Message>) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut emails: BTreeMap<String, Vec<Message>> = BTreeMap::new();
        for message in claimed {
            if message.kind == OutboxKind::Email {
                emails
                    .entry(message.destination.clone())
                    .or_default()
                    .push(message);
            } else {
                jobs.push(Job::Webhook(message));
            }
        }
        jobs.extend(emails.into_iter().map(|(to, group)| Job::Emails(to, group)));
        jobs
    }

    pub(super) fn ids(&self) -> Vec<i64> {
        match self {
            Job::Webhook(m) => vec![m.id],
            Job::Emails(_, group) => group.iter().map(|m| m.id).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{now, OutboxStatus};

    fn message(id: i64, kind: OutboxKind, to: &str) -> Message {
        Message {
            id,
            kind,
            destination: to.into(),
            task: None,
            subject: String::new(),
            body: String::new(),
            html: None,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now(),
            last_error: None,
            created_at: now(),
            sent_at: None,
        }
    }

    #[test]
    fn webhooks_go_one_by_one_and_emails_by_recipient() {
        let jobs = Job::plan(vec![
            message(1, OutboxKind::Email, "b@x"),
            message(2, OutboxKind::Webhook, "http://h"),
            message(3, OutboxKind::Email, "a@x"),
            message(4, OutboxKind::Email, "b@x"),
            message(5, OutboxKind::Webhook, "http://h"),
        ]);
        let ids: Vec<Vec<i64>> = jobs.iter().map(Job::ids).collect();
        assert_eq!(ids, [vec![2], vec![5], vec![3], vec![1, 4]]);
    }
}
