//! Per-endpoint metrics in Prometheus text: health, requests, failures,
//! ejections, and the resolutions of host-name endpoints. Read from the
//! endpoints' own counters at scrape time (nothing extra on the request
//! path).

use std::fmt::Write as _;

use super::super::{dns, ClusterSet, EndpointStatus};
use crate::metrics::requests::escape;

/// One family: name, type, help, and its value for an endpoint.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&EndpointStatus) -> u64,
);

/// Appends the endpoint families of `clusters` to `out`.
pub fn encode(clusters: &ClusterSet, out: &mut String) {
    let mut all: Vec<_> = clusters.iter().collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    let rows: Vec<(String, EndpointStatus)> = all
        .iter()
        .flat_map(|c| {
            let cluster = escape(c.name());
            c.endpoint_status()
                .into_iter()
                .map(move |s| (cluster.clone(), s))
        })
        .collect();
    let families: [Family; 4] = [
        (
            "gateway_endpoint_healthy",
            "gauge",
            "Whether the endpoint is in rotation (1) or out: failing active checks or ejected (0)",
            |s| u64::from(s.health == "healthy"),
        ),
        (
            "gateway_endpoint_requests",
            "counter",
            "Requests (and L4 connections) sent to the endpoint",
            |s| s.requests,
        ),
        (
            "gateway_endpoint_failures",
            "counter",
            "Connect failures, resets and 5xx responses of the endpoint",
            |s| s.failures,
        ),
        (
            "gateway_endpoint_ejections",
            "counter",
            "Times passive health ejected the endpoint",
            |s| s.ejections,
        ),
    ];
    for (family, kind, help, value) in families {
        if rows.is_empty() {
            break;
        }
        let _ = writeln!(out, "# HELP {family} {help}.");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        let suffix = if kind == "counter" { "_total" } else { "" };
        for (cluster, status) in &rows {
            let _ = writeln!(
                out,
                "{family}{suffix}{{cluster=\"{cluster}\",endpoint=\"{}\"}} {}",
                escape(&status.address),
                value(status)
            );
        }
    }
    let resolutions = dns::counts();
    if !resolutions.is_empty() {
        let family = "gateway_endpoint_resolutions";
        let _ = writeln!(
            out,
            "# HELP {family} Resolutions of host-name endpoints by result (ok, failed)."
        );
        let _ = writeln!(out, "# TYPE {family} counter");
        for (name, ok, failed) in resolutions {
            let name = escape(&name);
            let _ = writeln!(
                out,
                "{family}_total{{endpoint=\"{name}\",result=\"ok\"}} {ok}"
            );
            let _ = writeln!(
                out,
                "{family}_total{{endpoint=\"{name}\",result=\"failed\"}} {failed}"
            );
        }
    }
}
