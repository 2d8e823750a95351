//! The access log with chosen fields: JSON keys and text pairs in the
//! order configured, an nginx-like text template, upstream timing, the
//! filter that answered, TLS version and SNI; lines read from the file the
//! gateway writes.

use std::path::Path;
use std::time::{Duration, Instant};

use gateway_tests::tls::{self, ClientOptions, Pki};
use gateway_tests::{check_config, wasm, Gateway, Upstream, WAIT};

/// Lines of the access log at `path` once one contains `needle` (polled:
/// the writer flushes every 100 ms; bounded by `WAIT`).
async fn line_with(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no access line with {needle:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(upstream: &Upstream, access_log: &str) -> String {
    format!(
        r#"
        [access_log]
        path = "access.log"
        {access_log}
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "local"
        path = {path:?}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{addr}"]
        "#,
        path = wasm::path("tw-local-response").display().to_string(),
        addr = upstream.addr,
    )
}

fn request(
    method: &str,
    path: &str,
    id: &str,
    body: &'static str,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-request-id", id)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            body.as_bytes(),
        )))
        .expect("request")
}

#[tokio::test]
async fn json_lines_hold_the_chosen_fields_in_order() {
    let up = Upstream::start("up").await;
    let fields = r#"format = "json"
        fields = ["id", "status", "upstream_connect_us", "upstream_header_us", "endpoint", "filter", "bytes_in", "bytes_out", "tls_version", "sni", "query"]"#;
    let gateway = Gateway::start(&config(&up, fields)).await;
    let mut client = gateway.http1("web").await;
    let reply = client
        .send(request("POST", "/upload?x=1", "req-json", "hello"))
        .await;
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "5"));

    let line = line_with(&gateway.dir.path().join("access.log"), "req-json").await;
    let keys = [
        "id",
        "status",
        "upstream_connect_us",
        "upstream_header_us",
        "endpoint",
        "filter",
        "bytes_in",
        "bytes_out",
        "tls_version",
        "sni",
        "query",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            line.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing: {line}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "keys out of order: {line}"
    );
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(
        json.as_object().map(|o| o.len()),
        Some(keys.len()),
        "{line}"
    );
    assert_eq!(json["status"], 200);
    assert!(json["upstream_connect_us"].is_u64(), "{line}");
    assert!(json["upstream_header_us"].is_u64(), "{line}");
    assert_eq!(json["endpoint"], up.addr.to_string());
    assert_eq!(
        json["filter"],
        serde_json::Value::Null,
        "no filter answered"
    );
    assert_eq!(
        (json["bytes_in"].as_u64(), json["bytes_out"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(
        (&json["tls_version"], &json["sni"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    assert_eq!(json["query"], "x=1");
}

#[tokio::test]
async fn a_text_template_names_the_filter_that_answered() {
    let up = Upstream::start("up").await;
    let template = r#"template = '$id [$status] "$method $path" filter=$filter upstream=${upstream_header_us} out=$bytes_out'"#;
    let gateway = Gateway::start(&config(&up, template)).await;
    let mut client = gateway.http1("web").await;
    let reply = client.send(request("GET", "/local", "req-local", "")).await;
    assert_eq!(reply.text(), "hello from wasm");
    let reply = client.send(request("GET", "/through", "req-up", "")).await;
    assert_eq!(reply.text(), "up");

    let log = gateway.dir.path().join("access.log");
    let local = line_with(&log, "req-local").await;
    assert_eq!(
        local,
        r#"req-local [200] "GET /local" filter=local upstream=- out=15"#
    );
    let through = line_with(&log, "req-up").await;
    let prefix = r#"req-up [200] "GET /through" filter=- upstream="#;
    assert!(through.starts_with(prefix), "{through}");
    let rest = &through[prefix.len()..];
    let (micros, out) = rest.split_once(' ').expect("two values");
    assert!(micros.parse::<u64>().is_ok(), "{through}");
    assert_eq!(out, "out=2");
}

#[tokio::test]
async fn text_pairs_carry_tls_version_and_sni() {
    let up = Upstream::start("up").await;
    let pki = Pki::new("ca");
    let dir = tempfile::tempdir().expect("dir");
    pki.server(&["site.example"]).write(dir.path(), "site");
    let gateway = Gateway::start_in(
        dir,
        &format!(
            r#"
            [access_log]
            path = "access.log"
            fields = ["time", "id", "tls_version", "sni", "status"]
            [[listener]]
            name = "tls"
            protocol = "https"
            address = "127.0.0.1:0"
            [[listener.tls.certificate]]
            cert = "site.crt"
            key = "site.key"
            [[listener.route]]
            path_prefix = "/"
            cluster = "up"
            [[cluster]]
            name = "up"
            endpoints = ["{}"]
            "#,
            up.addr
        ),
    )
    .await;
    let options = ClientOptions {
        server_name: "site.example".into(),
        alpn: vec!["http/1.1"],
        ..Default::default()
    };
    let stream = tls::connect(gateway.addr("tls"), pki.roots(), &options)
        .await
        .expect("handshake");
    let (reply, _) = tls::get(stream, "site.example", "/tls-line")
        .await
        .expect("request");
    assert_eq!(reply.status.as_u16(), 200);

    let line = line_with(&gateway.dir.path().join("access.log"), "sni=site.example").await;
    // `<time> access id=... tls_version=... sni=... status=200`
    let (time, rest) = line.split_once(' ').expect("time first");
    assert!(
        time.starts_with("20") && time.contains('T') && time.ends_with('Z'),
        "{line}"
    );
    let pairs: Vec<&str> = rest.split(' ').collect();
    assert_eq!(pairs[0], "access", "{line}");
    assert!(pairs[1].starts_with("id="), "{line}");
    assert!(
        pairs[2] == "tls_version=TLSv1.3" || pairs[2] == "tls_version=TLSv1.2",
        "{line}"
    );
    assert_eq!(&pairs[3..], ["sni=site.example", "status=200"], "{line}");
}

#[test]
fn check_names_a_bad_field_and_a_template_on_json_lines() {
    let (output, path, _dir) =
        check_config("[access_log]\nformat = \"json\"\nfields = [\"status\", \"stauts\"]\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown variant `stauts`"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", path.display())),
        "{stderr}"
    );

    let (output, path, _dir) =
        check_config("[access_log]\nformat = \"json\"\ntemplate = \"$status\"\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(key `access_log.template`)"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", path.display())),
        "{stderr}"
    );

    let (output, _, _dir) = check_config("[access_log]\ntemplate = \"$status $nope\"\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown access log field `$nope`"),
        "{stderr}"
    );
}
