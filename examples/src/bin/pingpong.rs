// Run: cargo run --release -p gateway-examples --bin pingpong -- \
//          --listen 127.0.0.1:8080 --listen 127.0.0.1:8181
//
// The demo upstream of the seed scenario: on every address it listens on,
// `GET /ping` answers 200 `pong from <port>` and every other path 404, over
// HTTP/1.1 (keep-alive) or HTTP/2 cleartext with prior knowledge. The port in
// the body shows which upstream a gateway picked for each request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// A ping-pong HTTP upstream for gateway demos and tests.
#[derive(Parser, Debug)]
#[command(name = "pingpong")]
struct Args {
    /// Address to serve on; repeat for several (each answers with its own port).
    #[arg(long = "listen", required = true)]
    listen: Vec<SocketAddr>,

    /// Do not log each request (for load tests).
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut listeners = Vec::with_capacity(args.listen.len());
    for addr in &args.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        println!("pingpong listening on {}", listener.local_addr()?);
        listeners.push(listener);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        servers.spawn(serve(listener, stop_rx.clone(), args.quiet));
    }

    shutdown_signal().await?;
    println!("pingpong shutting down");
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    Ok(())
}

/// Accepts connections on one listener until `stop` turns true, then lets
/// in-flight requests finish (idle keep-alive connections are closed).
async fn serve(listener: TcpListener, mut stop: tokio::sync::watch::Receiver<bool>, quiet: bool) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    eprintln!("pingpong {port}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service_fn(move |req| answer(port, quiet, req));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            // Clients hanging up mid-request are normal under load tests.
            let _ = conn.await;
        });
    }
    drop(listener);
    // Bounded: a stuck client must not keep the process alive.
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

async fn answer(
    port: u16,
    quiet: bool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !quiet {
        println!("{port} {} {}", req.method(), req.uri().path());
    }
    let (status, body) = if req.uri().path() == "/ping" {
        (StatusCode::OK, format!("pong from {port}"))
    } else {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            res = tokio::signal::ctrl_c() => res.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
