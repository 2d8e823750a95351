//! The one place where failures become statuses. Each error says who is
//! at fault, so the access log and metrics can tell them apart.

use http::{header, Response, StatusCode};

use super::body::{self, Body};
use crate::upstream::UpstreamError;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Downstream,
    Upstream,
    Gateway,
}

/// Everything that can stop a request from being proxied.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("the client did not send the request in time")]
    RequestTimeout,
    #[error("no route for this request")]
    NoRoute,
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    #[error("upstream timed out (cluster `{cluster}`, endpoint {endpoint})")]
    UpstreamTimeout { cluster: String, endpoint: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ProxyError {
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::HeadersTooLarge
            | ProxyError::RequestTimeout => Fault::Downstream,
            ProxyError::NoRoute | ProxyError::UnknownCluster(_) => Fault::Gateway,
            ProxyError::UpstreamTimeout { .. } | ProxyError::Upstream(_) => Fault::Upstream,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::UnknownCluster(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(
                UpstreamError::NoHealthyEndpoint { .. } | UpstreamError::Overloaded { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream(
                UpstreamError::Connect { .. }
                | UpstreamError::Protocol { .. }
                | UpstreamError::Http1 { .. },
            ) => StatusCode::BAD_GATEWAY,
        }
    }

    /// A short name for the access log and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::HeadersTooLarge => "headers_too_large",
            ProxyError::RequestTimeout => "request_timeout",
            ProxyError::NoRoute => "no_route",
            ProxyError::UnknownCluster(_) => "unknown_cluster",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::Upstream(UpstreamError::NoHealthyEndpoint { .. }) => "no_healthy_endpoint",
            ProxyError::Upstream(UpstreamError::Connect { .. }) => "upstream_connect_failure",
            ProxyError::Upstream(UpstreamError::Overloaded { .. }) => "upstream_overloaded",
            ProxyError::Upstream(UpstreamError::Protocol { .. } | UpstreamError::Http1 { .. }) => {
                "upstream_failure"
            }
        }
    }

    /// The response the client gets: the status and one line saying what
    /// happened (never internal addresses).
    pub fn to_response(&self) -> Response<Body> {
        let text = match self {
            ProxyError::BadRequest(why) => format!("bad request: {why}\n"),
            ProxyError::HeadersTooLarge => "request headers too large\n".to_string(),
            ProxyError::RequestTimeout => "request timed out\n".to_string(),
            ProxyError::NoRoute => "no route\n".to_string(),
            ProxyError::UnknownCluster(c) => format!("no such cluster: {c}\n"),
            ProxyError::UpstreamTimeout { .. } => "upstream timed out\n".to_string(),
            ProxyError::Upstream(UpstreamError::NoHealthyEndpoint { cluster }) => {
                format!("no healthy upstream in cluster {cluster}\n")
            }
            ProxyError::Upstream(UpstreamError::Connect { cluster, .. }) => {
                format!("cannot connect to upstream in cluster {cluster}\n")
            }
            ProxyError::Upstream(
                UpstreamError::Protocol { cluster, .. } | UpstreamError::Http1 { cluster, .. },
            ) => format!("upstream in cluster {cluster} failed\n"),
            ProxyError::Upstream(UpstreamError::Overloaded { cluster, limit }) => {
                format!("cluster {cluster} is overloaded ({})\n", limit.as_str())
            }
        };
        let mut response = text_response(self.status(), text);
        if matches!(self, ProxyError::RequestTimeout | ProxyError::BadRequest(_)) {
            // The rest of the request cannot be trusted to frame the next one.
            response
                .headers_mut()
                .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        if let ProxyError::Upstream(UpstreamError::Overloaded { limit, .. }) = self {
            // Which circuit breaker refused it, for clients and operators.
            response.headers_mut().insert(
                "x-gateway-overloaded",
                http::HeaderValue::from_static(limit.as_str()),
            );
        }
        response
    }
}

/// A plain-text response.
pub fn text_response(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let connect = UpstreamError::Connect {
            cluster: "c".into(),
            endpoint: "127.0.0.1:1".into(),
            source: std::io::Error::other("refused"),
        };
        let cases = [
            (ProxyError::BadRequest("x"), 400),
            (ProxyError::HeadersTooLarge, 431),
            (ProxyError::NoRoute, 404),
            (ProxyError::UnknownCluster("c".into()), 503),
            (
                ProxyError::UpstreamTimeout {
                    cluster: "c".into(),
                    endpoint: "e".into(),
                },
                504,
            ),
            (
                ProxyError::Upstream(UpstreamError::NoHealthyEndpoint {
                    cluster: "c".into(),
                }),
                503,
            ),
            (ProxyError::Upstream(connect), 502),
            (
                ProxyError::Upstream(UpstreamError::Overloaded {
                    cluster: "c".into(),
                    limit: crate::upstream::Limit::MaxPending,
                }),
                503,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.to_response().status().as_u16(), status);
        }
    }
}
