//! Worker threads: one current-thread runtime per core, and state kept
//! per worker so the request path never shares a lock or a hot cache line
//! with another core.
//!
//! A downstream connection is accepted by one worker (each has its own
//! `SO_REUSEPORT` socket) and lives there for its whole life, with the
//! upstream connections, filter instances and counters of that worker.
//! Everything else (reloads, admin, compiling filters, timers of root
//! contexts) runs on the control runtime, which has a slot of its own.

use std::cell::Cell;
use std::sync::OnceLock;

use anyhow::Context as _;
use tokio::runtime::Handle;

static COUNT: OnceLock<usize> = OnceLock::new();

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Sets the number of workers, once, before any per-worker state is
/// built. Later calls are ignored (the worker count is fixed per process).
pub fn set_count(n: usize) {
    let _ = COUNT.set(n.max(1));
}

/// The number of worker threads (1 until [`set_count`]).
pub fn count() -> usize {
    COUNT.get().copied().unwrap_or(1)
}

/// This thread's slot: `0..count()` on a worker, `count()` anywhere else
/// (the control runtime, blocking threads, tests).
pub fn index() -> usize {
    INDEX.with(Cell::get).min(count())
}

/// One value per worker plus one for the control side, each on its own
/// cache line. `get` returns the calling thread's.
pub struct PerWorker<T> {
    cells: Box<[Padded<T>]>,
}

#[repr(align(128))]
struct Padded<T>(T);

impl<T> PerWorker<T> {
    pub fn new(mut make: impl FnMut(usize) -> T) -> Self {
        Self {
            cells: (0..=count()).map(|i| Padded(make(i))).collect(),
        }
    }

    /// The calling thread's value.
    pub fn get(&self) -> &T {
        let i = index().min(self.cells.len() - 1);
        &self.cells[i].0
    }

    /// Every worker's value (for scrapes, reaping and status).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.cells.iter().map(|c| &c.0)
    }
}

impl<T: Default> Default for PerWorker<T> {
    fn default() -> Self {
        Self::new(|_| T::default())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PerWorker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The running worker threads.
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count()` worker threads, each driving its own
    /// current-thread runtime until [`Workers::stop`].
    pub fn start() -> anyhow::Result<Workers> {
        let n = count();
        let mut workers = Workers {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("gateway-worker-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async {
                        let flush = tokio::spawn(crate::access_log::flush_periodically());
                        let _ = stop_rx.await;
                        flush.abort();
                    });
                    crate::access_log::flush();
                    // Connections still open after the grace period end here.
                    runtime.shutdown_background();
                })
                .context("cannot start a worker thread")?;
            let handle = ready_rx
                .recv()
                .context("a worker thread died at start")?
                .context("cannot start a worker runtime")?;
            workers.handles.push(handle);
            workers.stops.push(stop_tx);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// The runtime of worker `i`.
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i]
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Stops every worker runtime (dropping what still runs there) and
    /// joins the threads.
    pub fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_threads_use_the_control_slot() {
        let per = PerWorker::new(|i| i);
        assert_eq!(*per.get(), count());
        assert_eq!(per.iter().count(), count() + 1);
    }
}
