//! What each SQLite file's writer has done since it opened: statements, write transactions,
//! rows changed and WAL frames (pages) written. Benchmarks divide them by the work done, a
//! measure of the write path that does not move with the machine's load (`/metrics`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters one writer connection adds to.
#[derive(Debug, Default)]
pub struct WriteStats {
    statements: AtomicU64,
    commits: AtomicU64,
    rows_changed: AtomicU64,
    wal_frames: AtomicU64,
}

/// A reading of [`WriteStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Statements run, reads inside write transactions and transaction control included.
    pub statements: u64,
    /// Transactions that wrote to the WAL (explicit or a statement's own).
    pub commits: u64,
    /// Rows inserted, updated or deleted (SQLite's `total_changes`).
    pub rows_changed: u64,
    /// Frames appended to the WAL: database pages written, each once per commit.
    pub wal_frames: u64,
}

impl WriteStats {
    /// The counters now.
    pub fn read(&self) -> WriteCounts {
        WriteCounts {
            statements: self.statements.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            rows_changed: self.rows_changed.load(Ordering::Relaxed),
            wal_frames: self.wal_frames.load(Ordering::Relaxed),
        }
    }
}

thread_local! {
    /// The WAL's size in frames after the last commit on this thread, set by SQLite's WAL
    /// hook while the commit runs and taken by the connection right after it.
    static WAL_FRAMES: Cell<Option<i32>> = const { Cell::new(None) };
}

/// SQLite's WAL hook: called on the committing thread with the WAL's frames after a commit.
fn note_commit(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(Some(frames));
    Ok(())
}

/// A writer connection's counting: what it has seen of its WAL, and where it adds.
#[derive(Debug)]
pub(crate) struct Counting {
    stats: std::sync::Arc<WriteStats>,
    /// `total_changes` after the last statement.
    changes: u64,
    /// The WAL's frames after the last commit.
    frames: i32,
}

impl Counting {
    /// Starts counting `conn`'s work into `stats`. Must come after anything that sets the
    /// connection's WAL hook (`PRAGMA wal_autocheckpoint` does).
    pub(crate) fn start(conn: &rusqlite::Connection, stats: std::sync::Arc<WriteStats>) -> Self {
        conn.wal_hook(Some(note_commit));
        WAL_FRAMES.set(None);
        Self {
            stats,
            changes: conn.total_changes(),
            frames: 0,
        }
    }

    /// Counts `statements` just run on `conn` (on this thread, with nothing in between).
    pub(crate) fn ran(&mut self, conn: &rusqlite::Connection, statements: u64) {
        self.stats
            .statements
            .fetch_add(statements, Ordering::Relaxed);
        let changes = conn.total_changes();
        self.stats
            .rows_changed
            .fetch_add(changes.saturating_sub(self.changes), Ordering::Relaxed);
        self.changes = changes;
        if let Some(frames) = WAL_FRAMES.take() {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            // A WAL that started over since the last commit holds only this one's frames.
            let written = if frames >= self.frames {
                frames - self.frames
            } else {
                frames
            };
            self.frames = frames;
            self.stats
                .wal_frames
                .fetch_add(u64::try_from(written).unwrap_or(0), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::query;
    use crate::testing::main_counts;

    #[tokio::test]
    async fn counts_a_writers_statements_commits_rows_and_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::testing::sqlite(&dir).await;
        let before = main_counts(&db);

        let mut tx = db.writer().begin().await.expect("begin");
        for i in 0..3 {
            query("INSERT INTO projects (id, name, created_at) VALUES ($1, 'p', 1)")
                .bind(format!("p{i}"))
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        query("UPDATE projects SET name = 'q' WHERE id IN ('p0', 'p1')")
            .execute(&mut *tx)
            .await
            .expect("update");
        tx.commit().await.expect("commit");
        let one = main_counts(&db);
        // BEGIN, three inserts, the update, COMMIT.
        assert_eq!(one.statements - before.statements, 6);
        assert_eq!(one.commits - before.commits, 1);
        assert_eq!(one.rows_changed - before.rows_changed, 5);
        assert!(one.wal_frames > before.wal_frames, "{one:?}");

        // A read on the writer counts as a statement, writes nothing; readers count nothing.
        query("SELECT COUNT(*) FROM projects")
            .fetch_one(db.writer())
            .await
            .expect("read");
        query("SELECT COUNT(*) FROM projects")
            .fetch_one(db.reader())
            .await
            .expect("read");
        let two = main_counts(&db);
        assert_eq!(two.statements - one.statements, 1);
        assert_eq!(
            (two.commits, two.rows_changed),
            (one.commits, one.rows_changed)
        );
        assert_eq!(two.wal_frames, one.wal_frames);

        // A statement of its own is its own commit; a rolled-back transaction is none.
        query("DELETE FROM projects WHERE id = 'p2'")
            .execute(db.writer())
            .await
            .expect("delete");
        let mut tx = db.writer().begin().await.expect("begin");
        query("DELETE FROM projects")
            .execute(&mut *tx)
            .await
            .expect("delete all");
        tx.rollback().await.expect("rollback");
        let three = main_counts(&db);
        assert_eq!(three.commits - two.commits, 1);
        assert!(three.wal_frames > two.wal_frames);
        let left: i64 = crate::sql::query_scalar("SELECT COUNT(*) FROM projects")
            .fetch_one(db.reader())
            .await
            .expect("count");
        assert_eq!(left, 2);
    }
}
