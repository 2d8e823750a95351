//! What the probes share: the gateway's allocator, the answer, the
//! listener. Each probe (`src/bin`) answers every request on
//! `127.0.0.1:PORT` with the same 401 (four fields and a 13-byte body), on
//! one current-thread runtime, every connection on a task of its own.

#[path = "../../../gateway/src/allocator.rs"]
mod allocator;

#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;

use std::future::Future;

pub const BODY: &[u8] = b"unauthorized\n";

/// The answer's fields after `:status` 401, as static names and values.
pub const FIELDS: [(&str, &str); 4] = [
    ("content-type", "text/plain"),
    ("www-authenticate", "Basic realm=\"demo\""),
    ("content-length", "13"),
    ("x-request-id", "0123456789abcdef"),
];

/// Puts [`FIELDS`] into `headers` (the `http` crate's probes).
pub fn put_fields(headers: &mut http::HeaderMap) {
    for (name, value) in FIELDS {
        headers.insert(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
}

/// Serves every connection of `127.0.0.1:<first argument>` with `serve`.
pub fn run<F, Fut>(serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: PROBE PORT");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(serve(stream));
        }
    });
}
