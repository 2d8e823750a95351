//! Hostile input on the filter-host side of the edge: configuration values
//! that would overflow, filter folders holding what they should not. Each
//! is refused with its place named, and what served keeps serving.

use std::path::Path;

use gateway_tests::{check_config, wasm, Gateway, Upstream, WAIT};

const GOOD: &str = r#"
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:0"

[[listener.route]]
path_prefix = "/"
cluster = "c"

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:8080"]
connect_timeout = "250ms"
"#;

#[test]
fn an_overflowing_duration_in_the_config_is_refused_with_its_place() {
    let text = GOOD.replace("\"250ms\"", "\"500000000000y\"");
    let (output, path, _dir) = check_config(&text);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("longer than the maximum"), "{err}");
    assert!(err.contains(&format!("{}:14:19", path.display())), "{err}");
    assert!(err.contains("connect_timeout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A gateway whose listener takes its chain from `<tmp>/filters`, after
/// `prepare` put files there.
async fn folder_gateway(up: &Upstream, prepare: impl FnOnce(&Path)) -> Gateway {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    prepare(&folder);
    let text = format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        filters_dir = "filters"
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        "#,
        up.addr
    );
    Gateway::start_in(dir, &text).await
}

fn put_version(folder: &Path, sidecar: &str) {
    std::fs::write(folder.join("10-v.toml"), sidecar).expect("sidecar");
    let module = std::fs::read(wasm::path("tw-version-stamp")).expect("module");
    std::fs::write(folder.join("10-v.wasm"), module).expect("module");
}

#[tokio::test]
async fn an_overflowing_duration_in_a_sidecar_is_refused_with_its_place() {
    let up = Upstream::start("up").await;
    let gateway = folder_gateway(&up, |f| put_version(f, "config = 'good'\n")).await;
    let folder = gateway.path().join("filters");
    let version = || async {
        let reply = gateway.http1("web").await.get("/").await;
        reply.header("x-filter-version").map(str::to_owned)
    };
    assert_eq!(version().await.as_deref(), Some("good"));
    // A callout pause would be bounded by it: `Instant + 500 billion years`.
    std::fs::write(
        folder.join("10-v.toml"),
        "config = 'bad'\nmax_callout_timeout = \"500000000000y\"\n",
    )
    .expect("sidecar");
    assert!(
        gateway.wait_for_log("new version rejected", WAIT),
        "{:#?}",
        gateway.logs()
    );
    let line = gateway
        .logs()
        .into_iter()
        .find(|l| l.contains("new version rejected"))
        .unwrap_or_default();
    assert!(line.contains("10-v.toml:2:"), "{line}");
    assert!(line.contains("max_callout_timeout"), "{line}");
    assert!(line.contains("longer than the maximum"), "{line}");
    assert_eq!(
        version().await.as_deref(),
        Some("good"),
        "the old version serves"
    );
}

#[tokio::test]
async fn a_module_over_the_size_cap_is_not_read_into_memory() {
    let up = Upstream::start("up").await;
    let gateway = folder_gateway(&up, |f| put_version(f, "config = 'good'\n")).await;
    let folder = gateway.path().join("filters");
    // 1 GiB, sparse: reading it whole would take a GiB of the gateway's memory.
    let huge = std::fs::File::create(folder.join("20-huge.wasm")).expect("create");
    huge.set_len(1 << 30).expect("grow");
    drop(huge);
    assert!(
        gateway.wait_for_log("over max_module_size", WAIT),
        "{:#?}",
        gateway.logs()
    );
    assert!(gateway.wait_for_log_count("filter chain updated", 2, WAIT));
    let (_, peak_kib) = gateway.memory_kib();
    assert!(peak_kib < 256 << 10, "peak resident memory {peak_kib} KiB");
    let reply = gateway.http1("web").await.get("/").await;
    // The oversized filter is in the chain as unavailable (failure closed).
    assert_eq!(reply.status, 503);
}

/// Copies `connection.mtls` (as `0`/`1`), `connection.tls_version` and
/// `connection.subject_peer_certificate` into request headers.
const TLS_PROPERTIES: &str = r#"
(module
  (import "env" "proxy_get_property" (func $get_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (data (i32.const 0) "connection\00mtls")
  (data (i32.const 32) "connection\00tls_version")
  (data (i32.const 64) "connection\00subject_peer_certificate")
  (data (i32.const 128) "x-mtls")
  (data (i32.const 144) "x-tls")
  (data (i32.const 160) "x-subject")
  (func $copy (param $path i32) (param $plen i32) (param $name i32) (param $nlen i32)
    (if (i32.eqz (call $get_prop (local.get $path) (local.get $plen) (i32.const 200) (i32.const 204)))
      (then (drop (call $add (i32.const 0) (local.get $name) (local.get $nlen)
                   (i32.load (i32.const 200)) (i32.load (i32.const 204)))))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $get_prop (i32.const 0) (i32.const 15) (i32.const 200) (i32.const 204)))
      (then
        (i32.store8 (i32.const 208) (i32.add (i32.const 48) (i32.load8_u (i32.load (i32.const 200)))))
        (drop (call $add (i32.const 0) (i32.const 128) (i32.const 6) (i32.const 208) (i32.const 1)))))
    (call $copy (i32.const 32) (i32.const 22) (i32.const 144) (i32.const 5))
    (call $copy (i32.const 64) (i32.const 35) (i32.const 160) (i32.const 9))
    (i32.const 0))
)
"#;

#[tokio::test]
async fn tls_properties_read_as_on_envoy() {
    use gateway_tests::tls::{self, ClientOptions, Pki};
    let pki = Pki::new("ca");
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    pki.server(&["site.example"]).write(dir.path(), "site");
    std::fs::write(dir.path().join("clients.pem"), &pki.ca.cert_pem).expect("CA");
    let module = wasm::wat_to(TLS_PROPERTIES, &dir.path().join("props.wasm"));
    let text = format!(
        r#"
        [[listener]]
        name = "tls"
        protocol = "https"
        address = "127.0.0.1:0"

        [[listener.filter]]
        name = "props"
        path = "{}"

        [listener.tls]
        client_ca = "clients.pem"
        client_auth = "optional"

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
        module.display(),
        up.addr
    );
    let gateway = Gateway::start_in(dir, &text).await;
    for client in [Some("bob"), None] {
        let opts = ClientOptions {
            server_name: "site.example".into(),
            alpn: vec!["http/1.1"],
            client_cert: client.map(|cn| pki.client(cn)),
            ..Default::default()
        };
        let stream = tls::connect(gateway.addr("tls"), pki.roots(), &opts)
            .await
            .expect("handshake");
        let (reply, _) = tls::get(stream, "site.example", "/")
            .await
            .expect("request");
        assert_eq!(reply.status, 200);
        let seen = up.received().pop().expect("forwarded");
        let header = |name: &str| {
            seen.headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_string())
        };
        // One byte, 1 for a verified client certificate.
        assert_eq!(
            header("x-mtls").as_deref(),
            Some(if client.is_some() { "1" } else { "0" })
        );
        // Spelled as OpenSSL does, as Envoy shows it.
        assert_eq!(header("x-tls").as_deref(), Some("TLSv1.3"));
        let subject = header("x-subject").expect("a subject, empty without a certificate");
        assert_eq!(subject.contains("CN=bob"), client.is_some(), "{subject}");
    }
}
