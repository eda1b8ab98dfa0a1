//! Background work of a node: applying inbound deliveries, running jobs, delivering
//! outbound webhooks, emailing notices, and ending idle conversations. Every loop stops at a cancellation
//! point between units of work, so a shutdown drains what is in flight and loses nothing.

use std::pin::Pin;
use std::time::Duration;

use chasqui_core::status::CONVERSATION_IDLE_MILLIS;
use chasqui_store::jobs;
use tokio::sync::futures::Notified;
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
    tasks.push(tokio::spawn(routing_loop(app.clone(), shutdown.clone())));
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

/// Runs `step` until `shutdown`; after a step that found nothing to do (or failed), waits
/// for a wake-up, the poll interval or the shutdown. The wake-up is armed before the step
/// looks for work, so one that comes between the look and the wait is not lost.
async fn repeat<F, Fut, E>(app: &App, shutdown: &CancellationToken, what: &str, step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
    E: std::fmt::Display,
{
    repeat_on(App::woken, app, shutdown, what, step).await;
}

/// [`repeat`], woken by `woken` instead of [`App::woken`].
async fn repeat_on<F, Fut, E>(
    woken: for<'a> fn(&'a App) -> Notified<'a>,
    app: &App,
    shutdown: &CancellationToken,
    what: &str,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
    E: std::fmt::Display,
{
    while !shutdown.is_cancelled() {
        let woken = woken(app);
        tokio::pin!(woken);
        woken.as_mut().enable();
        match step().await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => tracing::error!(error = %e, "{what} failed"),
        }
        idle(woken, shutdown).await;
    }
}

/// Waits for an armed wake-up, the poll interval or the shutdown.
async fn idle(woken: Pin<&mut Notified<'_>>, shutdown: &CancellationToken) {
    tokio::select! {
        _ = woken => {}
        _ = tokio::time::sleep(POLL) => {}
        _ = shutdown.cancelled() => {}
    }
}

async fn inbound_loop(app: App, shutdown: CancellationToken) {
    repeat(&app, &shutdown, "processing inbound events", || {
        processing::process_batch(&app)
    })
    .await;
}

async fn webhooks_loop(app: App, shutdown: CancellationToken) {
    let client = crate::webhooks::delivery_client(app.settings().webhook_allow_private);
    // Not woken by every event and step: by the commits that made deliveries.
    repeat_on(
        App::deliveries_woken,
        &app,
        &shutdown,
        "delivering webhooks",
        || crate::webhooks::deliver_due(&app, &client),
    )
    .await;
}

/// Routes customer messages to workflows (starting executions or queueing the messages for
/// the ones that drive their threads). Apart from driving, so a routing pass waiting for its
/// commits never holds back the claims of due executions.
async fn routing_loop(app: App, shutdown: CancellationToken) {
    repeat(&app, &shutdown, "routing messages to workflows", || {
        crate::executions::route::route_pending(&app)
    })
    .await;
}

/// Drives the executions that are due.
async fn workflows_loop(app: App, shutdown: CancellationToken) {
    let mut running = tokio::task::JoinSet::new();
    while !shutdown.is_cancelled() {
        let woken = app.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match crate::executions::drive::run_due(&app, &mut running).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => tracing::error!(error = %e, "running workflows failed"),
        }
        idle(woken, &shutdown).await;
    }
    // Steps in progress finish (a send records Meta's answer) before the node stops.
    while running.join_next().await.is_some() {}
}

async fn jobs_loop(app: App, shutdown: CancellationToken) {
    repeat(&app, &shutdown, "running jobs", || run_jobs(&app)).await;
}

/// Claims due jobs and runs them; returns how many were claimed.
async fn run_jobs(app: &App) -> Result<usize, chasqui_store::StoreError> {
    let claimed = jobs::claim(app.db(), 8, app.now(), LEASE_MILLIS).await?;
    let n = claimed.len();
    let runs = claimed.into_iter().map(|job| async move {
        let result = match job.kind.as_str() {
            processing::MEDIA_DOWNLOAD => media::run_download(app, &job).await,
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
    });
    futures::future::join_all(runs).await;
    Ok(n)
}

/// Emails recorded notices to the project members.
async fn mail_loop(app: App, mailer: crate::mail::Mailer, shutdown: CancellationToken) {
    repeat(&app, &shutdown, "emailing notices", || {
        crate::mail::send_due(&app, &mailer)
    })
    .await;
}

async fn sweeper_loop(app: App, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match crate::conversations::end_idle(&app, CONVERSATION_IDLE_MILLIS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "ended idle conversations"),
            Err(e) => tracing::error!(error = %e, "ending idle conversations failed"),
        }
        match processing::prune_processed(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "deleted processed inbound deliveries past their retention"
            ),
            Err(e) => tracing::error!(error = %e, "deleting old inbound deliveries failed"),
        }
        match chasqui_store::webhooks::release_stray(app.db()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "released held deliveries of running webhooks"),
            Err(e) => tracing::error!(error = %e, "releasing held webhook deliveries failed"),
        }
        match crate::webhooks::prune_delivered(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "deleted delivered webhook events past their retention"
            ),
            Err(e) => tracing::error!(error = %e, "deleting old webhook deliveries failed"),
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
