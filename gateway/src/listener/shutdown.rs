//! Graceful shutdown: for the whole gateway, or (a child) for one listener
//! removed by a reload. Every connection waits on it for its whole life,
//! and its `started()` future is polled on each of the connection's
//! wake-ups: a flag set before the signal goes out lets those polls answer
//! without taking the signal's lock. A connection waits on one signal
//! only, its listener's: the gateway's signal fires its listeners' as
//! well. That wait is part of every idle connection's memory, so it is
//! kept to one `Notified`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// One stop signal: the gateway's, or a listener's.
#[derive(Default)]
struct Signal {
    begun: AtomicBool,
    notify: Notify,
    /// The listeners' signals, fired with this one.
    children: Mutex<Vec<Weak<Signal>>>,
}

impl Signal {
    fn fire(&self) {
        // The flag first: a wait that sees it set answers without the
        // signal; one that does not was registered before the wake-up.
        if self.begun.swap(true, Ordering::AcqRel) {
            return;
        }
        self.notify.notify_waiters();
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| p.into_inner()));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.fire();
        }
    }

    /// A signal that also fires when this one does.
    fn child(&self) -> Arc<Signal> {
        let child = Arc::new(Signal::default());
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock `fire` takes its children with: either it has
        // set the flag already, or it will find this child.
        if self.begun.load(Ordering::Acquire) {
            child.begun.store(true, Ordering::Release);
        } else {
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&child));
        }
        child
    }
}

/// Tells listeners to stop accepting and connections to wind down.
#[derive(Clone)]
pub struct Shutdown {
    signal: Arc<Signal>,
    /// Held by every connection task; the drain completes when all are
    /// dropped.
    _drain: tokio::sync::mpsc::Sender<()>,
}

/// The owner's side of [`Shutdown`]. Dropping it begins the shutdown too.
pub struct ShutdownTrigger {
    signal: Arc<Signal>,
    drain_rx: tokio::sync::mpsc::Receiver<()>,
}

/// Stops one listener's child [`Shutdown`]: on [`ListenerStop::begin`] or
/// when dropped.
pub struct ListenerStop {
    signal: Arc<Signal>,
}

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownTrigger) {
        let (drain_tx, drain_rx) = tokio::sync::mpsc::channel(1);
        let signal = Arc::new(Signal::default());
        (
            Shutdown {
                signal: signal.clone(),
                _drain: drain_tx,
            },
            ShutdownTrigger { signal, drain_rx },
        )
    }

    /// A shutdown that also begins when the returned stop begins.
    pub fn child(&self) -> (Shutdown, ListenerStop) {
        let signal = self.signal.child();
        let child = Shutdown {
            signal: signal.clone(),
            _drain: self._drain.clone(),
        };
        (child, ListenerStop { signal })
    }

    /// Resolves once shutdown has begun.
    pub fn started(&mut self) -> impl Future<Output = ()> + '_ {
        let signal = &*self.signal;
        Started {
            // Made now: `notify_waiters` wakes every `Notified` made before
            // it, polled or not.
            wait: signal.notify.notified(),
            begun: &signal.begun,
            registered: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Shutdown::started`]: once its wait has registered this task's
    /// waker with the signal, further polls look only at the flag (the
    /// signal wakes that waker after setting it).
    struct Started<'a> {
        #[pin]
        wait: Notified<'a>,
        begun: &'a AtomicBool,
        registered: Option<Waker>,
    }
}

impl Future for Started<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.begun.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this
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
        self.signal.fire();
        tokio::time::timeout(grace, async {
            while self.drain_rx.recv().await.is_some() {}
        })
        .await
        .is_ok()
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.signal.fire();
    }
}

impl ListenerStop {
    /// Stops the listener; its connections drain.
    pub fn begin(&self) {
        self.signal.fire();
    }
}

impl Drop for ListenerStop {
    fn drop(&mut self) {
        self.signal.fire();
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
    fn the_gateway_stopping_starts_every_listeners_shutdown() {
        let (root, trigger) = Shutdown::new();
        let (mut child, _stop) = root.child();
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut started = std::pin::pin!(child.started());
        assert!(poll_once(started.as_mut(), &waker).is_pending());
        drop(trigger);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll_once(started.as_mut(), &waker).is_ready());
        // A listener added after the gateway began stopping starts stopped.
        let (mut late, _late_stop) = root.child();
        assert!(poll_once(std::pin::pin!(late.started()), &waker).is_ready());
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
