//! HTTP/2 streams run inside their connection's task.
//!
//! hyper hands every HTTP/2 stream (and every tunnel opened by an
//! extended CONNECT) to an executor. A spawned task per stream costs a
//! task of its own, its scheduling and a wake-up across tasks each time a
//! stream and its connection hand frames to each other. Here the streams
//! are futures the connection's own task polls, beside the connection, as
//! a worker's connection already stays on that worker for its whole life.
//!
//! hyper calls the executor only from inside the connection's or a
//! stream's poll. [`ConnExec`] leaves what it is given on this thread, for
//! [`WithStreams`] to pick up as soon as that poll returns. Given a future
//! anywhere else (no [`WithStreams`] is polling on this thread) it spawns
//! it, as a task-per-stream executor would.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::{waker_ref, ArcWake, AtomicWaker};

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// Set while a [`WithStreams`] polls on this thread.
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
    /// What hyper gave the executor during that poll.
    static GIVEN: RefCell<Vec<StreamFuture>> = const { RefCell::new(Vec::new()) };
}

/// The executor of the listeners' HTTP/2 connections (see the module).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ConnExec;

impl<F> hyper::rt::Executor<F> for ConnExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        if COLLECTING.with(Cell::get) {
            GIVEN.with(|given| given.borrow_mut().push(Box::pin(fut)));
        } else {
            tokio::spawn(fut);
        }
    }
}

/// A connection and the streams it started, polled as one future. It ends
/// when the connection has ended and every stream with it (a stream whose
/// connection is gone sees it at its next poll and ends too).
///
/// The connection and the streams wake this task through wakers of their
/// own ([`Woken`]), so a poll polls only what was woken. What they wake
/// while this task is polling them (a stream that queues a response wakes
/// the connection to send it) is polled in the same turn, not after a
/// wake-up of a task that is already running.
pub(super) struct WithStreams<C: Future> {
    conn: C,
    ended: Option<C::Output>,
    streams: FuturesUnordered<StreamFuture>,
    conn_wake: Arc<Woken>,
    streams_wake: Arc<Woken>,
    /// Shared by both wakers: this task's waker, and whether it is being
    /// polled (then a wake is only noted).
    task: Arc<TaskState>,
}

#[derive(Default)]
struct TaskState {
    waker: AtomicWaker,
    polling: AtomicBool,
}

/// One of the two wakers a [`WithStreams`] hands out.
struct Woken {
    woken: AtomicBool,
    task: Arc<TaskState>,
}

impl Woken {
    fn new(task: &Arc<TaskState>) -> Arc<Self> {
        Arc::new(Self {
            // Polled first without having been woken.
            woken: AtomicBool::new(true),
            task: task.clone(),
        })
    }

    fn take(&self) -> bool {
        self.woken.swap(false, Ordering::SeqCst)
    }
}

impl ArcWake for Woken {
    fn wake_by_ref(this: &Arc<Self>) {
        this.woken.store(true, Ordering::SeqCst);
        if !this.task.polling.load(Ordering::SeqCst) {
            this.task.waker.wake();
        }
    }
}

impl<C: Future + Unpin> WithStreams<C> {
    pub(super) fn new(conn: C) -> Self {
        let task = Arc::new(TaskState::default());
        Self {
            conn,
            ended: None,
            streams: FuturesUnordered::new(),
            conn_wake: Woken::new(&task),
            streams_wake: Woken::new(&task),
            task,
        }
    }

    /// Acts on the connection, if it still runs, and has it polled at
    /// this future's next poll (as a graceful shutdown needs, to send its
    /// GOAWAY). False if it has ended.
    pub(super) fn with_conn(&mut self, act: impl FnOnce(&mut C)) -> bool {
        if self.ended.is_some() {
            return false;
        }
        act(&mut self.conn);
        self.conn_wake.woken.store(true, Ordering::SeqCst);
        true
    }

    /// Streams not yet finished.
    #[cfg(test)]
    fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Polls what was woken, with the executor collecting, and takes in
    /// the streams it was given.
    fn poll_woken(&mut self) {
        let outer = COLLECTING.with(|c| c.replace(true));
        if self.conn_wake.take() && self.ended.is_none() {
            let waker = waker_ref(&self.conn_wake);
            if let Poll::Ready(out) =
                Pin::new(&mut self.conn).poll(&mut Context::from_waker(&waker))
            {
                self.ended = Some(out);
            }
        }
        self.take_given();
        if self.streams_wake.take() {
            let waker = waker_ref(&self.streams_wake);
            let mut cx = Context::from_waker(&waker);
            while let Poll::Ready(Some(())) = self.streams.poll_next_unpin(&mut cx) {}
            // A stream's tunnel (extended CONNECT) is given here.
            self.take_given();
        }
        COLLECTING.with(|c| c.set(outer));
    }

    /// Takes in what the executor was given, to be polled next.
    fn take_given(&mut self) {
        GIVEN.with(|given| {
            let mut given = given.borrow_mut();
            if !given.is_empty() {
                self.streams.extend(given.drain(..));
                self.streams_wake.woken.store(true, Ordering::SeqCst);
            }
        });
    }

    fn any_woken(&self) -> bool {
        self.conn_wake.woken.load(Ordering::SeqCst)
            || self.streams_wake.woken.load(Ordering::SeqCst)
    }
}

// Nothing in it is ever pinned in place: the connection is `Unpin` and its
// output is only moved out.
impl<C: Future + Unpin> Unpin for WithStreams<C> {}

/// How many times one poll goes back to what woke while it was polling,
/// before it yields to the worker's other tasks.
const MAX_ROUNDS: u32 = 8;

impl<C: Future + Unpin> Future for WithStreams<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        this.task.waker.register(cx.waker());
        this.task.polling.store(true, Ordering::SeqCst);
        let mut rounds = 0;
        loop {
            this.poll_woken();
            rounds += 1;
            if this.any_woken() {
                if rounds < MAX_ROUNDS {
                    continue;
                }
                // Others on this worker get their turn first.
                this.task.polling.store(false, Ordering::SeqCst);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // A wake from another thread between the check and here finds
            // `polling` cleared and wakes the task; one just before it is
            // seen by the second check.
            this.task.polling.store(false, Ordering::SeqCst);
            if !this.any_woken() {
                break;
            }
            this.task.polling.store(true, Ordering::SeqCst);
        }
        if this.streams.is_empty() {
            if let Some(out) = this.ended.take() {
                return Poll::Ready(out);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use tokio::sync::oneshot;

    /// A connection that starts one stream per poll until told to end.
    struct FakeConn {
        start: Vec<oneshot::Receiver<()>>,
        finished: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        end: oneshot::Receiver<()>,
    }

    impl Future for FakeConn {
        type Output = &'static str;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            while let Some(rx) = self.start.pop() {
                let finished = self.finished.clone();
                ConnExec.execute(async move {
                    let _ = rx.await;
                    finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            Pin::new(&mut self.end).poll(cx).map(|_| "ended")
        }
    }

    #[tokio::test]
    async fn streams_run_in_the_connection_and_outlive_its_end() {
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| oneshot::channel::<()>()).unzip();
        let (end_tx, end_rx) = oneshot::channel();
        let mut both = WithStreams::new(FakeConn {
            start: rxs,
            finished: finished.clone(),
            end: end_rx,
        });
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(both.streams(), 3, "the streams are the connection's");
        let mut txs = txs.into_iter();
        let _ = txs.next().map(|tx| tx.send(()));
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The connection ends; the future waits for its two streams left.
        let _ = end_tx.send(());
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert!(!both.with_conn(|_| ()), "the connection has ended");
        assert_eq!(both.streams(), 2);
        for tx in txs {
            let _ = tx.send(());
        }
        assert_eq!(Pin::new(&mut both).poll(&mut cx), Poll::Ready("ended"));
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// A connection whose one stream, once polled, hands the executor a
    /// tunnel (as hyper does for an extended CONNECT).
    struct TunnelConn(Option<oneshot::Receiver<()>>);

    impl Future for TunnelConn {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if let Some(rx) = self.0.take() {
                ConnExec.execute(async move {
                    ConnExec.execute(async move {
                        let _ = rx.await;
                    });
                });
            }
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_tunnel_a_stream_starts_is_the_connections_own() {
        let (tx, rx) = oneshot::channel();
        let mut both = WithStreams::new(TunnelConn(Some(rx)));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(both.streams(), 1, "the stream ended, its tunnel runs here");
        assert!(GIVEN.with(|g| g.borrow().is_empty()), "nothing left behind");
        let _ = tx.send(());
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(both.streams(), 0);
    }

    /// Counts its polls; never ends.
    struct Polls(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Future for Polls {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Poll::Pending
        }
    }

    #[test]
    fn the_connection_is_polled_when_woken_or_acted_on() {
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = || polls.load(std::sync::atomic::Ordering::SeqCst);
        let mut both = WithStreams::new(Polls(polls.clone()));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(count(), 1, "polled once to start");
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(count(), 1, "not woken, not polled");
        // A graceful shutdown changes the connection's state from outside
        // a poll: it is polled next, to act on it.
        assert!(both.with_conn(|_| ()));
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(count(), 2);
        waker_ref(&both.conn_wake).wake_by_ref();
        assert!(Pin::new(&mut both).poll(&mut cx).is_pending());
        assert_eq!(count(), 3);
    }

    #[tokio::test]
    async fn given_outside_a_connection_it_is_spawned() {
        let (tx, rx) = oneshot::channel();
        ConnExec.execute(async move {
            let _ = tx.send("ran");
        });
        let ran = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        assert_eq!(ran.ok().and_then(Result::ok), Some("ran"));
    }
}
