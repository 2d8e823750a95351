//! The accept loop every listener kind shares: at most `max_connections`
//! served at once, stop on shutdown, back off on accept errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;

use super::Shutdown;

/// Accepts until shutdown, handing each connection (with nodelay set) and
/// the permit that counts it to `serve`, which must hold the permit for
/// the connection's life.
pub async fn accept_loop(
    socket: TcpListener,
    name: &str,
    max_connections: usize,
    mut shutdown: Shutdown,
    mut serve: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit, Shutdown),
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            () = shutdown.started() => return,
        };
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
        let _ = stream.set_nodelay(true);
        serve(stream, peer, permit, shutdown.clone());
    }
}
