//! Graceful shutdown: for the whole gateway, or (a child) for one listener
//! removed by a reload. Every connection waits on it for its whole life,
//! and its `started()` future is polled on each of the connection's
//! wake-ups: a flag set before the signal goes out lets those polls answer
//! without taking the signal's locks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::watch;

/// Tells listeners to stop accepting and connections to wind down.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    begun: Arc<AtomicBool>,
    local: Option<(watch::Receiver<bool>, Arc<AtomicBool>)>,
    /// Held by every connection task; the drain completes when all are
    /// dropped.
    _drain: tokio::sync::mpsc::Sender<()>,
}

/// The owner's side of [`Shutdown`]. Dropping it begins the shutdown too.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
    begun: Arc<AtomicBool>,
    drain_rx: tokio::sync::mpsc::Receiver<()>,
}

/// Stops one listener's child [`Shutdown`]: on [`ListenerStop::begin`] or
/// when dropped.
pub struct ListenerStop {
    tx: watch::Sender<bool>,
    begun: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownTrigger) {
        let (tx, rx) = watch::channel(false);
        let (drain_tx, drain_rx) = tokio::sync::mpsc::channel(1);
        let begun = Arc::new(AtomicBool::new(false));
        (
            Shutdown {
                rx,
                begun: begun.clone(),
                local: None,
                _drain: drain_tx,
            },
            ShutdownTrigger {
                tx,
                begun,
                drain_rx,
            },
        )
    }

    /// A shutdown that also begins when the returned stop begins.
    pub fn child(&self) -> (Shutdown, ListenerStop) {
        let (tx, rx) = watch::channel(false);
        let begun = Arc::new(AtomicBool::new(false));
        let mut child = self.clone();
        child.local = Some((rx, begun.clone()));
        (child, ListenerStop { tx, begun })
    }

    /// Resolves once shutdown has begun.
    pub fn started(&mut self) -> impl Future<Output = ()> + '_ {
        let Shutdown {
            rx, begun, local, ..
        } = self;
        let (local_rx, local_begun) = match local {
            Some((rx, begun)) => (Some(rx), Some(&**begun)),
            None => (None, None),
        };
        Started {
            wait: async move {
                match local_rx {
                    None => {
                        let _ = rx.wait_for(|stop| *stop).await;
                    }
                    Some(local) => {
                        tokio::select! {
                            _ = rx.wait_for(|stop| *stop) => {}
                            _ = local.wait_for(|stop| *stop) => {}
                        }
                    }
                }
            },
            begun,
            local: local_begun,
            registered: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Shutdown::started`]: once its wait has registered this task's
    /// waker with the signal, further polls look only at the flags (the
    /// signal wakes that waker after setting them).
    struct Started<'a, F> {
        #[pin]
        wait: F,
        begun: &'a AtomicBool,
        local: Option<&'a AtomicBool>,
        registered: Option<Waker>,
    }
}

impl<F: Future<Output = ()>> Future for Started<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let begun = this.begun.load(Ordering::Acquire)
            || this.local.is_some_and(|l| l.load(Ordering::Acquire));
        if !begun
            && this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let poll = this.wait.poll(cx);
        if poll.is_pending() {
            *this.registered = Some(cx.waker().clone());
        }
        poll
    }
}

impl ShutdownTrigger {
    /// Signals shutdown and waits until every connection holding a
    /// [`Shutdown`] has ended, or `grace` has passed. True when all ended.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        self.begun.store(true, Ordering::Release);
        let _ = self.tx.send(true);
        tokio::time::timeout(grace, async {
            while self.drain_rx.recv().await.is_some() {}
        })
        .await
        .is_ok()
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.begun.store(true, Ordering::Release);
    }
}

impl ListenerStop {
    /// Stops the listener; its connections drain.
    pub fn begin(&self) {
        self.begun.store(true, Ordering::Release);
        let _ = self.tx.send(true);
    }
}

impl Drop for ListenerStop {
    fn drop(&mut self) {
        self.begun.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `started` once with a waker counting its wake-ups.
    fn poll_once<F: Future<Output = ()>>(f: Pin<&mut F>, waker: &Waker) -> Poll<()> {
        f.poll(&mut Context::from_waker(waker))
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pending_start_wakes_and_resolves_when_the_gateway_or_the_listener_stops() {
        let (root, trigger) = Shutdown::new();
        let (mut child, stop) = root.child();
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        {
            let mut started = std::pin::pin!(child.started());
            assert!(poll_once(started.as_mut(), &waker).is_pending());
            // Re-polls before any signal stay pending.
            assert!(poll_once(started.as_mut(), &waker).is_pending());
            stop.begin();
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
            assert!(poll_once(started.as_mut(), &waker).is_ready());
        }
        drop(stop);

        let mut root = root;
        let mut started = std::pin::pin!(root.started());
        assert!(poll_once(started.as_mut(), &waker).is_pending());
        drop(trigger);
        assert!(count.0.load(Ordering::SeqCst) >= 2);
        assert!(poll_once(started.as_mut(), &waker).is_ready());
    }

    #[test]
    fn another_waker_is_registered_again() {
        let (mut root, trigger) = Shutdown::new();
        let first = Arc::new(Count(Default::default()));
        let second = Arc::new(Count(Default::default()));
        let mut started = std::pin::pin!(root.started());
        assert!(poll_once(started.as_mut(), &Waker::from(first.clone())).is_pending());
        assert!(poll_once(started.as_mut(), &Waker::from(second.clone())).is_pending());
        drop(trigger);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
