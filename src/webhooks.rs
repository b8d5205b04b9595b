//! Webhooks: when a human (or an adjudicating admin) decides an item of a
//! task with a `callback_url`, the item's document — what the scoring API's
//! GET returns — is written to the outbox in the transaction of the
//! decision, and the outbox worker POSTs it.
//!
//! Each request carries `Verdict-Signature: t=<unix seconds>,v1=<hex>`, the
//! HMAC-SHA256 under the task's secret of `"<t>.<body>"`: a receiver
//! recomputes it, compares in constant time and refuses an old `t`
//! (replays). `Verdict-Delivery` is the message id, the same on every retry:
//! delivery is at least once, so receivers deduplicate on it.

use crate::db::DbConnection;
use crate::domain::OutboxKind;
use crate::store::outbox::{self, Message, NewMessage};

pub const SIGNATURE_HEADER: &str = "Verdict-Signature";
pub const DELIVERY_HEADER: &str = "Verdict-Delivery";

/// Writes the webhook of a decided item; call it in the decision's
/// transaction.
pub fn enqueue_verdict(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    url: &str,
) -> diesel::QueryResult<()> {
    let Some(doc) = crate::items::load_doc(conn, task, item_id)? else {
        return Ok(());
    };
    let body = serde_json::to_string(&doc).expect("an item document serialises");
    outbox::enqueue(
        conn,
        &NewMessage {
            kind: OutboxKind::Webhook,
            destination: url,
            task: Some(task),
            subject: &subject(task, item_id),
            body: &body,
            html: None,
            dedupe_key: None,
        },
    )
    .map(drop)
}

/// How the outbox names the webhook of an item.
fn subject(task: &str, item_id: &str) -> String {
    format!("verdict for {task}/{item_id}")
}

/// Withdraws the unsent webhooks of an item whose verdict was taken back
/// (undo); returns how many. One being sent at this moment may still
/// arrive: receivers keep the verdict with the latest `decided_at`.
pub fn withdraw(conn: &mut DbConnection, task: &str, item_id: &str) -> diesel::QueryResult<usize> {
    outbox::withdraw_webhooks(conn, task, &subject(task, item_id))
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    crate::crypto::hmac_sha256_hex(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body.as_bytes()],
    )
}

/// Whether `header` (`t=…,v1=…`) signs `body` under `secret`, made no more
/// than `tolerance_secs` before `now_unix`. For receivers and tests.
pub fn verify(secret: &str, header: &str, body: &str, now_unix: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    (now_unix - t).abs() <= tolerance_secs
        && crate::crypto::same_token(&signature(secret, t, body), v1)
}

/// Why a webhook was not delivered; the message is retried.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No answer: refused, timed out, a TLS failure… (the text names the
    /// whole chain of causes: reqwest's message alone hides them).
    #[error("webhook: {0}")]
    Unreachable(String),
    /// An answer other than 2xx.
    #[error("webhook answered {0}")]
    Refused(reqwest::StatusCode),
}

impl WebhookError {
    /// A stable code for logs and callers.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Unreachable(_) => "webhook_unreachable",
            WebhookError::Refused(_) => "webhook_refused",
        }
    }
}

/// POSTs a stored webhook; any answer but 2xx is a failure to retry.
pub async fn send(
    http: &reqwest::Client,
    message: &Message,
    secret: Option<&str>,
) -> Result<(), WebhookError> {
    let mut request = http
        .post(&message.destination)
        .header("content-type", "application/json")
        .header(DELIVERY_HEADER, message.id.to_string())
        .body(message.body.clone());
    if let Some(secret) = secret {
        let t = chrono::Utc::now().timestamp();
        request = request.header(
            SIGNATURE_HEADER,
            format!("t={t},v1={}", signature(secret, t, &message.body)),
        );
    }
    let response = request.send().await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        WebhookError::Unreachable(text)
    })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(WebhookError::Refused(response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_pythons_hmac_sha256_of_timestamp_dot_body() {
        // Independent value: python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("key", 1_700_000_000, "{}"),
            "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn verify_accepts_a_fresh_signature_and_refuses_old_or_altered_ones() {
        let header = format!("t=1000,v1={}", signature("s", 1000, "body"));
        assert!(verify("s", &header, "body", 1010, 300));
        assert!(!verify("s", &header, "body", 2000, 300));
        assert!(!verify("s", &header, "bodY", 1010, 300));
        assert!(!verify("other", &header, "body", 1010, 300));
        assert!(!verify("s", "v1=00", "body", 1010, 300));
    }
}
