//! Collecting the changes a unit of work makes, to publish them to open inboxes once its
//! transaction has committed. Deep code notes a change with [`note`]; the code that owns the
//! transaction runs the work inside [`collecting`] and publishes what it returns.

use std::cell::RefCell;

use chasqui_store::notifier::Change;

tokio::task_local! {
    static COLLECTED: RefCell<Vec<Change>>;
}

/// Notes a change of the current unit of work (ignored outside [`collecting`]).
pub fn note(
    project_id: &str,
    kind: &str,
    phone_number_id: &str,
    conversation_id: Option<&str>,
    wamid: Option<&str>,
) {
    let change = Change {
        project_id: project_id.to_owned(),
        kind: kind.to_owned(),
        phone_number_id: Some(phone_number_id.to_owned()),
        conversation_id: conversation_id.map(str::to_owned),
        wamid: wamid.map(str::to_owned),
    };
    let _ = COLLECTED.try_with(|c| c.borrow_mut().push(change));
}

/// Runs `work`, returning its output and the changes it noted (duplicates removed).
pub async fn collecting<F: std::future::Future>(work: F) -> (F::Output, Vec<Change>) {
    COLLECTED
        .scope(RefCell::new(Vec::new()), async move {
            let out = work.await;
            let mut changes = COLLECTED.with(|c| c.take());
            let mut seen = std::collections::HashSet::new();
            changes.retain(|c| seen.insert(c.clone()));
            (out, changes)
        })
        .await
}
