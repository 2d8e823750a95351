//! Moving bytes both ways between a client and an upstream, keeping
//! half-close: when one side ends its writes, the other side's write half
//! is shut down and the opposite direction goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Bytes moved, per direction.
#[derive(Debug, Default)]
pub struct Transfer {
    /// Client to upstream.
    pub bytes_in: AtomicU64,
    /// Upstream to client.
    pub bytes_out: AtomicU64,
}

/// How a spliced connection ended.
#[derive(Debug)]
pub enum SpliceEnd {
    /// Both sides finished their writes.
    Done,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// A read or write failed (reset and the like).
    Failed(std::io::Error),
}

/// Splices `client` and `upstream` until both directions end, one fails,
/// or nothing moves for `idle_timeout`.
pub async fn splice(
    client: TcpStream,
    upstream: TcpStream,
    idle_timeout: Duration,
    transfer: &Transfer,
) -> SpliceEnd {
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let both = async {
        tokio::try_join!(
            pump(
                client_read,
                upstream_write,
                &transfer.bytes_in,
                &last,
                epoch
            ),
            pump(
                upstream_read,
                client_write,
                &transfer.bytes_out,
                &last,
                epoch
            ),
        )
    };
    let idle = async {
        let mut wait = idle_timeout;
        loop {
            tokio::time::sleep(wait).await;
            let since = epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            match idle_timeout
                .checked_sub(since)
                .filter(|left| !left.is_zero())
            {
                Some(left) => wait = left,
                None => return,
            }
        }
    };
    tokio::select! {
        result = both => match result {
            Ok(_) => SpliceEnd::Done,
            Err(e) => SpliceEnd::Failed(e),
        },
        () = idle => SpliceEnd::Idle,
    }
}

/// Copies one direction; at end of input, shuts down the output's writes.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    counter: &AtomicU64,
    last: &AtomicU64,
    epoch: Instant,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
