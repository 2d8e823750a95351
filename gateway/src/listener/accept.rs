//! The accept loop every listener kind shares, and binding one socket per
//! worker: at most `max_connections` served at once, stop on shutdown,
//! back off on accept errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::Shutdown;

/// A listener's admission, shared by its workers' accept loops: the
/// `max_connections` limit, and the connections each worker serves.
///
/// The kernel spreads new connections over the workers' `SO_REUSEPORT`
/// sockets by a hash of their addresses: a few clients with many
/// connections each (a load balancer in front, a load generator) often
/// land 60/40 or worse, and one worker then limits them all. So a worker
/// that accepts a connection while it serves two or more than the least
/// busy worker hands it over, before reading a byte of it, to be served
/// there for its whole life (Envoy's `exact_balance`, by connection
/// count). Connections spread evenly by the kernel are never moved.
pub struct Gate {
    permits: Arc<Semaphore>,
    workers: Box<[Slot]>,
}

/// One worker's side of a [`Gate`].
struct Slot {
    /// Connections this worker serves (or has been handed, not yet taken).
    load: AtomicUsize,
    handed: mpsc::UnboundedSender<Handed>,
    /// Taken by the worker's accept loop when it starts.
    inbox: Mutex<Option<mpsc::UnboundedReceiver<Handed>>>,
    /// While the worker's accept loop runs: only then is it handed
    /// connections (one that never started would leave them waiting).
    open: AtomicBool,
}

/// Marks a worker's slot open for as long as its accept loop runs.
struct Open<'a>(&'a Slot);

impl<'a> Open<'a> {
    fn new(slot: &'a Slot) -> Self {
        slot.open.store(true, Ordering::Relaxed);
        Self(slot)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.store(false, Ordering::Relaxed);
    }
}

/// A connection handed to another worker, with its place.
struct Handed {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: ConnPermit,
}

/// A connection's place: under its listener's `max_connections`, and in
/// the load of the worker serving it. Held for the connection's life.
pub struct ConnPermit {
    _permit: OwnedSemaphorePermit,
    gate: Arc<Gate>,
    worker: usize,
}

impl ConnPermit {
    fn new(permit: OwnedSemaphorePermit, gate: Arc<Gate>, worker: usize) -> Self {
        crate::metrics::worker_connection(worker, 1);
        Self {
            _permit: permit,
            gate,
            worker,
        }
    }

    /// Counts the connection in `worker`'s load instead.
    fn move_to(&mut self, worker: usize) {
        self.gate.workers[worker]
            .load
            .fetch_add(1, Ordering::Relaxed);
        crate::metrics::worker_connection(worker, 1);
        self.leave();
        self.worker = worker;
    }

    /// Takes the connection out of its worker's load.
    fn leave(&self) {
        self.gate.workers[self.worker]
            .load
            .fetch_sub(1, Ordering::Relaxed);
        crate::metrics::worker_connection(self.worker, -1);
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Gate {
    /// At most `max_connections` at once, over `workers` accept loops.
    pub fn new(max_connections: usize, workers: usize) -> Arc<Self> {
        let workers = (0..workers.max(1))
            .map(|_| {
                let (handed, inbox) = mpsc::unbounded_channel();
                Slot {
                    load: AtomicUsize::new(0),
                    handed,
                    inbox: Mutex::new(Some(inbox)),
                    open: AtomicBool::new(false),
                }
            })
            .collect();
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_connections)),
            workers,
        })
    }

    /// The calling worker's slot (the last one off the workers).
    fn slot(&self) -> usize {
        crate::worker::index().min(self.workers.len() - 1)
    }

    /// The worker to serve a connection `me` accepted, counted in its
    /// load: `me`, unless it serves two or more than the least busy one
    /// whose accept loop runs.
    fn assign(&self, me: usize) -> usize {
        let load = |i: usize| self.workers[i].load.load(Ordering::Relaxed);
        let mine = load(me);
        let (least, least_load) = (0..self.workers.len())
            .filter(|&i| self.workers[i].open.load(Ordering::Relaxed))
            .map(|i| (i, load(i)))
            .min_by_key(|&(_, l)| l)
            .unwrap_or((me, mine));
        let to = if mine >= least_load + 2 { least } else { me };
        self.workers[to].load.fetch_add(1, Ordering::Relaxed);
        to
    }

    /// Connections each worker serves (for status and tests).
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect()
    }
}

/// Accepts until shutdown, handing each connection (with nodelay set) and
/// its place ([`ConnPermit`]) to `serve`, which must hold the place for
/// the connection's life. Connections another worker's loop handed to
/// this one (see [`Gate`]) are served the same way.
///
/// The permit is taken after the accept: the kernel spreads connections
/// over the workers' sockets, so a loop that reserved a permit before
/// accepting could sit on it while a connection waits on another worker's
/// socket. At the limit, each worker holds at most one accepted connection
/// until a permit frees and accepts nothing more meanwhile.
pub async fn accept_loop(
    socket: TcpListener,
    name: &str,
    gate: Arc<Gate>,
    mut shutdown: Shutdown,
    mut serve: impl FnMut(TcpStream, SocketAddr, ConnPermit, Shutdown),
) {
    let me = gate.slot();
    let mut inbox = gate.workers[me]
        .inbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    // Closed again (and `inbox` dropped, so hand-overs fail and stay with
    // their worker) when the loop ends.
    let _open = Open::new(&gate.workers[me]);
    let mut serve_one = |stream: TcpStream, peer, permit, shutdown| {
        let _ = stream.set_nodelay(true);
        serve(stream, peer, permit, shutdown);
    };
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
            Some(handed) = recv(&mut inbox) => {
                match TcpStream::from_std(handed.stream) {
                    Ok(stream) => serve_one(stream, handed.peer, handed.permit, shutdown.clone()),
                    Err(e) => tracing::warn!(listener = name, error = %e, "cannot take a handed connection"),
                }
                continue;
            }
            () = shutdown.started() => return,
        };
        let permit = match gate.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::debug!(
                    listener = name,
                    "at max_connections: a connection waits for a slot"
                );
                tokio::select! {
                    permit = gate.permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
                    () = shutdown.started() => return,
                }
            }
        };
        let to = gate.assign(me);
        let permit = ConnPermit::new(permit, gate.clone(), to);
        if to == me {
            serve_one(stream, peer, permit, shutdown.clone());
        } else if let Some((stream, permit)) = hand_over(&gate, to, stream, peer, permit) {
            // The other worker's loop has ended (shutdown): served here.
            serve_one(stream, peer, permit, shutdown.clone());
        }
    }
}

/// The next handed connection; never, without an inbox.
async fn recv(inbox: &mut Option<mpsc::UnboundedReceiver<Handed>>) -> Option<Handed> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// Hands `stream` to worker `to`; what could not be handed comes back,
/// its place moved to this worker.
fn hand_over(
    gate: &Arc<Gate>,
    to: usize,
    stream: TcpStream,
    peer: SocketAddr,
    permit: ConnPermit,
) -> Option<(TcpStream, ConnPermit)> {
    let back = |stream: std::net::TcpStream, mut permit: ConnPermit| {
        permit.move_to(gate.slot());
        TcpStream::from_std(stream).ok().map(|s| (s, permit))
    };
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "cannot hand a connection over");
            return None;
        }
    };
    match gate.workers[to].handed.send(Handed {
        stream,
        peer,
        permit,
    }) {
        Ok(()) => None,
        Err(mpsc::error::SendError(h)) => back(h.stream, h.permit),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_loads(loads: &[usize]) -> Arc<Gate> {
        let gate = Gate::new(100, loads.len());
        for (slot, &n) in gate.workers.iter().zip(loads) {
            slot.load.store(n, Ordering::Relaxed);
            slot.open.store(true, Ordering::Relaxed);
        }
        gate
    }

    #[test]
    fn a_worker_keeps_what_it_accepts_unless_it_serves_two_more() {
        // Even, or one ahead: kept (no hand-over between close counts).
        let gate = with_loads(&[3, 3]);
        assert_eq!(gate.assign(0), 0);
        assert_eq!(gate.assign(0), 0, "one ahead");
        assert_eq!(gate.loads(), [5, 3]);
        assert_eq!(gate.assign(0), 1, "two ahead: handed to the other");
        assert_eq!(gate.loads(), [5, 4]);
        // The least busy of several gets it.
        let gate = with_loads(&[5, 4, 1, 3]);
        assert_eq!(gate.assign(0), 2);
        assert_eq!(gate.assign(3), 3, "one more than the least (2)");
        assert_eq!(gate.loads(), [5, 4, 2, 4]);
        // A worker whose accept loop does not run is never handed any.
        let gate = with_loads(&[4, 0]);
        gate.workers[1].open.store(false, Ordering::Relaxed);
        assert_eq!(gate.assign(0), 0);
        let open = Open::new(&gate.workers[1]);
        assert_eq!(gate.assign(0), 1);
        drop(open);
        assert_eq!(gate.assign(0), 0);
    }

    #[tokio::test]
    async fn a_place_leaves_its_workers_load_when_dropped() {
        let gate = Gate::new(2, 2);
        let permit = gate.permits.clone().try_acquire_owned().expect("permit");
        let to = gate.assign(1);
        let place = ConnPermit::new(permit, gate.clone(), to);
        assert_eq!(gate.loads(), [0, 1]);
        assert_eq!(gate.permits.available_permits(), 1);
        drop(place);
        assert_eq!(gate.loads(), [0, 0]);
        // A place that could not be handed over moves back with it.
        let permit = gate.permits.clone().try_acquire_owned().expect("permit");
        let mut place = ConnPermit::new(permit, gate.clone(), gate.assign(1));
        place.move_to(0);
        assert_eq!(gate.loads(), [1, 0]);
        drop(place);
        assert_eq!(gate.loads(), [0, 0]);
        assert_eq!(gate.permits.available_permits(), 2);
    }
}
