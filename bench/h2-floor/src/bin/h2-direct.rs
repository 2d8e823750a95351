//! The `h2` crate driven directly (as Pingora does): streams accepted and
//! answered in the connection's task.

use bytes::Bytes;
use http::{Response, StatusCode};

fn answer() -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    h2_floor::put_fields(response.headers_mut());
    response
}

fn main() {
    h2_floor::run(|stream| async move {
        let Ok(mut conn) = h2::server::handshake(stream).await else {
            return;
        };
        while let Some(Ok((_request, mut respond))) = conn.accept().await {
            if let Ok(mut send) = respond.send_response(answer(), false) {
                let _ = send.send_data(Bytes::from_static(h2_floor::BODY), true);
            }
        }
    });
}
