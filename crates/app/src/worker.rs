//! Background work of a node: applying inbound deliveries, running jobs, delivering
//! outbound webhooks, emailing notices, and ending idle conversations. Every loop stops at a cancellation
//! point between units of work, so a shutdown drains what is in flight and loses nothing.

use std::time::Duration;

use chasqui_core::status::CONVERSATION_IDLE_MILLIS;
use chasqui_store::jobs;
use tokio_util::sync::CancellationToken;

use crate::{App, media, processing};

/// Lease of a claimed job; an expired lease makes the job run again.
const LEASE_MILLIS: i64 = 120_000;
/// Concurrent webhook delivery loops per node.
const WEBHOOK_LOOPS: usize = 4;
/// How often idle conversations are ended and inactivity events queued.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Idle wait between polls when nothing woke the worker (other nodes may add work).
const POLL: Duration = Duration::from_millis(500);

/// Backoff before retry `attempt` (1-based): 5 s, 20 s, 45 s, ... capped at 1 h.
pub fn backoff_millis(attempt: i64) -> i64 {
    (attempt * attempt * 5_000).min(3_600_000)
}

/// Runs every worker loop until `shutdown` is cancelled and the current work is finished.
/// On PostgreSQL several loops apply deliveries at once (claims skip each other's rows);
/// SQLite has one writer, so one loop.
pub async fn run(app: App, shutdown: CancellationToken) {
    let loops = match app.db().backend() {
        chasqui_store::Backend::Postgres => 4,
        chasqui_store::Backend::Sqlite => 1,
    };
    let mut tasks: Vec<_> = (0..loops)
        .map(|_| {
            app.db()
                .spawn_writer(inbound_loop(app.clone(), shutdown.clone()))
        })
        .collect();
    tasks.push(tokio::spawn(jobs_loop(app.clone(), shutdown.clone())));
    // Several delivery loops, so one slow receiver (up to the 10 s timeout) holds back only
    // the batch it is in.
    for _ in 0..WEBHOOK_LOOPS {
        tasks.push(tokio::spawn(webhooks_loop(app.clone(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(workflows_loop(app.clone(), shutdown.clone())));
    if let Some(smtp) = app.settings().smtp.clone() {
        match crate::mail::Mailer::new(&smtp) {
            Ok(mailer) => tasks.push(tokio::spawn(mail_loop(
                app.clone(),
                mailer,
                shutdown.clone(),
            ))),
            Err(e) => {
                tracing::error!(error = %e, "SMTP is misconfigured; notices will not be emailed")
            }
        }
    }
    tasks.push(tokio::spawn(sweeper_loop(app, shutdown)));
    futures::future::join_all(tasks).await;
}

async fn idle(app: &App, shutdown: &CancellationToken) {
    tokio::select! {
        _ = app.woken() => {}
        _ = tokio::time::sleep(POLL) => {}
        _ = shutdown.cancelled() => {}
    }
}

async fn inbound_loop(app: App, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match processing::process_batch(&app).await {
            Ok(0) => idle(&app, &shutdown).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "processing inbound events failed");
                idle(&app, &shutdown).await;
            }
        }
    }
}

async fn webhooks_loop(app: App, shutdown: CancellationToken) {
    let client = crate::webhooks::delivery_client(app.settings().webhook_allow_private);
    while !shutdown.is_cancelled() {
        match crate::webhooks::deliver_due(&app, &client).await {
            Ok(0) => idle(&app, &shutdown).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "delivering webhooks failed");
                idle(&app, &shutdown).await;
            }
        }
    }
}

/// Routes customer messages to workflows and drives the executions that are due.
async fn workflows_loop(app: App, shutdown: CancellationToken) {
    let mut running = tokio::task::JoinSet::new();
    while !shutdown.is_cancelled() {
        let routed = crate::executions::route::route_pending(&app).await;
        let driven = crate::executions::drive::run_due(&app, &mut running).await;
        match (routed, driven) {
            (Ok(0), Ok(0)) => idle(&app, &shutdown).await,
            (Ok(_), Ok(_)) => {}
            (r, d) => {
                for e in [r.err(), d.err()].into_iter().flatten() {
                    tracing::error!(error = %e, "running workflows failed");
                }
                idle(&app, &shutdown).await;
            }
        }
    }
    // Steps in progress finish (a send records Meta's answer) before the node stops.
    while running.join_next().await.is_some() {}
}

async fn jobs_loop(app: App, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let claimed = match jobs::claim(app.db(), 8, app.now(), LEASE_MILLIS).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "claiming jobs failed");
                idle(&app, &shutdown).await;
                continue;
            }
        };
        if claimed.is_empty() {
            idle(&app, &shutdown).await;
            continue;
        }
        let runs = claimed.into_iter().map(|job| {
            let app = app.clone();
            async move {
                let result = match job.kind.as_str() {
                    processing::MEDIA_DOWNLOAD => media::run_download(&app, &job).await,
                    other => Err(format!("unknown job kind {other}")),
                };
                let outcome = match result {
                    Ok(()) => jobs::complete(app.db(), &job.id).await,
                    Err(error) => {
                        let park = job.attempts >= job.max_attempts;
                        tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, park, %error, "job failed");
                        jobs::fail(app.db(), &job.id, &error, app.now() + backoff_millis(job.attempts), park).await
                    }
                };
                if let Err(e) = outcome {
                    tracing::error!(job_id = %job.id, error = %e, "recording a job result failed; its lease will expire");
                }
            }
        });
        futures::future::join_all(runs).await;
    }
}

/// Emails recorded notices to the project members.
async fn mail_loop(app: App, mailer: crate::mail::Mailer, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match crate::mail::send_due(&app, &mailer).await {
            Ok(0) => idle(&app, &shutdown).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "emailing notices failed");
                idle(&app, &shutdown).await;
            }
        }
    }
}

async fn sweeper_loop(app: App, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match crate::conversations::end_idle(&app, CONVERSATION_IDLE_MILLIS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "ended idle conversations"),
            Err(e) => tracing::error!(error = %e, "ending idle conversations failed"),
        }
        match crate::webhooks::sweep_inactive(&app, app.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(queued = n, "inactive-conversation events queued"),
            Err(e) => tracing::error!(error = %e, "queueing inactive-conversation events failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
