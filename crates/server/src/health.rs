//! `/healthz` (the process answers) and `/readyz` (database reachable, migrations applied,
//! not draining).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    match state.app.db().ready().await {
        Ok(true) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "migrations pending" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unreachable" })),
            )
        }
    }
}

/// SQLite: each file's writer counters since the process started, in Prometheus text.
fn write_counters(db: &chasqui_store::Db) -> String {
    use chasqui_store::write_stats::WriteCounts;
    let counts = db.write_counts();
    if counts.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let mut counter = |name: &str, value: fn(&WriteCounts) -> u64| {
        out.push_str(&format!("# TYPE {name} counter\n"));
        for (file, c) in &counts {
            out.push_str(&format!("{name}{{file=\"{file}\"}} {}\n", value(c)));
        }
    };
    counter("chasqui_sqlite_statements_total", |c| c.statements);
    counter("chasqui_sqlite_commits_total", |c| c.commits);
    counter("chasqui_sqlite_rows_changed_total", |c| c.rows_changed);
    counter("chasqui_sqlite_wal_frames_total", |c| c.wal_frames);
    out
}

/// Prometheus text: queue depths (no per-project data) and, on SQLite, the writers' work.
async fn metrics(State(state): State<AppState>) -> (StatusCode, String) {
    let db = state.app.db();
    let gauges = async {
        let pending = chasqui_store::events::pending_count(db).await?;
        let inbound_failed = chasqui_store::events::failed_count(db).await?;
        let queued = chasqui_store::jobs::count(db, "queued").await?;
        let parked = chasqui_store::jobs::count(db, "parked").await?;
        let (waiting, failed) = chasqui_store::webhooks::counts(db).await?;
        let executions = chasqui_store::executions::status_counts(db).await?;
        Ok::<_, chasqui_store::StoreError>((
            (pending, inbound_failed),
            queued,
            parked,
            waiting,
            failed,
            executions,
        ))
    };
    match gauges.await {
        Ok(((pending, inbound_failed), queued, parked, waiting, failed, executions)) => (
            StatusCode::OK,
            format!(
                "# TYPE chasqui_inbound_events_pending gauge\nchasqui_inbound_events_pending {pending}\n\
                 # TYPE chasqui_inbound_events_failed gauge\nchasqui_inbound_events_failed {inbound_failed}\n\
                 # TYPE chasqui_jobs_queued gauge\nchasqui_jobs_queued {queued}\n\
                 # TYPE chasqui_jobs_parked gauge\nchasqui_jobs_parked {parked}\n\
                 # TYPE chasqui_webhook_deliveries_waiting gauge\nchasqui_webhook_deliveries_waiting {waiting}\n\
                 # TYPE chasqui_webhook_deliveries_failed gauge\nchasqui_webhook_deliveries_failed {failed}\n\
                 # TYPE chasqui_workflow_executions gauge\n{}{}",
                executions
                    .iter()
                    .map(|(status, n)| format!(
                        "chasqui_workflow_executions{{status=\"{status}\"}} {n}\n"
                    ))
                    .collect::<String>(),
                write_counters(db),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "metrics unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable\n".into(),
            )
        }
    }
}
