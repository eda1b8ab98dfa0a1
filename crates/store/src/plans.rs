//! Query-plan audit for SQLite: while recording is on, the first run of every statement
//! also asks SQLite how it will run it (`EXPLAIN QUERY PLAN`), and [`violations`] names the
//! plans that read more than the rows they need (a table scan, a search on a low-cardinality
//! column alone, a sort of every candidate before a `LIMIT`).
//!
//! Without `ANALYZE` statistics (Chasqui never collects them) SQLite's plans do not depend
//! on the data, so a plan seen on a test's small file is the plan a file of millions of
//! rows gets. The end-to-end harness records every statement its tests run and fails a test
//! whose statements break a rule, so a statement that would slow down as the data grows is
//! caught when it is written, not in production.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

static RECORDING: AtomicBool = AtomicBool::new(false);

fn plans() -> &'static Mutex<BTreeMap<String, Vec<String>>> {
    static PLANS: OnceLock<Mutex<BTreeMap<String, Vec<String>>>> = OnceLock::new();
    PLANS.get_or_init(Mutex::default)
}

/// Starts recording the plans of this process's SQLite statements (idempotent).
pub fn record() {
    RECORDING.store(true, Ordering::Relaxed);
}

/// Every statement recorded so far, with its plan lines (one per `EXPLAIN QUERY PLAN` row).
pub fn recorded() -> Vec<(String, Vec<String>)> {
    plans()
        .lock()
        .map(|p| p.iter().map(|(s, l)| (s.clone(), l.clone())).collect())
        .unwrap_or_default()
}

/// Whether `sql`'s plan should be asked for now.
pub(crate) fn wanted(sql: &str) -> bool {
    if !RECORDING.load(Ordering::Relaxed) {
        return false;
    }
    let verb = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        verb.as_str(),
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH"
    ) && plans().lock().is_ok_and(|p| !p.contains_key(sql))
}

/// Stores `sql`'s plan.
pub(crate) fn store(sql: &str, lines: Vec<String>) {
    if let Ok(mut p) = plans().lock() {
        p.insert(sql.to_owned(), lines);
    }
}

/// Statements known to read more than they return on purpose, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "SELECT project_id, kind, phone_number_id, active, events FROM webhooks",
        "the SQLite writer's copy of the webhooks table, read again only after it changes",
    ),
    (
        "FROM phone_numbers ORDER BY created_at",
        "the directory loads every number into memory, every 30 s",
    ),
    (
        "SELECT COUNT(*) FROM projects",
        "first start: is there any project yet",
    ),
    (
        "SELECT status, COUNT(*) AS n FROM workflow_executions GROUP BY status",
        "/metrics counts executions per status from the status index",
    ),
    (
        "SELECT COUNT(*) FROM jobs WHERE status = $1",
        "/metrics: jobs holds only queued and parked jobs (done ones are deleted)",
    ),
    (
        "SELECT COUNT(*) FROM inbound_events",
        "tests and the benchmark count every stored delivery",
    ),
    (
        "UPDATE inbound_events SET locked_until = NULL WHERE status = 'pending' AND locked_until IS NOT NULL",
        "once at start: a SQLite node frees the leases of its previous run",
    ),
    (
        "FROM webhooks w CROSS JOIN conversations c",
        "the inactivity sweep visits every webhook once a pass (few rows), then reads by index \
         only the conversations that crossed its threshold since the last pass",
    ),
    (
        "UPDATE webhooks AS w SET inactive_swept_until",
        "the inactivity sweep marks every subscribed webhook once a pass (few rows)",
    ),
    (
        "UPDATE webhook_deliveries SET status = CASE WHEN batch_key IS NULL THEN 'pending' ELSE 'buffered' END WHERE status = 'held' AND webhook_id IN",
        "the sweeper's safety net reads the webhooks (few rows) once a pass, then only the held \
         deliveries of the running ones, by index (normally none)",
    ),
    (
        "SELECT DISTINCT project_id FROM webhooks",
        "the delivery-log retention visits each project with webhooks once a pass (few rows)",
    ),
    (
        "INSERT INTO contacts (id, project_id, contact_key",
        "SQLite plans the foreign-key checks of the rows that reference a contact, but runs them \
         only while a deferred violation is outstanding; Chasqui's keys are immediate",
    ),
];

/// Partial indexes that hold only waiting work (their rows leave once done), so reading all
/// of one reads the backlog, not the history.
const QUEUE_INDEXES: &[&str] = &[
    "inbound_events_queue",
    "inbound_events_failed",
    "webhook_deliveries_queue",
    "webhook_deliveries_buffers",
    "webhook_deliveries_failed",
    "webhook_deliveries_held",
    "notifications_unsent",
];

/// Plan lines that read every row of something that does not grow with the data.
fn harmless_scan(line: &str, transient: &[&str]) -> bool {
    line.contains("VIRTUAL TABLE") // json_each over a bound batch
        || line.contains("CONSTANT ROW")
        || line.contains("VALUES CLAUSE")
        || QUEUE_INDEXES
            .iter()
            .any(|i| line.ends_with(&format!("INDEX {i}")))
        || line
            .strip_prefix("SCAN ")
            .is_some_and(|name| transient.contains(&name))
}

/// Names of the plan's own intermediate results (co-routines, materialized subqueries):
/// scanning one reads what the plan built, not a table.
fn transient_names(plan: &[String]) -> Vec<&str> {
    plan.iter()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("CO-ROUTINE ")
                .or_else(|| l.strip_prefix("MATERIALIZE "))
        })
        .collect()
}

/// Why `plan` breaks a rule, if it does.
fn broken(sql: &str, plan: &[String]) -> Option<String> {
    if ALLOWED.iter().any(|(fragment, _)| sql.contains(fragment)) {
        return None;
    }
    let limited = sql.to_ascii_uppercase().contains(" LIMIT ");
    let transient = transient_names(plan);
    for line in plan {
        let line = line.trim();
        if line.starts_with("SCAN ") && !harmless_scan(line, &transient) {
            return Some(format!("reads a whole table: {line}"));
        }
        if line.starts_with("SEARCH ") && line.ends_with("(status=?)") {
            return Some(format!("narrows only by a status: {line}"));
        }
        if limited && line.starts_with("USE TEMP B-TREE FOR") {
            return Some(format!(
                "sorts every candidate to return a few ({line}): the index should give the order"
            ));
        }
    }
    None
}

/// The recorded statements whose plans break a rule, each with the reason and its plan.
pub fn violations() -> Vec<String> {
    recorded()
        .into_iter()
        .filter_map(|(sql, plan)| {
            broken(&sql, &plan)
                .map(|why| format!("{why}\n  statement: {sql}\n  plan: {}", plan.join(" | ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::broken;

    fn plan(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn scans_and_status_only_searches_are_flagged() {
        let sql = "SELECT v.x FROM contacts c JOIN conversations v ON v.contact_id = c.id";
        assert!(
            broken(
                sql,
                &plan(&[
                    "SEARCH v USING INDEX conversations_active_idle (status=?)",
                    "SEARCH c USING INDEX sqlite_autoindex_contacts_1 (id=?)"
                ])
            )
            .is_some()
        );
        assert!(broken("SELECT * FROM messages", &plan(&["SCAN messages"])).is_some());
        assert!(
            broken(
                "SELECT * FROM t WHERE a = $1 ORDER BY b LIMIT 5",
                &plan(&[
                    "SEARCH t USING INDEX t_a (a=?)",
                    "USE TEMP B-TREE FOR ORDER BY"
                ])
            )
            .is_some()
        );
    }

    #[test]
    fn bounded_plans_pass() {
        assert!(
            broken(
                "INSERT INTO t (a) SELECT value FROM json_each($1)",
                &plan(&["SCAN json_each VIRTUAL TABLE INDEX 1:"])
            )
            .is_none()
        );
        assert!(
            broken(
                "SELECT * FROM t WHERE a = $1 AND b > $2 ORDER BY b LIMIT 5",
                &plan(&["SEARCH t USING INDEX t_ab (a=? AND b>?)"])
            )
            .is_none()
        );
        // A sort without a LIMIT sorts what it returns anyway.
        assert!(
            broken(
                "SELECT * FROM t WHERE a = $1 ORDER BY c",
                &plan(&[
                    "SEARCH t USING INDEX t_a (a=?)",
                    "USE TEMP B-TREE FOR ORDER BY"
                ])
            )
            .is_none()
        );
    }
}
