//! WAL checkpoints of the SQLite files, off the writer's thread.
//!
//! SQLite's default has the committing connection copy the WAL back into the database once
//! it holds 1,000 pages, and, under steady load, at every commit after that: readers of
//! older snapshots keep the WAL from starting over, so it stays past the threshold and each
//! commit on the writer lane also copies its own pages back and syncs the database file.
//! The writers here turn that off (`wal_autocheckpoint = 0`). This thread, with its own
//! connection to each file, runs a `PASSIVE` checkpoint every [`INTERVAL`]: it copies what no
//! reader still needs while the writer goes on appending (it never takes the write lock).
//! When the WAL has grown past [`RESTART_FRAMES`] it asks the file's writer to restart it:
//! between two of its transactions the writer runs a `RESTART` checkpoint, which copies the
//! little left, waits for the readers of older snapshots and makes the next commit write
//! from the WAL's start (the thread cannot, as it would starve behind a writer that is
//! almost never idle). Durability is unchanged: a commit is durable once its WAL frames are
//! synced, which the writers do at commit as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often each file's WAL is copied back.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// WAL frames (pages: 64 MiB at SQLite's 4 KiB) past which the writer is asked to restart it.
pub const RESTART_FRAMES: i64 = 16_384;

/// A file the thread keeps checkpointed, and the flag its writer watches.
#[derive(Debug, Clone)]
pub struct WalFile {
    /// The database file.
    pub path: String,
    /// Set when the WAL should start over; the writer clears it when it does.
    pub restart: Arc<AtomicBool>,
}

/// The running checkpoint thread; stops (after at most one more pass) when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to each file and starts checkpointing them.
    pub fn start(files: Vec<WalFile>) -> std::io::Result<Self> {
        let conns = files
            .into_iter()
            .map(|file| {
                let open = || -> rusqlite::Result<rusqlite::Connection> {
                    let conn = rusqlite::Connection::open(&file.path)?;
                    // A passive checkpoint waits for nothing, but a first read of the
                    // schema might.
                    conn.busy_timeout(Duration::from_secs(1))?;
                    Ok(conn)
                };
                open()
                    .map(|conn| (file.clone(), conn))
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", file.path)))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("chasqui-sqlite-checkpoint".into())
            .spawn(move || run(&conns, &stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which ends its loop.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conns: &[(WalFile, rusqlite::Connection)], stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        for (file, conn) in conns {
            let started = std::time::Instant::now();
            let result = checkpoint(conn, "PASSIVE");
            if let Ok((_, frames, copied)) = &result {
                tracing::trace!(
                    path = file.path,
                    frames,
                    copied,
                    micros = started.elapsed().as_micros() as u64,
                    "WAL checkpoint"
                );
            }
            match result {
                Ok((_, frames, _)) if frames > RESTART_FRAMES => {
                    file.restart.store(true, Ordering::Release);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(path = file.path, error = %e, "WAL checkpoint failed"),
            }
        }
    }
}

/// Runs a checkpoint in `mode`: whether it was blocked, the WAL's frames, and how many of
/// them are copied back.
pub(crate) fn checkpoint(
    conn: &rusqlite::Connection,
    mode: &str,
) -> rusqlite::Result<(bool, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_bytes(db: &std::path::Path) -> u64 {
        let wal = db.with_file_name(format!(
            "{}-wal",
            db.file_name().and_then(|n| n.to_str()).unwrap_or_default()
        ));
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn the_database_file_catches_up_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = rusqlite::Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (v TEXT);",
            )
            .expect("schema");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        let restart = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer::start(vec![WalFile {
            path: path.to_string_lossy().into_owned(),
            restart: restart.clone(),
        }])
        .expect("checkpointer");
        let row = "x".repeat(4000);
        for _ in 0..2000 {
            writer
                .execute("INSERT INTO t (v) VALUES (?1)", [&row])
                .expect("insert");
        }
        assert!(wal_bytes(&path) > 4_000_000, "the rows are in the WAL");
        // The writer never checkpoints; within a few passes the file holds the rows.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while size() < before + 4_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint: {} bytes",
                size()
            );
            std::thread::sleep(INTERVAL);
        }
        drop(checkpointer);
        // 2,000 pages and more: more than a test needs to ask for a restart, fewer than
        // RESTART_FRAMES.
        assert!(!restart.load(Ordering::Acquire));
        let n: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2000);
    }
}
