//! Recipe: verify HS256 JWT bearer tokens; 401 with a JSON body otherwise,
//! `sub` passed upstream. See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gateway_sdk::{Decision, Filter, LocalResponse, Request};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The shared HMAC key.
    pub secret: String,
    /// Required `iss`, if any.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Header carrying the `sub` claim upstream.
    #[serde(default = "default_subject_header")]
    pub subject_header: String,
    /// Keep the `Authorization` header for the upstream.
    #[serde(default)]
    pub forward_token: bool,
    /// Allowed clock skew for `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_subject_header() -> String {
    "x-jwt-sub".into()
}

fn default_leeway() -> u64 {
    30
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iss: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// Checks `token` and returns its claims, or why it is refused.
fn verify(config: &Config, token: &str, now: u64) -> Result<Claims, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token");
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| "malformed token");
    let head: Header = serde_json::from_slice(&decode(header)?).map_err(|_| "malformed token")?;
    // Only HS256: accepting `none` or another algorithm is the classic JWT hole.
    if head.alg != "HS256" {
        return Err("unsupported algorithm");
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(config.secret.as_bytes()).map_err(|_| "bad key")?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&decode(signature)?)
        .map_err(|_| "bad signature")?;
    let claims: Claims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| "malformed claims")?;
    if claims
        .exp
        .is_some_and(|exp| now >= exp + config.leeway_seconds)
    {
        return Err("token expired");
    }
    if claims
        .nbf
        .is_some_and(|nbf| now + config.leeway_seconds < nbf)
    {
        return Err("token not yet valid");
    }
    if config.issuer.is_some() && claims.iss != config.issuer {
        return Err("wrong issuer");
    }
    Ok(claims)
}

fn unauthorized(reason: &str) -> LocalResponse {
    LocalResponse::json(
        401,
        &serde_json::json!({"error": "invalid_token", "error_description": reason}),
    )
    .header(
        "www-authenticate",
        format!("Bearer error=\"invalid_token\", error_description=\"{reason}\""),
    )
}

/// The filter; one per request.
pub struct Jwt {
    config: Rc<Config>,
}

impl Filter for Jwt {
    type Config = Config;

    fn validate_config(config: &Config) -> Result<(), String> {
        if config.secret.is_empty() {
            return Err("secret must not be empty".into());
        }
        Ok(())
    }

    fn new(config: &Rc<Config>) -> Self {
        Jwt {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        // Never trust a subject header the client sent itself.
        request.remove_header(&self.config.subject_header);
        let authorization = request.header("authorization").unwrap_or_default();
        let Some(token) = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
        else {
            return unauthorized("missing bearer token").into();
        };
        match verify(
            &self.config,
            token.trim(),
            gateway_sdk::time::unix_seconds(),
        ) {
            Ok(claims) => {
                if let Some(sub) = claims.sub {
                    request.set_header(&self.config.subject_header, &sub);
                }
                if !self.config.forward_token {
                    request.remove_header("authorization");
                }
                Decision::Continue
            }
            Err(reason) => {
                gateway_sdk::debug!("token refused: {reason}");
                unauthorized(reason).into()
            }
        }
    }
}

gateway_sdk::export_filter!(Jwt);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest};
    use std::time::Duration;

    const SECRET: &str = "s3cret";
    /// The testing host's clock at start: 2026-01-01T00:00:00Z.
    const NOW: u64 = 1_767_225_600;

    fn token(secret: &str, alg: &str, claims: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{header}.{payload}.{signature}")
    }

    fn test() -> FilterTest<Jwt> {
        FilterTest::new(r#"{"secret": "s3cret", "issuer": "me"}"#).unwrap()
    }

    fn with(token: &str) -> TestRequest {
        TestRequest::get("/").header("authorization", &format!("Bearer {token}"))
    }

    #[test]
    fn a_good_token_passes_with_its_subject() {
        let mut test = test();
        let good = token(
            SECRET,
            "HS256",
            serde_json::json!({"sub": "ann", "iss": "me", "exp": NOW + 60}),
        );
        let exchange = test.request(with(&good).header("x-jwt-sub", "forged"));
        assert!(exchange.is_continue());
        assert_eq!(exchange.request_header("x-jwt-sub").as_deref(), Some("ann"));
        assert_eq!(exchange.request_header("authorization"), None);
    }

    #[test]
    fn bad_tokens_get_401_with_a_json_reason() {
        let mut test = test();
        let cases = [
            (
                token("other", "HS256", serde_json::json!({"iss": "me"})),
                "bad signature",
            ),
            (
                token(SECRET, "none", serde_json::json!({"iss": "me"})),
                "unsupported algorithm",
            ),
            (
                token(
                    SECRET,
                    "HS256",
                    serde_json::json!({"iss": "me", "exp": NOW - 31}),
                ),
                "token expired",
            ),
            (
                token(SECRET, "HS256", serde_json::json!({"iss": "you"})),
                "wrong issuer",
            ),
            ("a.b".to_string(), "malformed token"),
        ];
        for (token, reason) in cases {
            let answer = test.request(with(&token)).local_response().unwrap();
            assert_eq!(answer.status, 401, "{reason}");
            let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(body["error_description"], reason);
        }
        let missing = test
            .request(TestRequest::get("/"))
            .local_response()
            .unwrap();
        assert_eq!(missing.status, 401);
        assert!(missing
            .headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.starts_with("Bearer")));
    }

    #[test]
    fn expiry_follows_the_gateway_clock() {
        let mut test = test();
        let good = token(
            SECRET,
            "HS256",
            serde_json::json!({"iss": "me", "exp": NOW + 60}),
        );
        assert!(test.request(with(&good)).is_continue());
        test.advance_time(Duration::from_secs(60 + 30));
        assert_eq!(test.request(with(&good)).response_status(), Some(401));
    }

    #[test]
    fn an_empty_secret_rejects_the_load() {
        assert!(FilterTest::<Jwt>::new(r#"{"secret": ""}"#).is_err());
    }
}
