//! `[tracing]`: distributed tracing (W3C trace context, spans exported
//! over OTLP/HTTP to a collector).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Off: no span is made and `traceparent` passes through untouched.
    pub enabled: bool,
    /// The collector's OTLP/HTTP traces URL (`http://`; protobuf body).
    pub endpoint: String,
    /// Share of new traces recorded, 0.0 to 1.0. A request that carries a
    /// `traceparent` follows its sampled flag instead (parent-based).
    pub sampling_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Finished spans waiting for export; beyond, spans are dropped and
    /// counted (`gateway_trace_spans_dropped_total`).
    pub queue_size: usize,
    /// Most spans in one export request.
    pub batch_size: usize,
    /// How often queued spans are sent (sooner when a batch is full).
    #[serde(with = "crate::config::duration")]
    pub export_interval: Duration,
    /// Deadline of one export request.
    #[serde(with = "crate::config::duration")]
    pub export_timeout: Duration,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            sampling_ratio: 1.0,
            service_name: "gateway".into(),
            queue_size: 2048,
            batch_size: 512,
            export_interval: Duration::from_secs(5),
            export_timeout: Duration::from_secs(10),
        }
    }
}

impl TracingConfig {
    /// (key under `tracing.`, message) for every value out of range.
    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            problems.push((
                "sampling_ratio",
                format!("must be between 0.0 and 1.0, not {}", self.sampling_ratio),
            ));
        }
        match self.endpoint.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
            Ok(_) => problems.push((
                "endpoint",
                format!(
                    "`{}` must be an http:// URL (e.g. http://127.0.0.1:4318/v1/traces)",
                    self.endpoint
                ),
            )),
            Err(e) => problems.push(("endpoint", format!("`{}`: {e}", self.endpoint))),
        }
        if self.queue_size == 0 {
            problems.push(("queue_size", "must be at least 1".into()));
        }
        if self.batch_size == 0 || self.batch_size > self.queue_size {
            problems.push(("batch_size", "must be between 1 and queue_size".into()));
        }
        if self.export_interval.is_zero() {
            problems.push(("export_interval", "must be longer than 0".into()));
        }
        if self.export_timeout.is_zero() {
            problems.push(("export_timeout", "must be longer than 0".into()));
        }
        problems
    }
}

/// Where `key` is written in table `[table]` of `text` (for errors that
/// come from checks after parsing): its line's byte range, if written.
pub(super) fn key_span(text: &str, table: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed.trim_matches(|c| c == '[' || c == ']').trim() == table;
        } else if inside {
            let written = trimmed
                .split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == key);
            if written {
                let start = offset + (line.len() - line.trim_start().len());
                return Some(start..offset + line.trim_end().len());
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_span_finds_the_key_in_its_table_only() {
        let text = "[other]\nbatch_size = 1\n\n[tracing]\nenabled = true\n  batch_size = 9\n";
        let span = key_span(text, "tracing", "batch_size").unwrap_or_default();
        assert_eq!(&text[span], "batch_size = 9");
        assert_eq!(key_span(text, "tracing", "queue_size"), None);
    }

    #[test]
    fn out_of_range_values_are_problems() {
        let config = TracingConfig {
            sampling_ratio: 1.5,
            endpoint: "https://collector:4318/v1/traces".into(),
            batch_size: 4096,
            ..TracingConfig::default()
        };
        let keys: Vec<&str> = config.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["sampling_ratio", "endpoint", "batch_size"]);
        assert!(TracingConfig::default().problems().is_empty());
    }
}
