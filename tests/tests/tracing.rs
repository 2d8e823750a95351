//! Distributed tracing through the real gateway: W3C trace context carried
//! to the upstream, and the span tree (request, filter calls, upstream
//! attempt) received by a collector speaking OTLP/HTTP.

use gateway_tests::collector::{CollectedSpan, Collector};
use gateway_tests::{check_config, wasm, Gateway, Upstream, WAIT};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn config(upstream: &str, collector: &str, ratio: f64) -> String {
    config_every(upstream, collector, ratio, "50ms")
}

/// With spans sent every `interval`.
fn config_every(upstream: &str, collector: &str, ratio: f64, interval: &str) -> String {
    format!(
        r#"
        [access_log]
        path = "access.log"
        format = "json"
        fields = ["id", "trace_id"]
        [tracing]
        enabled = true
        endpoint = "{collector}"
        sampling_ratio = {ratio:.1}
        service_name = "edge"
        export_interval = "{interval}"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "mutate"
        path = {path:?}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{upstream}"]
        "#,
        path = wasm::path("tw-header-mutation").display().to_string(),
    )
}

fn get(path: &str, traceparent: Option<&str>) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = http::Request::get(path);
    if let Some(tp) = traceparent {
        req = req
            .header("traceparent", tp)
            .header("tracestate", "vendor=abc");
    }
    req.body(Default::default()).expect("request")
}

/// The `traceparent` the upstream received, split: (trace id, parent id, flags).
fn upstream_traceparent(up: &Upstream) -> (String, String, String) {
    let received = up.received();
    let header = received
        .last()
        .and_then(|r| r.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .expect("the upstream received a traceparent")
        .to_string();
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!(parts[0], "00", "{header}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn named<'a>(spans: &'a [CollectedSpan], prefix: &str) -> Vec<&'a CollectedSpan> {
    spans
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn the_request_span_is_the_parent_of_filter_and_upstream_spans() {
    let up = Upstream::start("up").await;
    let collector = Collector::start().await;
    let gateway = Gateway::start(&config(&up.addr.to_string(), &collector.endpoint(), 1.0)).await;
    let mut client = gateway.http1("web").await;
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = client.send(get("/things", Some(&incoming))).await;
    assert_eq!(reply.status.as_u16(), 200);

    // The upstream continues the caller's trace, under a new span.
    let (trace, parent, flags) = upstream_traceparent(&up);
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"));
    assert_ne!(parent, CALLER_SPAN);
    let received = up.received();
    let tracestate = received[0]
        .headers
        .get("tracestate")
        .and_then(|v| v.to_str().ok());
    assert_eq!(tracestate, Some("vendor=abc"));

    // Request span + request and response filter calls + one attempt.
    let spans = collector.wait_for_trace(TRACE_ID, 4, WAIT).await;
    let requests = named(&spans, "GET");
    assert_eq!(requests.len(), 1, "{spans:#?}");
    let request = requests[0];
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.kind, 2, "server");
    assert_eq!(request.service, "edge");
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    assert_eq!(request.attribute("gateway.listener"), Some("web"));

    let filters = named(&spans, "filter mutate");
    let phases: Vec<&str> = filters
        .iter()
        .filter_map(|s| s.attribute("gateway.filter.phase"))
        .collect();
    assert!(phases.contains(&"request_headers"), "{filters:#?}");
    assert!(phases.contains(&"response_headers"), "{filters:#?}");
    for filter in &filters {
        assert_eq!(filter.parent_span_id, request.span_id);
        assert_eq!(filter.attribute("gateway.filter.name"), Some("mutate"));
    }

    let attempts = named(&spans, "upstream up");
    assert_eq!(attempts.len(), 1, "{spans:#?}");
    let attempt = attempts[0];
    assert_eq!(attempt.parent_span_id, request.span_id);
    assert_eq!(attempt.kind, 3, "client");
    // The upstream's parent is the attempt span.
    assert_eq!(attempt.span_id, parent);
    assert_eq!(attempt.attribute("gateway.cluster"), Some("up"));
    assert_eq!(
        attempt.attribute("server.address"),
        Some(up.addr.to_string().as_str())
    );
    assert_eq!(attempt.attribute("http.response.status_code"), Some("200"));

    // The access line names the trace.
    let log = gateway.dir.path().join("access.log");
    let deadline = std::time::Instant::now() + WAIT;
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(TRACE_ID)) {
            break line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access line with the trace id: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let json: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(json["trace_id"], TRACE_ID);
}

#[tokio::test]
async fn spans_still_queued_at_shutdown_are_sent() {
    let up = Upstream::start("up").await;
    let collector = Collector::start().await;
    // Nothing would be sent for an hour but for the shutdown.
    let text = config_every(&up.addr.to_string(), &collector.endpoint(), 1.0, "1h");
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    assert_eq!(
        client.send(get("/", Some(&incoming))).await.status.as_u16(),
        200
    );
    drop(client);
    gateway.terminate();
    let spans = collector.wait_for_trace(TRACE_ID, 4, WAIT).await;
    assert!(!named(&spans, "GET").is_empty(), "{spans:#?}");
    assert!(!named(&spans, "upstream up").is_empty(), "{spans:#?}");
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace() {
    let up = Upstream::start("up").await;
    let collector = Collector::start().await;
    let gateway = Gateway::start(&config(&up.addr.to_string(), &collector.endpoint(), 1.0)).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/").await.status.as_u16(), 200);
    let (trace, parent, flags) = upstream_traceparent(&up);
    assert_eq!((trace.len(), parent.len(), flags.as_str()), (32, 16, "01"));
    assert_ne!(trace, "0".repeat(32));
    let spans = collector.wait_for_trace(&trace, 1, WAIT).await;
    let request = named(&spans, "GET")
        .into_iter()
        .next()
        .cloned()
        .expect("request span");
    assert_eq!(request.parent_span_id, "", "a root span");
}

#[tokio::test]
async fn ratio_zero_exports_nothing_and_still_propagates() {
    let up = Upstream::start("up").await;
    let collector = Collector::start().await;
    let gateway = Gateway::start(&config(&up.addr.to_string(), &collector.endpoint(), 0.0)).await;
    let mut client = gateway.http1("web").await;

    // A new trace: not sampled, yet the upstream gets a traceparent.
    assert_eq!(client.get("/first").await.status.as_u16(), 200);
    let (unsampled, _, flags) = upstream_traceparent(&up);
    assert_eq!(flags, "00");

    // A caller that sampled its trace is honoured (parent-based). Spans
    // leave in order, so once its spans arrive, the first request's
    // would have too.
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = client.send(get("/second", Some(&incoming))).await;
    assert_eq!(reply.status.as_u16(), 200);
    let sampled = collector.wait_for_trace(TRACE_ID, 4, WAIT).await;
    assert!(!named(&sampled, "GET").is_empty(), "{sampled:#?}");
    let all = collector.spans();
    assert!(
        all.iter().all(|s| s.trace_id != unsampled),
        "spans of an unsampled trace were exported: {all:#?}"
    );
    // And a caller's unsampled trace stays unsampled, and continued.
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-00");
    client.send(get("/third", Some(&incoming))).await;
    let (trace, _, flags) = upstream_traceparent(&up);
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "00"));
}

#[test]
fn check_names_file_line_and_key_of_a_bad_tracing_setting() {
    let text = "[tracing]\nenabled = true\nsampling_ratio = 1.5\nendpoint = \"https://collector/v1/traces\"\n";
    let (output, path, _dir) = check_config(text);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let at = |line: usize| format!("{}:{line}", path.display());
    assert!(
        stderr.contains("(key `tracing.sampling_ratio`)") && stderr.contains(&at(3)),
        "{stderr}"
    );
    assert!(
        stderr.contains("(key `tracing.endpoint`)") && stderr.contains(&at(4)),
        "{stderr}"
    );
}

#[tokio::test]
async fn off_passes_trace_context_through_and_a_reload_turns_it_on() {
    let up = Upstream::start("up").await;
    let collector = Collector::start().await;
    let on = config(&up.addr.to_string(), &collector.endpoint(), 1.0);
    let off = on.replace("enabled = true", "enabled = false");
    let gateway = Gateway::start(&off).await;
    let mut client = gateway.http1("web").await;

    // Off: the caller's headers reach the upstream as they came.
    let incoming = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    client.send(get("/", Some(&incoming))).await;
    let (trace, parent, _) = upstream_traceparent(&up);
    assert_eq!((trace.as_str(), parent.as_str()), (TRACE_ID, CALLER_SPAN));
    client.get("/no-context").await;
    let received = up.received();
    assert!(received[1].headers.get("traceparent").is_none());

    gateway.rewrite_config(&on);
    assert!(gateway.wait_for_log("config reloaded", WAIT));
    client.send(get("/", Some(&incoming))).await;
    let (_, parent, _) = upstream_traceparent(&up);
    assert_ne!(parent, CALLER_SPAN, "a span of the gateway's own");
    let spans = collector.wait_for_trace(TRACE_ID, 4, WAIT).await;
    assert!(!named(&spans, "upstream up").is_empty(), "{spans:#?}");
}
