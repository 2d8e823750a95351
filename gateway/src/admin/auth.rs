//! Who may use the admin: the bearer token check, and refusing cross-site writes.

use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use subtle::ConstantTimeEq as _;

use crate::http::body::Body;

/// Paths load balancers and orchestrators probe without credentials.
pub(super) fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/ready")
}

/// Whether `headers` carry `token` as `Authorization: Bearer TOKEN`, or
/// as the password of HTTP Basic (what a browser's login prompt sends;
/// the user name is ignored). No token configured: everyone may.
pub(super) fn is_authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    let offered = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        match decoded.iter().position(|b| *b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    bool::from(offered.as_slice().ct_eq(token.as_bytes()))
}

/// 401 with the challenges: `Bearer` for tools, `Basic` so that a browser
/// asks for the token (any user name, the token as password).
pub(super) fn challenge() -> Response<Body> {
    let mut resp = crate::http::error::text_response(
        StatusCode::UNAUTHORIZED,
        "admin token required (Authorization: Bearer TOKEN)\n".into(),
    );
    let headers = resp.headers_mut();
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gateway admin\""),
    );
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"gateway admin\", charset=\"UTF-8\""),
    );
    resp
}

/// A state-changing request that a web page on another site made the
/// browser send (a form posted to `http://127.0.0.1:9901/drain`): refused,
/// since a loopback admin without a token would otherwise obey any page
/// the operator happens to visit.
pub(super) fn is_cross_site_write(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            Some(origin_host) != host
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let token = Some("s3cret");
        assert!(is_authorized(None, &HeaderMap::new()));
        assert!(!is_authorized(token, &HeaderMap::new()));
        assert!(is_authorized(
            token,
            &with(header::AUTHORIZATION, "Bearer s3cret")
        ));
        assert!(is_authorized(
            token,
            &with(header::AUTHORIZATION, "bearer  s3cret ")
        ));
        assert!(!is_authorized(
            token,
            &with(header::AUTHORIZATION, "Bearer s3cre")
        ));
        assert!(!is_authorized(
            token,
            &with(header::AUTHORIZATION, "Bearer s3cret2")
        ));
        // "ops:s3cret" and "ops:nope"
        assert!(is_authorized(
            token,
            &with(header::AUTHORIZATION, "Basic b3BzOnMzY3JldA==")
        ));
        assert!(!is_authorized(
            token,
            &with(header::AUTHORIZATION, "Basic b3BzOm5vcGU=")
        ));
        assert!(!is_authorized(
            token,
            &with(header::AUTHORIZATION, "Basic !!!")
        ));
        assert!(!is_authorized(
            token,
            &with(header::AUTHORIZATION, "s3cret")
        ));
    }

    #[test]
    fn writes_from_other_sites_are_refused() {
        let mut same = with(header::HOST, "127.0.0.1:9901");
        same.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9901"),
        );
        assert!(!is_cross_site_write(&Method::POST, &same));
        let mut other = with(header::HOST, "127.0.0.1:9901");
        other.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(is_cross_site_write(&Method::POST, &other));
        assert!(!is_cross_site_write(&Method::GET, &other));
        let fetch = with(
            header::HeaderName::from_static("sec-fetch-site"),
            "cross-site",
        );
        assert!(is_cross_site_write(&Method::POST, &fetch));
        assert!(!is_cross_site_write(&Method::POST, &HeaderMap::new()));
    }
}
