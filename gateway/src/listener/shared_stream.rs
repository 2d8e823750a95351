//! A cleartext HTTP/1.1 connection's socket, shared by hyper (which reads
//! and writes it) and the connection's own loop (which watches it for the
//! client going away while a request is in flight, [`PeerWatch`]).
//!
//! hyper can watch for that itself: while it waits for an answer it
//! keeps reading the socket. Each of those reads first makes room for
//! 8 KiB in its read buffer, and the buffer is still shared with the
//! request being answered, so every request allocated a new one. hyper
//! is told not to (`half_close`); the watch is a one-byte peek, redone
//! only when the socket wakes it. Most requests are answered within a
//! few milliseconds, and watching one costs more than answering it from
//! a filter: a request is watched only once it has waited through a tick
//! of the worker's [`later`] clock (at most [`later::PERIOD`] twice).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream read and written through a shared handle.
#[derive(Debug)]
pub(super) struct SharedStream(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    stream: TcpStream,
    /// hyper waited to read: the socket's one read waiter is its own
    /// again, no longer the watch's.
    hyper_waits: AtomicBool,
}

impl SharedStream {
    pub(super) fn new(stream: TcpStream) -> Self {
        SharedStream(Arc::new(Shared {
            stream,
            hyper_waits: AtomicBool::new(false),
        }))
    }

    /// The socket, for the connection's loop.
    pub(super) fn stream(&self) -> &TcpStream {
        &self.0.stream
    }

    /// Writes `len` bytes with `write` once the socket is writable,
    /// waiting again when its readiness was stale.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.stream.poll_write_ready(cx))?;
            match write(&self.0.stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(n) => {
                    if n > 0 && n < len {
                        // A short write filled the socket's buffer, as
                        // tokio's own stream takes it (see `poll_read`).
                        self.forget(Interest::WRITABLE);
                    }
                    return Poll::Ready(Ok(n));
                }
                r => return Poll::Ready(r),
            }
        }
    }

    /// Clears the socket's readiness for `interest` (unless it became
    /// ready again since it was last seen), with no system call.
    fn forget(&self, interest: Interest) {
        let _ = self
            .0
            .stream
            .try_io(interest, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.0.stream.poll_read_ready(cx)?.is_pending() {
                self.0.hyper_waits.store(true, Ordering::Relaxed);
                return Poll::Pending;
            }
            // SAFETY: `try_read_buf` only writes bytes into the slice, from
            // its start, and says how many; those are then marked filled.
            let mut dst: &mut [MaybeUninit<u8>] = unsafe { buf.unfilled_mut() };
            let room = dst.len();
            match self.0.stream.try_read_buf(&mut dst) {
                Ok(n) => {
                    // SAFETY: the first `n` unfilled bytes were just written.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    if n > 0 && n < room {
                        // A short read drained the socket: forget its
                        // readiness now, as tokio's own stream does, rather
                        // than learn it from one more read's `EAGAIN`. Bytes
                        // that come later make the socket ready again.
                        self.forget(Interest::READABLE);
                    }
                    return Poll::Ready(Ok(()));
                }
                // The readiness was stale and is now cleared: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, buf.len(), |s| s.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.poll_write_with(cx, len, |s| s.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.0.stream).shutdown(std::net::Shutdown::Write))
    }
}

/// Watches a connection's socket for the client going away while a
/// request is in flight. The peek registers a waker of the watch's own,
/// so the connection's task, which is woken for everything its requests
/// wait on, peeks again only when the socket woke it (or hyper took the
/// socket's read waiter back).
pub(super) struct PeerWatch {
    shared: Arc<Shared>,
    /// Made when the first request is watched: a connection whose
    /// requests are all answered within a tick never needs it.
    wake: Option<(Arc<WatchWake>, Waker)>,
    /// The request (by count started) the peek is registered for.
    armed_for: Option<u64>,
    /// A request in flight when the connection asked to be woken at the
    /// next tick, and that tick's generation.
    waiting: Option<(u64, u64)>,
    /// The request after which the client sent more bytes (a body, the
    /// next request): hyper reads them in turn, and sees the end after.
    sent_more: Option<u64>,
}

#[derive(Default)]
struct WatchWake {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WatchWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl PeerWatch {
    pub(super) fn new(stream: &SharedStream) -> Self {
        PeerWatch {
            shared: stream.0.clone(),
            wake: None,
            armed_for: None,
            waiting: None,
            sent_more: None,
        }
    }

    /// Polled while request `request` is in flight; ready once the client
    /// has closed (or reset) its side.
    pub(super) fn poll_gone(&mut self, request: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.sent_more == Some(request) {
            return Poll::Pending;
        }
        if self.armed_for != Some(request) {
            // Watched only once it has waited through a tick.
            let generation = later::generation();
            match self.waiting {
                Some((r, g)) if r == request && g != generation => {}
                Some((_, g)) if g == generation => {
                    self.waiting = Some((request, g));
                    return Poll::Pending;
                }
                _ => {
                    later::wake_at_next_tick(cx.waker());
                    self.waiting = Some((request, generation));
                    return Poll::Pending;
                }
            }
        }
        let (wake, waker) = self.wake.get_or_insert_with(|| {
            let wake = Arc::new(WatchWake::default());
            (wake.clone(), Waker::from(wake))
        });
        let fired = wake.fired.load(Ordering::Acquire);
        let hyper_waits = self.shared.hyper_waits.load(Ordering::Relaxed);
        if self.armed_for == Some(request) && !fired && !hyper_waits {
            return Poll::Pending;
        }
        if fired {
            wake.fired.store(false, Ordering::Relaxed);
        }
        if hyper_waits {
            self.shared.hyper_waits.store(false, Ordering::Relaxed);
        }
        wake.task.register(cx.waker());
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match self
            .shared
            .stream
            .poll_peek(&mut Context::from_waker(waker), &mut buf)
        {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                self.sent_more = Some(request);
                Poll::Pending
            }
            Poll::Pending => {
                self.armed_for = Some(request);
                Poll::Pending
            }
        }
    }
}

/// A worker's coarse clock for connections whose request is still in
/// flight: one timer per worker thread, running only while some
/// connection waits on it, wakes each of them once per tick.
pub(super) mod later {
    use std::cell::{Cell, RefCell};
    use std::task::Waker;
    use std::time::Duration;

    /// A tick.
    pub const PERIOD: Duration = Duration::from_millis(100);

    thread_local! {
        static GENERATION: Cell<u64> = const { Cell::new(0) };
        /// The connections to wake at the next tick, and whether the
        /// clock runs.
        static WAITING: RefCell<(Vec<Waker>, bool)> = const { RefCell::new((Vec::new(), false)) };
    }

    /// Ticks so far on this thread.
    pub fn generation() -> u64 {
        GENERATION.with(Cell::get)
    }

    /// Wakes `waker` at the next tick (once; ask again after it).
    pub fn wake_at_next_tick(waker: &Waker) {
        let start = WAITING.with(|w| {
            let mut w = w.borrow_mut();
            w.0.push(waker.clone());
            !std::mem::replace(&mut w.1, true)
        });
        if start {
            tokio::spawn(tick());
        }
    }

    /// Runs on the worker's own thread (each worker is a single-threaded
    /// runtime) while connections wait on it.
    async fn tick() {
        loop {
            tokio::time::sleep(PERIOD).await;
            GENERATION.with(|g| g.set(g.get() + 1));
            let wakers = WAITING.with(|w| {
                let mut w = w.borrow_mut();
                if w.0.is_empty() {
                    w.1 = false;
                }
                std::mem::take(&mut w.0)
            });
            if wakers.is_empty() {
                return;
            }
            for waker in wakers {
                waker.wake();
            }
        }
    }
}
