//! The admin HTML page: server-rendered, readable without JavaScript, refreshed in place when it runs.
//!
//! Every piece of text goes through [`escape`]: filter errors, file
//! names and route names can come from people who should not be able
//! to put markup on an operator's screen.

use std::fmt::Write as _;

use super::html::{escape, rate, table, text};
use super::overview::Overview;

/// The whole page.
pub(super) fn render(view: &Overview) -> String {
    let mut out = String::with_capacity(16 * 1024);
    super::html::open(&mut out);
    summary(&mut out, view);
    listeners(&mut out, view);
    traffic(&mut out, view);
    clusters(&mut out, view);
    filters(&mut out, view);
    super::services::section(&mut out, &view.services);
    super::html::close(&mut out);
    out
}

/// Readiness, uptime, log filter, config file.
fn summary(out: &mut String, view: &Overview) {
    let _ = write!(
        out,
        "<p class=\"summary\"><span id=\"readiness\" class=\"{0}\">{0}</span> · up {1} since {2} · \
         log filter <code>{3}</code> · config <code>{4}</code> · as of {5}</p>",
        view.readiness,
        humantime::format_duration(std::time::Duration::from_secs(view.uptime_seconds)),
        escape(&view.started_at),
        escape(view.log_filter.as_deref().unwrap_or("-")),
        escape(&view.config_file),
        escape(&view.generated_at),
    );
}

/// Listeners and, under each, its routes.
fn listeners(out: &mut String, view: &Overview) {
    out.push_str("<h2>Listeners and routes</h2>");
    let mut rows = Vec::new();
    for l in &view.listeners {
        let chain = l
            .filters_dir
            .as_deref()
            .map(|d| format!("folder {d}"))
            .unwrap_or_default();
        rows.push(vec![
            format!("<b>{}</b>", escape(&l.name)),
            escape(l.protocol),
            escape(&l.address),
            escape(&chain),
            String::new(),
            String::new(),
        ]);
        for r in &l.routes {
            rows.push(vec![
                String::new(),
                String::new(),
                format!("↳ {}", escape(&r.name)),
                escape(&r.matches),
                escape(&r.target),
                escape(&r.filters.join(", ")),
            ]);
        }
    }
    table(
        out,
        "listeners",
        &[
            "listener",
            "protocol",
            "address / route",
            "match",
            "target",
            "route filters",
        ],
        &rows,
    );
}

/// Requests and 5xx per route, with rates.
fn traffic(out: &mut String, view: &Overview) {
    out.push_str("<h2>Traffic per route</h2><p class=\"note\">Rates are per second over the last minute; errors are 5xx responses.</p>");
    let rows: Vec<Vec<String>> = view
        .traffic
        .iter()
        .map(|t| {
            let share = if t.requests > 0 {
                100.0 * t.errors as f64 / t.requests as f64
            } else {
                0.0
            };
            vec![
                escape(&t.listener),
                if t.route.is_empty() {
                    "<i>no route</i>".into()
                } else {
                    escape(&t.route)
                },
                t.requests.to_string(),
                rate(t.requests_per_second),
                t.errors.to_string(),
                rate(t.errors_per_second),
                format!("{share:.1} %"),
            ]
        })
        .collect();
    table(
        out,
        "traffic",
        &[
            "listener",
            "route",
            "requests",
            "req/s",
            "5xx",
            "5xx/s",
            "5xx share",
        ],
        &rows,
    );
}

/// Clusters and each endpoint's health.
fn clusters(out: &mut String, view: &Overview) {
    out.push_str("<h2>Clusters</h2>");
    let mut rows = Vec::new();
    for c in &view.clusters {
        for (i, e) in c.endpoints.iter().enumerate() {
            let health = if let Some(r) = &c.redis {
                // A Redis cluster's reachability is the cluster's, as commands saw it.
                format!(
                    "redis {} · {:.2} ms · {} errors, {} unavailable",
                    r.state,
                    r.latency_ms,
                    r.commands_error,
                    r.commands_unavailable + r.commands_timeout
                )
            } else if e.healthy {
                "<span class=\"healthy\">healthy</span>".to_string()
            } else if e.ejected_for_ms == 0 {
                // Out by active checks, not by an ejection.
                "<span class=\"ejected\">unhealthy</span> (failing health checks)".to_string()
            } else {
                format!(
                    "<span class=\"ejected\">ejected</span> ({} s left)",
                    e.ejected_for_ms.div_ceil(1000)
                )
            };
            let (name, balance) = if i == 0 {
                (format!("<b>{}</b>", escape(&c.name)), escape(&c.balance))
            } else {
                Default::default()
            };
            rows.push(vec![
                name,
                balance,
                escape(&e.address),
                health,
                e.in_flight.to_string(),
                e.consecutive_failures.to_string(),
            ]);
        }
    }
    table(
        out,
        "clusters",
        &[
            "cluster",
            "balance",
            "endpoint",
            "health",
            "in flight",
            "failed connects",
        ],
        &rows,
    );
}

/// Every filter of every chain: state, version, digest, errors.
fn filters(out: &mut String, view: &Overview) {
    out.push_str("<h2>Filter chains</h2>");
    let mut rows = Vec::new();
    for chain in view.chains["chains"].as_array().into_iter().flatten() {
        let place = match chain["route"].as_str() {
            Some(route) => format!("{} ↳ {}", text(chain, "listener"), escape(route)),
            None => text(chain, "listener"),
        };
        let (source, filters) = match chain.get("folder") {
            Some(folder) => (
                format!("folder {}", text(folder, "dir")),
                &folder["filters"],
            ),
            None => ("config".to_string(), &chain["filters"]),
        };
        for f in filters.as_array().into_iter().flatten() {
            let version = match f["generation"].as_u64() {
                Some(g) => format!("v{g} since {}", text(f, "serving_since")),
                None => "config".into(),
            };
            let mut errors: Vec<&str> = ["last_error", "pending_error"]
                .iter()
                .filter_map(|k| f[*k].as_str())
                .collect();
            errors.dedup();
            let errors: Vec<String> = errors
                .into_iter()
                .map(|e| format!("<span class=\"error\">{}</span>", escape(e)))
                .collect();
            let state = text(f, "state");
            rows.push(vec![
                place.clone(),
                escape(&source),
                format!("<b>{}</b>", text(f, "name")),
                format!("<span class=\"{state}\">{state}</span>"),
                version,
                format!(
                    "<code class=\"digest\" title=\"{0}\">{0}</code>",
                    text(f, "sha256")
                ),
                text(f, "size"),
                text(f, "loaded_at"),
                errors.join("<br>"),
            ]);
        }
    }
    table(
        out,
        "filters",
        &[
            "chain",
            "source",
            "filter",
            "state",
            "version",
            "sha256",
            "bytes",
            "loaded at",
            "last error",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::overview::{ClusterView, ListenerView, RouteView};
    use crate::upstream::EndpointHealth;

    const HOSTILE: &str = "<script>alert('x')</script>\"&";

    #[test]
    fn every_text_is_escaped() {
        let view = Overview {
            generated_at: "2026-01-01T00:00:00Z".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            uptime_seconds: 3,
            readiness: "ready",
            log_filter: Some(HOSTILE.into()),
            config_file: HOSTILE.into(),
            listeners: vec![ListenerView {
                name: HOSTILE.into(),
                protocol: "http",
                address: "127.0.0.1:0".into(),
                filters_dir: Some(HOSTILE.into()),
                routes: vec![RouteView {
                    name: HOSTILE.into(),
                    matches: HOSTILE.into(),
                    target: HOSTILE.into(),
                    filters: vec![HOSTILE.into()],
                }],
            }],
            clusters: vec![ClusterView {
                name: HOSTILE.into(),
                balance: HOSTILE.into(),
                endpoints: vec![EndpointHealth {
                    address: HOSTILE.into(),
                    healthy: false,
                    ejected_for_ms: 1500,
                    in_flight: 0,
                    consecutive_failures: 0,
                }],
                redis: None,
            }],
            chains: serde_json::json!({"chains": [{"listener": HOSTILE, "route": HOSTILE,
                "filters": [{"name": HOSTILE, "sha256": HOSTILE, "state": "failed", "last_error": HOSTILE}]}]}),
            services: serde_json::json!({"dir": HOSTILE, "services": [{"name": HOSTILE, "source": "folder",
                "state": "restarting", "sha256": HOSTILE, "restarts": 2, "last_error": HOSTILE}]}),
            traffic: Vec::new(),
        };
        let page = render(&view);
        // The only script is the page's own.
        assert_eq!(page.matches("<script>").count(), 1, "{page}");
        assert!(!page.contains("alert('x')"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
        assert!(page.contains("<span class=\"ejected\">ejected</span> (2 s left)"));
        assert!(page.contains("<span class=\"failed\">failed</span>"));
        assert!(page.contains("<span class=\"restarting\">restarting</span>"));
    }
}
