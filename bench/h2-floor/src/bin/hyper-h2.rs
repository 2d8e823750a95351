//! hyper's HTTP/2 server over the `h2` crate (what the gateway runs), its
//! streams spawned on the same thread.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

#[derive(Clone, Copy)]
struct Local;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for Local {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

fn main() {
    h2_floor::run(|stream| async move {
        let service = hyper::service::service_fn(|_request| async {
            let mut response = Response::new(Full::new(Bytes::from_static(h2_floor::BODY)));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            h2_floor::put_fields(response.headers_mut());
            Ok::<_, std::convert::Infallible>(response)
        });
        let _ = hyper::server::conn::http2::Builder::new(Local)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    });
}
