//! A bound on how long a write to the client may wait (nginx's
//! `send_timeout`): a client that stops reading would otherwise hold its
//! connection, the upstream connection feeding it and the request's
//! filter instances for as long as it likes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::time::{Instant, Sleep};

/// Wraps a connection's I/O; a write that makes no progress for `limit`
/// fails with `TimedOut`, which ends the connection. The timer exists only
/// once a write has had to wait.
pub struct SendTimeout<I> {
    inner: I,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting and the timer runs for it.
    waiting: bool,
}

impl<I> SendTimeout<I> {
    pub fn new(inner: I, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            waiting: false,
        }
    }

    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// The write could not proceed: start (or keep) the clock.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.limit.is_zero() {
            return Poll::Pending;
        }
        let deadline = Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.waiting {
            self.waiting = true;
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        crate::metrics::timeout("client_send");
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read within send_timeout",
        ))
    }

    fn progress<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.waiting = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }
}

impl<I: Read + Unpin> Read for SendTimeout<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: Write + Unpin> Write for SendTimeout<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncReadExt;

    async fn write_all<I: Write + Unpin>(io: &mut I, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, data)).await?;
            data = &data[n..];
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_at_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = SendTimeout::new(TokioIo::new(ours), Duration::from_millis(200));
        let started = Instant::now();
        // The pipe takes 64 bytes; nobody reads, so this write waits.
        let e = tokio::time::timeout(Duration::from_secs(30), write_all(&mut io, &[0u8; 1024]))
            .await
            .expect("bounded by send_timeout, not by this test")
            .expect_err("cut");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        // Each write waits for the reader, far less than the limit each time,
        // though the whole transfer takes longer than the limit.
        let mut io = SendTimeout::new(TokioIo::new(ours), Duration::from_secs(2));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 16];
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while total < 4096 {
                tick.tick().await;
                match theirs.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            total
        });
        write_all(&mut io, &[1u8; 4096])
            .await
            .expect("progress resets the clock");
        drop(io);
        assert_eq!(reader.await.ok(), Some(4096));
    }
}
