//! The SQLite writer lane: one OS thread, optionally pinned to one CPU, running the tasks
//! that drive SQLite's single writer connection (group-commit batches, inbound processing).
//!
//! SQLite statements run on the thread that holds the connection (`crate::sql`), so the
//! lane's batches run without hand-offs, and the lane keeps that work in one place while
//! HTTP and readers use every CPU. (It was introduced when sqlx's connection thread sat at
//! the other end of every statement and pinning both to one CPU made each hand-off cheap.)

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which CPU the lane keeps to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LanePin {
    /// The last CPU the process may use, when it may use at least two.
    #[default]
    Auto,
    /// No pinning: the scheduler places the lane's threads.
    Off,
    /// This CPU (as numbered by the operating system).
    Cpu(usize),
}

impl std::str::FromStr for LanePin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            n => n
                .parse::<usize>()
                .map(Self::Cpu)
                .map_err(|_| format!("expected auto, off or a CPU number, got {n:?}")),
        }
    }
}

/// A running lane; stops when dropped (its unfinished tasks are cancelled).
#[derive(Debug)]
pub struct Lane {
    handle: Handle,
    cpu: Option<usize>,
    _stop: oneshot::Sender<()>,
}

impl Lane {
    /// Starts the lane's thread and runtime.
    pub fn start(pin: LanePin) -> std::io::Result<Self> {
        let cpu = match pin {
            LanePin::Off => None,
            LanePin::Cpu(n) => Some(n),
            LanePin::Auto => core_affinity::get_core_ids()
                .filter(|ids| ids.len() >= 2)
                .and_then(|ids| ids.last().map(|c| c.id)),
        };
        let (ready, started) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("chasqui-sqlite-writer".into())
            .spawn(move || {
                let pinned =
                    cpu.map(|id| core_affinity::set_for_current(core_affinity::CoreId { id }));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok((runtime.handle().clone(), pinned)));
                // Runs the spawned tasks until the lane is dropped.
                let _ = runtime.block_on(stopped);
            })?;
        let (handle, pinned) = started
            .recv()
            .map_err(|_| std::io::Error::other("the writer lane's thread died at start"))??;
        let cpu = match pinned {
            Some(true) => cpu,
            Some(false) => {
                tracing::warn!(
                    ?cpu,
                    "could not pin the SQLite writer lane; running unpinned"
                );
                None
            }
            None => None,
        };
        Ok(Self {
            handle,
            cpu,
            _stop: stop,
        })
    }

    /// Runs `task` on the lane.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// The CPU the lane is pinned to, if any.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pins() {
        assert_eq!("auto".parse::<LanePin>(), Ok(LanePin::Auto));
        assert_eq!("off".parse::<LanePin>(), Ok(LanePin::Off));
        assert_eq!(" 3 ".parse::<LanePin>(), Ok(LanePin::Cpu(3)));
        assert!("fast".parse::<LanePin>().is_err());
    }

    #[tokio::test]
    async fn runs_tasks_on_its_own_thread_and_stops_when_dropped() {
        let lane = Lane::start(LanePin::Off).expect("lane");
        let name = lane
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .expect("join");
        assert_eq!(name.as_deref(), Some("chasqui-sqlite-writer"));
        let pending = lane.spawn(std::future::pending::<()>());
        drop(lane);
        // The runtime shut down with the lane, cancelling what was left.
        assert!(pending.await.expect_err("cancelled").is_cancelled());
    }
}
