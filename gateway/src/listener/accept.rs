//! The accept loop every listener kind shares, and binding one socket per
//! worker: at most `max_connections` served at once, stop on shutdown,
//! back off on accept errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Shutdown;

/// Accepts until shutdown, handing each connection (with nodelay set) and
/// the permit that counts it to `serve`, which must hold the permit for
/// the connection's life. `permits` is the listener's connection limit,
/// shared by the accept loops of every worker.
///
/// The permit is taken after the accept: the kernel spreads connections
/// over the workers' sockets, so a loop that reserved a permit before
/// accepting could sit on it while a connection waits on another worker's
/// socket. At the limit, each worker holds at most one accepted connection
/// until a permit frees and accepts nothing more meanwhile.
pub async fn accept_loop(
    socket: TcpListener,
    name: &str,
    permits: Arc<Semaphore>,
    mut shutdown: Shutdown,
    mut serve: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit, Shutdown),
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.started() => return,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::debug!(
                    listener = name,
                    "at max_connections: a connection waits for a slot"
                );
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
                    () = shutdown.started() => return,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        serve(stream, peer, permit, shutdown.clone());
    }
}

/// Binds `address` `workers` times with `SO_REUSEPORT`, so each worker
/// accepts on its own socket. Port 0 is resolved by the first bind and
/// the others take the same port. A port held by another program (without
/// `SO_REUSEPORT`) fails the first bind.
pub fn bind_per_worker(
    address: SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = bind_reuseport(address)?;
    let address = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(bind_reuseport(address)?);
    }
    Ok(sockets)
}

fn bind_reuseport(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
