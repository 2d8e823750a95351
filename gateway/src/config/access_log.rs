//! The access log's vocabulary: the fields a line can hold, and the
//! nginx-like `template` of text lines (`$status $path`).

use serde::{Deserialize, Serialize};

/// One value of an access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogField {
    /// When the line was written (RFC 3339, microseconds, UTC).
    Time,
    Listener,
    /// The request id (`x-request-id`).
    Id,
    /// The client's `ip:port`.
    Client,
    Method,
    Path,
    /// The query string, without `?`.
    Query,
    Protocol,
    Status,
    Route,
    Cluster,
    /// The upstream endpoint that answered.
    Endpoint,
    /// The gateway's error kind (`upstream_timeout`, ...).
    Error,
    DurationUs,
    BytesIn,
    BytesOut,
    /// Whether the response body was sent whole.
    Completed,
    /// Time to get a connection to the upstream (near zero when pooled).
    UpstreamConnectUs,
    /// From sending the request upstream to its response head.
    UpstreamHeaderUs,
    /// The filter that answered the request itself.
    Filter,
    TlsVersion,
    /// The server name the client asked for (SNI).
    Sni,
    /// The request's trace id (tracing on).
    TraceId,
}

impl AccessLogField {
    /// The fields a line holds unless `fields` says otherwise.
    pub const DEFAULT: [AccessLogField; 16] = {
        use AccessLogField::*;
        [
            Time, Listener, Id, Client, Method, Path, Protocol, Status, Route, Cluster, Endpoint,
            Error, DurationUs, BytesIn, BytesOut, Completed,
        ]
    };

    /// The name used in config, JSON keys and text `name=value` pairs.
    pub fn name(self) -> &'static str {
        use AccessLogField::*;
        match self {
            Time => "time",
            Listener => "listener",
            Id => "id",
            Client => "client",
            Method => "method",
            Path => "path",
            Query => "query",
            Protocol => "protocol",
            Status => "status",
            Route => "route",
            Cluster => "cluster",
            Endpoint => "endpoint",
            Error => "error",
            DurationUs => "duration_us",
            BytesIn => "bytes_in",
            BytesOut => "bytes_out",
            Completed => "completed",
            UpstreamConnectUs => "upstream_connect_us",
            UpstreamHeaderUs => "upstream_header_us",
            Filter => "filter",
            TlsVersion => "tls_version",
            Sni => "sni",
            TraceId => "trace_id",
        }
    }

    fn from_name(name: &str) -> Option<AccessLogField> {
        serde::Deserialize::deserialize(
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name),
        )
        .ok()
    }
}

/// A text line's layout: literal text and `$field` (or `${field}`) values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct AccessLogTemplate {
    pub source: String,
    pub pieces: Vec<TemplatePiece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePiece {
    Text(String),
    Field(AccessLogField),
}

impl From<AccessLogTemplate> for String {
    fn from(t: AccessLogTemplate) -> String {
        t.source
    }
}

impl std::str::FromStr for AccessLogTemplate {
    type Err = String;

    fn from_str(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let (name, after) = match rest.strip_prefix('{') {
                Some(braced) => {
                    let end = braced
                        .find('}')
                        .ok_or_else(|| format!("`${{` without `}}` in `{source}`"))?;
                    (&braced[..end], &braced[end + 1..])
                }
                None => {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                }
            };
            let field = AccessLogField::from_name(name).ok_or_else(|| {
                format!("unknown access log field `${name}` (known: {})", known())
            })?;
            if !text.is_empty() {
                pieces.push(TemplatePiece::Text(std::mem::take(&mut text)));
            }
            pieces.push(TemplatePiece::Field(field));
            rest = after;
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(TemplatePiece::Text(text));
        }
        Ok(AccessLogTemplate {
            source: source.to_owned(),
            pieces,
        })
    }
}

impl<'de> Deserialize<'de> for AccessLogTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn known() -> String {
    let all = [
        AccessLogField::DEFAULT.as_slice(),
        &[
            AccessLogField::Query,
            AccessLogField::UpstreamConnectUs,
            AccessLogField::UpstreamHeaderUs,
            AccessLogField::Filter,
            AccessLogField::TlsVersion,
            AccessLogField::Sni,
            AccessLogField::TraceId,
        ],
    ]
    .concat();
    all.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessLogField::*;

    #[test]
    fn a_template_mixes_text_and_fields() {
        let t: AccessLogTemplate = r#"$client "$method ${path}x" $status"#
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.pieces,
            [
                TemplatePiece::Field(Client),
                TemplatePiece::Text(" \"".into()),
                TemplatePiece::Field(Method),
                TemplatePiece::Text(" ".into()),
                TemplatePiece::Field(Path),
                TemplatePiece::Text("x\" ".into()),
                TemplatePiece::Field(Status),
            ]
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = "$status $nope"
            .parse::<AccessLogTemplate>()
            .err()
            .unwrap_or_default();
        assert!(err.contains("unknown access log field `$nope`"), "{err}");
        assert!(err.contains("upstream_header_us"), "{err}");
    }

    #[test]
    fn every_field_has_its_serde_name() {
        for name in known().split(", ") {
            assert_eq!(
                AccessLogField::from_name(name).map(|f| f.name()),
                Some(name)
            );
        }
    }
}
