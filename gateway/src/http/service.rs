//! The HTTP service of a listener's connections: each request becomes an
//! [`Exchange`](super::exchange::Exchange) whose response body carries it
//! to its end. The HTTP edge never errors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::access_log::LoggedBody;
use super::exchange::Exchange;
use super::head::HeadFields;
use super::tunnel::{Downstream, Handoff};
use crate::config::HttpLimitsConfig;
use crate::listener::ConnActivity;
use crate::state::Snapshot;

/// What the service knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub scheme: &'static str,
    pub tls_version: Option<String>,
    /// A client certificate was presented and verified (mTLS).
    pub mtls: bool,
    /// The verified client certificate's subject, RFC 4514 style.
    pub peer_subject: Option<String>,
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
    /// The peer's address as `X-Forwarded-For` carries it, built once.
    pub forwarded_for: HeaderValue,
}

impl ConnInfo {
    /// A cleartext connection from `peer` to `local`.
    pub fn plain(peer: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            local,
            scheme: "http",
            tls_version: None,
            mtls: false,
            peer_subject: None,
            sni: None,
            forwarded_for: forwarded_for(peer),
        }
    }
}

/// The peer's IP as a header value.
pub fn forwarded_for(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The HTTP service of one listener, shared by its connections.
pub struct HttpService {
    pub listener: Arc<str>,
    pub state: Arc<ArcSwap<Snapshot>>,
    /// The listener's limits (body and request read timeouts).
    pub limits: HttpLimitsConfig,
}

/// Per-connection handle on the service.
#[derive(Clone)]
pub struct ConnService {
    pub service: Arc<HttpService>,
    pub conn: Arc<ConnInfo>,
    pub activity: Arc<ConnActivity>,
    /// The connection's place under the listener's `max_connections`, held
    /// as long as any clone of this (the connection, an upgraded tunnel).
    pub permit: Arc<dyn std::any::Any + Send + Sync>,
    /// Where an upgraded connection is handed over, when hyper does not
    /// own the connection for its whole life (cleartext HTTP/1.1).
    pub handoff: Option<Arc<Handoff>>,
}

impl ConnService {
    /// The client's side of an upgrade this request asks for, once the
    /// response has switched protocols.
    pub fn downstream_upgrade<B>(&self, req: &mut Request<B>) -> Downstream {
        match &self.handoff {
            Some(handoff) => Downstream::Handed(handoff.expect()),
            None => Downstream::Hyper(hyper::upgrade::on(req)),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<LoggedBody>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Started here, not in the future: a request is counted from the
        // moment its head is parsed, even if the future is never polled.
        // Boxed once, for the future and then the response body to carry
        // a pointer, not the whole exchange.
        let head = HeadFields::scan(req.headers(), req.version());
        // Only an HTTP/1.x exchange can end its connection; an HTTP/2
        // stream never does.
        let http1 = req.version() <= http::Version::HTTP_11;
        if http1 && !head.keep_alive {
            self.activity.close_after_response();
        }
        let exchange = Box::new(Exchange::start(self, &req, head));
        Box::pin(exchange.serve(req, http1))
    }
}
