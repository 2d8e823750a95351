//! The Grafana dashboard in `examples/grafana/` queries only what the
//! gateway really exports: every metric name and every label matched in
//! every panel query (and the dashboard's variables) is checked against a
//! scrape of a real gateway that served some traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use gateway_tests::{wasm, Gateway, Http1Client, Upstream, WAIT};
use http::Request;
use http_body_util::Full;

/// Metric name → the label names seen on its samples.
type Exported = BTreeMap<String, BTreeSet<String>>;

fn authorized(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("authorization", "Bearer x")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// Sample lines of a Prometheus/OpenMetrics text exposition.
fn exported(text: &str) -> Exported {
    let mut out = Exported::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            let inner = &line[end + 1..line.rfind('}').unwrap_or(line.len())];
            labels.extend(label_names(inner));
        }
    }
    out
}

/// Label names in `a="x",b=~"y"`: what comes before each matcher.
fn label_names(selector: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_string = false;
    let mut current = String::new();
    let mut chars = selector.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_string => in_string = false,
            '\\' if in_string => {
                chars.next();
            }
            _ if in_string => {}
            '"' => in_string = true,
            '=' | '!' | '~' => {
                if !current.trim().is_empty() {
                    names.push(current.trim().to_string());
                }
                current.clear();
            }
            ',' => current.clear(),
            c => current.push(c),
        }
    }
    names
}

/// (metric name, labels matched on it) in a PromQL expression, for names
/// starting with `gateway_`.
fn referenced(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_start = bytes[i].is_ascii_alphabetic() || bytes[i] == b'_';
        let after_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if !is_start || after_word {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
        {
            i += 1;
        }
        let name = &expr[start..i];
        if !name.starts_with("gateway_") {
            continue;
        }
        let mut labels = Vec::new();
        if expr[i..].starts_with('{') {
            let close = expr[i..].find('}').map_or(expr.len(), |c| i + c);
            labels = label_names(&expr[i + 1..close]);
            i = close;
        }
        out.push((name.to_string(), labels));
    }
    out
}

/// Every PromQL string in the dashboard: panel targets and variable
/// queries, wherever they are nested.
fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("expr" | "definition", Some(q)) => out.push(q.to_string()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

async fn scrape_after_traffic() -> Exported {
    let up = Upstream::start("up").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::copy(wasm::path("filter-auth"), folder.join("10-auth.wasm")).expect("auth");
    std::fs::write(folder.join("10-auth.toml"), "config = '{}'\n").expect("sidecar");
    let text = format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        filters_dir = "filters"
        [[listener.route]]
        path = "/down"
        cluster = "down"
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        [[cluster]]
        name = "down"
        endpoints = ["{dead}"]
        "#,
        up.addr
    );
    let gateway = Gateway::start_in(dir, &text).await;
    let mut web = gateway.http1("web").await;
    assert_eq!(web.send(authorized("/x")).await.status, 200);
    assert_eq!(web.get("/x").await.status, 401, "denied by the auth filter");
    assert!(web.send(authorized("/down")).await.status.is_server_error());
    gateway.hangup();
    assert!(gateway.wait_for_log("config reloaded", WAIT));
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    exported(&admin.get("/metrics").await.text())
}

#[tokio::test]
async fn every_dashboard_query_uses_metrics_and_labels_the_gateway_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/grafana/gateway.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("json");
    // Every panel but rows has queries.
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().map_or(0, Vec::len);
        assert!(targets > 0, "panel {} has no query", panel["title"]);
    }
    let mut all = Vec::new();
    queries(&dashboard, &mut all);

    let exported = scrape_after_traffic().await;
    let mut checked = BTreeSet::new();
    for query in &all {
        let used = referenced(query);
        assert!(
            !used.is_empty(),
            "a query that reads no gateway metric: {query}"
        );
        for (name, labels) in used {
            let Some(known) = exported.get(&name) else {
                panic!(
                    "`{name}` (in {query}) is not exported; exported: {:?}",
                    exported.keys()
                );
            };
            for label in labels {
                assert!(
                    known.contains(&label),
                    "`{name}` has no label `{label}` (in {query}); it has {known:?}"
                );
            }
            checked.insert(name);
        }
    }
    // The dashboard covers the gateway's own metric families.
    for family in [
        "gateway_requests_total",
        "gateway_request_errors_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_active_connections",
        "gateway_filter_calls_total",
        "gateway_filter_reloads_total",
        "gateway_config_reloads_total",
    ] {
        assert!(checked.contains(family), "no panel shows {family}");
    }
}

#[test]
fn queries_are_read_as_promql_names_and_matchers() {
    let used = referenced(
        r#"sum by (le) (rate(gateway_x_bucket{listener=~"$l",status!~"5.."}[5m])) / gateway_y"#,
    );
    assert_eq!(
        used,
        [
            (
                "gateway_x_bucket".to_string(),
                vec!["listener".to_string(), "status".to_string()]
            ),
            ("gateway_y".to_string(), vec![]),
        ]
    );
    let scraped = exported("# TYPE a counter\na_total{x=\"1\",y=\"a,b=c\"} 3\nb 1\n");
    assert_eq!(
        scraped["a_total"],
        BTreeSet::from(["x".to_string(), "y".to_string()])
    );
    assert!(scraped["b"].is_empty());
}
