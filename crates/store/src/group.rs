//! Group commit for small write transactions from many concurrent requests.
//!
//! Each unit of work runs in its own savepoint inside a transaction shared with the other
//! units waiting at that moment, so N concurrent requests cost one commit (one fsync on
//! SQLite) instead of N. A unit that fails is rolled back to its savepoint alone; its
//! neighbours are unaffected. A caller gets its result only once the shared transaction is
//! committed (or the commit's error), so nothing is reported stored before it is durable.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{Conn, Db, StoreError};

/// Hands a unit's result to its caller once the batch's fate is known.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A unit of work: runs on the batch's connection; says whether to keep its writes.
type Job = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, (bool, Deliver)> + Send>;

/// Queue capacity.
const QUEUE: usize = 1024;

/// A queue of write units executed by group-committing writer tasks.
#[derive(Clone)]
pub struct WriteQueue {
    sender: mpsc::Sender<Job>,
}

impl std::fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteQueue")
            .field(
                "waiting",
                &(self.sender.max_capacity() - self.sender.capacity()),
            )
            .finish()
    }
}

impl WriteQueue {
    /// Starts `writers` writer tasks on `db`'s write pool, each putting up to `max_batch`
    /// units in one transaction. SQLite: one writer, large batches (one fsync for many).
    /// PostgreSQL: several writers, one unit per transaction: units of one transaction would
    /// hold row locks across units, and two such transactions taking the same rows in
    /// different orders would deadlock; PostgreSQL groups concurrent commits by itself.
    pub fn start(db: Db, writers: usize, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (sender, receiver) = mpsc::channel::<Job>(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            let (db, receiver) = (db.clone(), receiver.clone());
            db.clone().spawn_writer(async move {
                loop {
                    let batch = {
                        let mut receiver = receiver.lock().await;
                        let Some(first) = receiver.recv().await else {
                            return;
                        };
                        let mut batch = vec![first];
                        while batch.len() < max_batch {
                            match receiver.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    // A unit that panics ends only its batch's task (its callers get an
                    // error); the writer goes on with the next batch.
                    let batch_db = db.clone();
                    if let Err(e) = db
                        .spawn_writer(async move { run_batch(&batch_db, batch).await })
                        .await
                    {
                        tracing::error!(error = %e, "a group-commit batch panicked");
                    }
                }
            });
        }
        Self { sender }
    }

    /// Runs `work` in the next group commit and returns its result once committed. An error
    /// from `work` rolls back only `work`'s writes.
    pub async fn run<T, F>(&self, work: F) -> crate::Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, crate::Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<crate::Result<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let keep = result.is_ok();
                let deliver: Deliver = Box::new(move |committed| {
                    let outcome = match (result, committed) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Ok(_), Err(e)) => Err(StoreError::GroupCommit(e)),
                        (Err(e), _) => Err(e),
                    };
                    let _ = reply.send(outcome);
                });
                (keep, deliver)
            })
        });
        self.sender
            .send(job)
            .await
            .map_err(|_| StoreError::GroupCommit("the write queue is stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::GroupCommit("the batch failed before this work ran".into()))?
    }
}

async fn run_batch(db: &Db, jobs: Vec<Job>) {
    let mut delivers: Vec<Deliver> = Vec::with_capacity(jobs.len());
    let outcome = async {
        let mut tx = db.writer().begin().await?;
        // A unit alone needs no savepoint: the transaction is its own.
        let alone = jobs.len() == 1;
        for job in jobs {
            if alone {
                let (keep, deliver) = job(&mut tx).await;
                delivers.push(deliver);
                return if keep {
                    tx.commit().await
                } else {
                    tx.rollback().await
                };
            }
            crate::sql::query("SAVEPOINT unit")
                .execute(&mut *tx)
                .await?;
            let (keep, deliver) = job(&mut tx).await;
            delivers.push(deliver);
            if !keep {
                crate::sql::query("ROLLBACK TO SAVEPOINT unit")
                    .execute(&mut *tx)
                    .await?;
            }
            crate::sql::query("RELEASE SAVEPOINT unit")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
    .await
    .map_err(|e| e.to_string());
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, units = delivers.len(), "group commit failed");
    }
    for deliver in delivers {
        deliver(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn project_count(db: &Db) -> i64 {
        crate::sql::query_scalar("SELECT COUNT(*) FROM projects")
            .fetch_one(db.reader())
            .await
            .expect("count")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_unit_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("g.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let queue = WriteQueue::start(db.clone(), 1, 256);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let queue = queue.clone();
            tasks.push(tokio::spawn(async move {
                queue
                    .run(move |conn| {
                        Box::pin(async move {
                            // Unit 7 writes, then fails: its write must not survive.
                            let id = if i == 8 { "p7".to_owned() } else { format!("p{i}") };
                            crate::sql::query("INSERT INTO projects (id, name, created_at) VALUES ($1, 'x', 0)")
                                .bind(&id)
                                .execute(&mut *conn)
                                .await?;
                            if i == 7 {
                                crate::sql::query("INSERT INTO projects (id, name, created_at) VALUES ('p7', 'again', 0)")
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            Ok(i)
                        })
                    })
                    .await
            }));
        }
        let mut failed = 0;
        for task in tasks {
            if task.await.expect("join").is_err() {
                failed += 1;
            }
        }
        // Unit 7 fails on its own duplicate and is rolled back alone, so unit 8's p7 is
        // stored whichever ran first (had 7's first write survived, 8 would fail too).
        let stored = project_count(&db).await;
        assert_eq!(failed, 1);
        assert_eq!(stored, 39);
        let names: Vec<String> =
            crate::sql::query_scalar("SELECT name FROM projects WHERE id = 'p7'")
                .fetch_all(db.reader())
                .await
                .expect("p7");
        assert_eq!(names, vec!["x".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_alone_in_its_batch_commits_or_rolls_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("g.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let queue = WriteQueue::start(db.clone(), 1, 256);
        let insert = |id: &'static str, fail: bool| {
            queue.run(move |conn| {
                Box::pin(async move {
                    crate::sql::query(
                        "INSERT INTO projects (id, name, created_at) VALUES ($1, 'x', 0)",
                    )
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    if fail {
                        crate::sql::query(
                            "INSERT INTO projects (id, name, created_at) VALUES ($1, 'y', 0)",
                        )
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
        };
        // Awaited one by one, so each batch holds one unit.
        assert!(insert("a", true).await.is_err());
        assert_eq!(project_count(&db).await, 0, "the failed unit left nothing");
        insert("a", false).await.expect("the same id again");
        insert("b", false).await.expect("another");
        assert_eq!(project_count(&db).await, 2);
    }
}
