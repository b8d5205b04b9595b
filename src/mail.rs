//! Email: the SMTP transport (lettre over rustls; STARTTLS, implicit TLS
//! or plain for a local relay; Mozilla's roots and `smtp.ca_file`) and the askama templates of the messages. Messages are
//! rendered when their event happens and stored in the outbox; the outbox
//! worker sends them through [`Mailer`].

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};

use crate::config::{SmtpSecurity, SmtpSettings};
use crate::store::outbox::Message;

/// Why a mailer could not be built, or an email not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The `[smtp]` settings name no usable server.
    #[error("{0}")]
    Server(#[source] lettre::transport::smtp::Error),
    /// `mail.from` is not an address.
    #[error("{0}")]
    From(#[source] lettre::address::AddressError),
    #[error("{to:?} is not an email address: {source}")]
    To {
        to: String,
        source: lettre::address::AddressError,
    },
    /// `smtp.ca_file` cannot be read or holds no certificate.
    #[error("smtp.ca_file: {0}")]
    Ca(String),
    #[error("cannot build the email: {0}")]
    Build(#[source] lettre::error::Error),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    /// The server refused the email or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
}

impl MailError {
    /// A stable code for logs and callers.
    pub fn code(&self) -> &'static str {
        match self {
            MailError::Server(_) => "mail_server",
            MailError::From(_) => "mail_from",
            MailError::To { .. } => "mail_to",
            MailError::Ca(_) => "mail_ca",
            MailError::Build(_) => "mail_build",
            MailError::Template(_) => "mail_template",
            MailError::Smtp(_) => "smtp",
        }
    }
}

/// Sends email through the configured server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(smtp: &SmtpSettings, from: &str) -> Result<Mailer, MailError> {
        // The server's name is checked against its certificate, which
        // must chain to Mozilla's roots or to `smtp.ca_file`.
        let tls = || -> Result<TlsParameters, MailError> {
            let mut params = TlsParameters::builder(smtp.host.clone());
            if let Some(path) = &smtp.ca_file {
                let pem = crate::crypto::read_ca_file(path).map_err(MailError::Ca)?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| MailError::Ca(format!("{}: {e}", path.display())))?;
                params = params.add_root_certificate(certificate);
            }
            params.build().map_err(MailError::Server)
        };
        let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host);
        let mut builder = match smtp.security {
            SmtpSecurity::Starttls => plain.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => plain.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::Plain => plain,
        }
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(smtp.timeout_secs)));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: from.parse().map_err(MailError::From)?,
        })
    }

    async fn deliver(
        &self,
        to: &str,
        subject: &str,
        text: String,
        html: String,
    ) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|source| MailError::To {
            to: to.to_string(),
            source,
        })?;
        let email = Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(MailError::Build)?;
        self.transport
            .send(email)
            .await
            .map(drop)
            .map_err(MailError::Smtp)
    }

    /// Sends one stored email.
    pub async fn send(&self, to: &str, message: &Message) -> Result<(), MailError> {
        let html = message
            .html
            .clone()
            .unwrap_or_else(|| format!("<pre>{}</pre>", askama_escape(&message.body)));
        self.deliver(to, &message.subject, message.body.clone(), html)
            .await
    }

    /// Sends several stored emails to one recipient as one digest.
    pub async fn send_digest(
        &self,
        to: &str,
        messages: &[Message],
        base_url: &str,
    ) -> Result<(), MailError> {
        let digest = Digest {
            parts: messages
                .iter()
                .map(|m| DigestPart {
                    subject: m.subject.clone(),
                    text: m.body.clone(),
                })
                .collect(),
            link: format!("{}/admin/alerts", base_url.trim_end_matches('/')),
        };
        let subject = format!("[verdict] {} notifications", messages.len());
        let text = DigestText { d: &digest }.render()?;
        let html = DigestHtml { d: &digest }.render()?;
        self.deliver(to, &subject, text, html).await
    }
}

fn askama_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub struct DigestPart {
    pub subject: String,
    pub text: String,
}

pub struct Digest {
    pub parts: Vec<DigestPart>,
    pub link: String,
}

#[derive(Template)]
#[template(path = "email/digest.txt")]
struct DigestText<'a> {
    d: &'a Digest,
}

#[derive(Template)]
#[template(path = "email/digest.html")]
struct DigestHtml<'a> {
    d: &'a Digest,
}

/// What an alert email says.
pub struct AlertMail<'a> {
    pub fired: bool,
    pub kind: &'a str,
    pub task: &'a str,
    pub severity: &'a str,
    pub summary: &'a str,
    /// The figures that fired it, as name and value.
    pub numbers: Vec<(String, String)>,
    pub fired_at: String,
    pub resolved_at: Option<String>,
    pub link: String,
}

#[derive(Template)]
#[template(path = "email/alert.txt")]
struct AlertText<'a> {
    a: &'a AlertMail<'a>,
}

#[derive(Template)]
#[template(path = "email/alert.html")]
struct AlertHtml<'a> {
    a: &'a AlertMail<'a>,
}

impl AlertMail<'_> {
    pub fn subject(&self) -> String {
        let state = if self.fired { "FIRING" } else { "resolved" };
        let task = if self.task.is_empty() {
            String::new()
        } else {
            format!(" {}:", self.task)
        };
        format!("[verdict] {state} {}{task} {}", self.severity, self.summary)
    }

    /// The text and HTML bodies.
    pub fn render(&self) -> askama::Result<(String, String)> {
        Ok((
            AlertText { a: self }.render()?,
            AlertHtml { a: self }.render()?,
        ))
    }
}

/// One late item in an email about a task's late items.
pub struct SlaItem {
    pub id: String,
    /// Its deadline, RFC 3339.
    pub deadline: String,
    pub minutes_late: i64,
    /// The item in the web UI.
    pub link: String,
}

/// What an email about several items of one task past their SLA says:
/// they are (`fired`), or are no longer, past it.
pub struct SlaItemsMail<'a> {
    pub fired: bool,
    pub task: &'a str,
    pub severity: &'a str,
    /// How many items; the first of them are listed in `items`.
    pub count: usize,
    /// The most late first.
    pub items: Vec<SlaItem>,
    /// The alerts page.
    pub link: String,
}

#[derive(Template)]
#[template(path = "email/sla_items.txt")]
struct SlaItemsText<'a> {
    m: &'a SlaItemsMail<'a>,
}

#[derive(Template)]
#[template(path = "email/sla_items.html")]
struct SlaItemsHtml<'a> {
    m: &'a SlaItemsMail<'a>,
}

impl SlaItemsMail<'_> {
    /// Items counted beyond those listed.
    pub fn more(&self) -> usize {
        self.count.saturating_sub(self.items.len())
    }

    pub fn subject(&self) -> String {
        let (state, what) = if self.fired {
            ("FIRING", "are past their deadline")
        } else {
            ("resolved", "are no longer past their deadline")
        };
        format!(
            "[verdict] {state} {} {}: {} items {what}",
            self.severity, self.task, self.count
        )
    }

    /// The text and HTML bodies.
    pub fn render(&self) -> askama::Result<(String, String)> {
        Ok((
            SlaItemsText { m: self }.render()?,
            SlaItemsHtml { m: self }.render()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(security: SmtpSecurity) -> SmtpSettings {
        SmtpSettings {
            host: "mail.example.com".into(),
            port: 587,
            security,
            username: Some("u".into()),
            password: Some("p".into()),
            timeout_secs: 5,
            ca_file: None,
        }
    }

    #[test]
    fn every_security_mode_builds_a_transport() {
        for security in [
            SmtpSecurity::Starttls,
            SmtpSecurity::Tls,
            SmtpSecurity::Plain,
        ] {
            Mailer::new(&smtp(security), "verdict <verdict@example.com>").unwrap();
        }
        assert!(Mailer::new(&smtp(SmtpSecurity::Plain), "not an address").is_err());
    }

    #[test]
    fn an_alert_email_names_state_severity_task_and_link() {
        let mail = AlertMail {
            fired: true,
            kind: "backlog",
            task: "tumor-triage",
            severity: "warning",
            summary: "7 items wait for a human",
            numbers: vec![("waiting".into(), "7".into())],
            fired_at: "2026-11-28T10:00:00Z".into(),
            resolved_at: None,
            link: "http://verdict.example/admin/alerts".into(),
        };
        assert_eq!(
            mail.subject(),
            "[verdict] FIRING warning tumor-triage: 7 items wait for a human"
        );
        let (text, html) = mail.render().unwrap();
        assert!(
            text.contains("waiting: 7") && text.contains("http://verdict.example/admin/alerts")
        );
        assert!(html.contains("<a href=\"http://verdict.example/admin/alerts\">"));
    }

    #[test]
    fn an_email_about_late_items_lists_them_with_links_and_counts_the_rest() {
        let item = |id: &str| SlaItem {
            id: id.into(),
            deadline: "2026-11-28T10:00:00Z".into(),
            minutes_late: 12,
            link: format!("http://v.example/admin/items/t/{id}"),
        };
        let mail = SlaItemsMail {
            fired: true,
            task: "t",
            severity: "warning",
            count: 3,
            items: vec![item("a"), item("b")],
            link: "http://v.example/admin/alerts".into(),
        };
        assert_eq!(
            mail.subject(),
            "[verdict] FIRING warning t: 3 items are past their deadline"
        );
        let (text, html) = mail.render().unwrap();
        assert!(text.contains("http://v.example/admin/items/t/a"), "{text}");
        assert!(text.contains("12 minutes late"), "{text}");
        assert!(text.contains("and 1 more"), "{text}");
        assert!(
            html.contains("<a href=\"http://v.example/admin/items/t/b\">b</a>"),
            "{html}"
        );
        let resolved = SlaItemsMail {
            fired: false,
            ..mail
        };
        assert_eq!(
            resolved.subject(),
            "[verdict] resolved warning t: 3 items are no longer past their deadline"
        );
    }
}
