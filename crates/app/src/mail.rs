//! Emailing a project's notices (a webhook paused, a workflow failing) to its members over
//! SMTP. Notices are rows first; a worker claims the unsent ones, so each is emailed once
//! by one node, retried a few times when the server refuses, and the last error stays
//! visible in `GET /platform/v1/notifications`.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use chasqui_store::notifications::{self, MAX_EMAIL_ATTEMPTS, Notification};

use crate::{App, AppError};

/// Notices claimed per round: one, so a send (at most the 20 s SMTP timeout) always ends
/// within the lease and no other node emails the same notice meanwhile.
const BATCH: i64 = 1;
/// Lease of a claimed notice, multiplied by its attempt (1 min, 2 min, ...).
const LEASE_MILLIS: i64 = 60_000;

/// Where and as whom to send email.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// lettre's SMTP URL: `smtps://user:pass@host:465`, `smtp://host:587?tls=required`, or
    /// `smtp://host:25` (unencrypted, for a local relay).
    pub url: String,
    /// The sender, e.g. `Chasqui <chasqui@example.com>`.
    pub from: String,
}

/// A configured SMTP client.
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Checks the settings and builds the client (no connection is made yet).
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .map_err(|e| format!("smtp_url is not a usable SMTP URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("smtp_from = {:?} is not an address: {e}", settings.from))?;
        Ok(Self { transport, from })
    }
}

fn message(
    app: &App,
    mailer: &Mailer,
    n: &Notification,
    to: &[Mailbox],
) -> Result<Message, String> {
    let details = serde_json::from_str::<Value>(&n.details)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| n.details.clone());
    let body = format!(
        "{subject}\n\nWhat: {kind}\nWhen: {when}\nProject: {project}\n\nDetails:\n{details}\n\n\
         Open Chasqui: {url}/\nThis notice is also listed at GET /platform/v1/notifications.\n",
        subject = n.subject,
        kind = n.kind,
        when = chasqui_core::clock::Timestamp(n.created_at).to_rfc3339(),
        project = n.project_id,
        url = app.public_url().trim_end_matches('/'),
    );
    let mut builder = Message::builder()
        .from(mailer.from.clone())
        .subject(format!("[Chasqui] {}", n.subject))
        .header(ContentType::TEXT_PLAIN);
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
        .body(body)
        .map_err(|e| format!("building the email: {e}"))
}

/// Emails the notices that are due; returns how many were handled (sent or failed).
pub async fn send_due(app: &App, mailer: &Mailer) -> Result<usize, AppError> {
    let claimed = notifications::claim_unsent(app.db(), app.now(), LEASE_MILLIS, BATCH).await?;
    for n in &claimed {
        let emails = chasqui_store::users::emails(app.db(), &n.project_id).await?;
        let to: Vec<Mailbox> = emails
            .iter()
            .filter_map(|e| match e.parse::<Mailbox>() {
                Ok(m) => Some(m),
                Err(err) => {
                    tracing::warn!(email = %e, error = %err, "skipping a member address that is not deliverable");
                    None
                }
            })
            .collect();
        if to.is_empty() {
            notifications::mark_email_failed(
                app.db(),
                &n.id,
                "the project has no members with an email address",
                true,
            )
            .await?;
            continue;
        }
        let sent = match message(app, mailer, n, &to) {
            Ok(m) => mailer
                .transport
                .send(m)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => notifications::mark_emailed(app.db(), &n.id, app.now()).await?,
            Err(error) => {
                let give_up = n.email_attempts >= MAX_EMAIL_ATTEMPTS;
                tracing::warn!(notification = %n.id, attempt = n.email_attempts, give_up, %error, "emailing a notice failed");
                notifications::mark_email_failed(app.db(), &n.id, &error, give_up).await?;
            }
        }
    }
    Ok(claimed.len())
}
