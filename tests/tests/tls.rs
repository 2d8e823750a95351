//! TLS termination (ALPN, SNI certificates, reload, mTLS, bad input) and
//! TLS to upstreams with a private CA.

use gateway_tests::tls::{self, write_atomic, ClientOptions, Issued, Pki, TlsUpstream};
use gateway_tests::{check_config, Gateway, Upstream, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An https listener in front of `upstream`, with `certs` as
/// `(stem, names)` written into the gateway's directory; `tls_extra` goes
/// into `[listener.tls]`.
async fn https_gateway(
    upstream: &Upstream,
    certs: &[(&str, &Issued, &str)],
    tls_extra: &str,
) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut blocks = String::new();
    for (stem, issued, names) in certs {
        issued.write(dir.path(), stem);
        blocks.push_str(&format!(
            "[[listener.tls.certificate]]\ncert = \"{stem}.crt\"\nkey = \"{stem}.key\"\n{names}\n"
        ));
    }
    Gateway::start_in(
        dir,
        &format!(
            r#"
            [[listener]]
            name = "tls"
            protocol = "https"
            address = "127.0.0.1:0"

            [listener.tls]
            reload_interval = "100ms"
            {tls_extra}

            {blocks}

            [[listener.route]]
            path_prefix = "/"
            cluster = "c"

            [[cluster]]
            name = "c"
            endpoints = ["{}"]
            "#,
            upstream.addr
        ),
    )
    .await
}

fn options(name: &str, alpn: &[&'static str]) -> ClientOptions {
    ClientOptions {
        server_name: name.into(),
        alpn: alpn.to_vec(),
        ..Default::default()
    }
}

#[tokio::test]
async fn alpn_negotiates_h2_or_http1_as_asked() {
    let pki = Pki::new("ca");
    let upstream = Upstream::start("u").await;
    let gateway = https_gateway(
        &upstream,
        &[("site", &pki.server(&["site.example"]), "")],
        "",
    )
    .await;
    for (alpn, expected) in [
        (vec!["h2"], http::Version::HTTP_2),
        (vec!["http/1.1"], http::Version::HTTP_11),
        (vec!["h2", "http/1.1"], http::Version::HTTP_2),
    ] {
        let stream = tls::connect(
            gateway.addr("tls"),
            pki.roots(),
            &options("site.example", &alpn),
        )
        .await
        .expect("handshake");
        let (reply, version) = tls::get(stream, "site.example", "/hello")
            .await
            .expect("request");
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "u"));
        assert_eq!(version, expected, "ALPN {alpn:?}");
    }
    let received = upstream.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r
        .headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v == "https")));
}

#[tokio::test]
async fn sni_selects_the_certificate_with_a_default() {
    let pki = Pki::new("ca");
    let upstream = Upstream::start("u").await;
    let (one, two, wild) = (
        pki.server(&["one.example"]),
        pki.server(&["two.example"]),
        pki.server(&["*.w.example"]),
    );
    let gateway = https_gateway(
        &upstream,
        &[
            ("one", &one, ""),
            ("two", &two, "names = [\"two.example\"]"),
            ("wild", &wild, ""),
        ],
        "",
    )
    .await;
    for (name, expected) in [
        ("one.example", &one),
        ("two.example", &two),
        ("x.w.example", &wild),
    ] {
        let stream = tls::connect(gateway.addr("tls"), pki.roots(), &options(name, &[]))
            .await
            .expect("handshake");
        assert_eq!(
            tls::peer_leaf(&stream),
            expected.der,
            "certificate for {name}"
        );
    }
    // An unknown name gets the first (default) certificate, which the
    // client then rejects for the name.
    let err = tls::connect(
        gateway.addr("tls"),
        pki.roots(),
        &options("nobody.example", &[]),
    )
    .await
    .err();
    assert!(format!("{err:?}").contains("one.example"), "{err:?}");
}

#[tokio::test]
async fn a_rotated_certificate_is_used_by_the_next_handshake() {
    let pki = Pki::new("ca");
    let upstream = Upstream::start("u").await;
    let (old, new) = (pki.server(&["site.example"]), pki.server(&["site.example"]));
    let gateway = https_gateway(&upstream, &[("site", &old, "")], "").await;
    let addr = gateway.addr("tls");
    let before = tls::connect(addr, pki.roots(), &options("site.example", &["http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(tls::peer_leaf(&before), old.der);

    new.write(gateway.path(), "site");
    assert!(
        gateway.wait_for_log("certificate reloaded", WAIT),
        "{:?}",
        gateway.logs()
    );
    let after = tls::connect(addr, pki.roots(), &options("site.example", &[]))
        .await
        .expect("handshake");
    assert_eq!(tls::peer_leaf(&after), new.der);
    // The connection made before the rotation lives on.
    let (reply, _) = tls::get(before, "site.example", "/")
        .await
        .expect("old connection still serves");
    assert_eq!(reply.status, 200);

    // A broken replacement is refused and the last good one kept. (A
    // rotation caught between its two files may already have logged a
    // failure: wait for one more.)
    let failures = |g: &Gateway| {
        g.logs()
            .iter()
            .filter(|l| l.contains("certificate reload failed"))
            .count()
    };
    let before_failures = failures(&gateway);
    write_atomic(&gateway.path().join("site.crt"), b"not a certificate");
    assert!(
        gateway.wait_for_log_count(
            "certificate reload failed; keeping the previous one",
            before_failures + 1,
            WAIT
        ),
        "{:?}",
        gateway.logs()
    );
    let later = tls::connect(addr, pki.roots(), &options("site.example", &[]))
        .await
        .expect("handshake");
    assert_eq!(tls::peer_leaf(&later), new.der);
}

#[tokio::test]
async fn mtls_required_accepts_known_clients_and_rejects_others() {
    let pki = Pki::new("ca");
    let clients = Pki::new("client ca");
    let upstream = Upstream::start("u").await;
    let dir_ca = tempfile::tempdir().expect("dir");
    let ca_path = dir_ca.path().join("clients.pem");
    std::fs::write(&ca_path, &clients.ca.cert_pem).expect("write CA");
    let extra = format!(
        "client_ca = \"{}\"\nclient_auth = \"required\"",
        ca_path.display()
    );
    let gateway = https_gateway(
        &upstream,
        &[("site", &pki.server(&["site.example"]), "")],
        &extra,
    )
    .await;
    let addr = gateway.addr("tls");

    let known = ClientOptions {
        client_cert: Some(clients.client("alice")),
        ..options("site.example", &["http/1.1"])
    };
    let stream = tls::connect(addr, pki.roots(), &known)
        .await
        .expect("handshake with a client certificate");
    let (reply, _) = tls::get(stream, "site.example", "/")
        .await
        .expect("request");
    assert_eq!(reply.status, 200);

    // No certificate, or one from another CA: no response. (With TLS 1.3
    // the client learns at its first read.)
    let stranger = ClientOptions {
        client_cert: Some(pki.client("mallory")),
        ..options("site.example", &["http/1.1"])
    };
    for opts in [options("site.example", &["http/1.1"]), stranger] {
        let result = match tls::connect(addr, pki.roots(), &opts).await {
            Ok(stream) => tls::get(stream, "site.example", "/")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert!(
            result.is_err(),
            "a client without a trusted certificate was served"
        );
    }
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn mtls_optional_serves_clients_without_a_certificate() {
    let pki = Pki::new("ca");
    let upstream = Upstream::start("u").await;
    let dir_ca = tempfile::tempdir().expect("dir");
    let ca_path = dir_ca.path().join("clients.pem");
    std::fs::write(&ca_path, &pki.ca.cert_pem).expect("write CA");
    let extra = format!(
        "client_ca = \"{}\"\nclient_auth = \"optional\"",
        ca_path.display()
    );
    let gateway = https_gateway(
        &upstream,
        &[("site", &pki.server(&["site.example"]), "")],
        &extra,
    )
    .await;
    for cert in [None, Some(pki.client("bob"))] {
        let opts = ClientOptions {
            client_cert: cert,
            ..options("site.example", &["h2"])
        };
        let stream = tls::connect(gateway.addr("tls"), pki.roots(), &opts)
            .await
            .expect("handshake");
        let (reply, _) = tls::get(stream, "site.example", "/")
            .await
            .expect("request");
        assert_eq!(reply.status, 200);
    }
}

#[tokio::test]
async fn plaintext_on_the_tls_port_is_closed_and_tls_still_works() {
    let pki = Pki::new("ca");
    let upstream = Upstream::start("u").await;
    let gateway = https_gateway(
        &upstream,
        &[("site", &pki.server(&["site.example"]), "")],
        "",
    )
    .await;
    let mut plain = gateway.raw("tls").await;
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: site.example\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut got))
        .await
        .expect("closed in time");
    // Either a TLS alert then EOF, or a reset: never an HTTP answer.
    assert!(
        read.is_err() || !String::from_utf8_lossy(&got).contains("HTTP/1.1"),
        "{got:?}"
    );
    assert!(gateway.wait_for_log("TLS handshake failed", WAIT));
    let stream = tls::connect(
        gateway.addr("tls"),
        pki.roots(),
        &options("site.example", &[]),
    )
    .await
    .expect("handshake");
    assert_eq!(
        tls::get(stream, "site.example", "/")
            .await
            .expect("request")
            .0
            .status,
        200
    );
    assert!(upstream.received().len() == 1);
}

/// Reads until the gateway closes `stream` (a close_notify, or the TCP
/// connection's end without one); what was read on the way.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("closed in time")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn an_http1_tls_connection_waits_for_a_request_head_at_most_the_header_timeout() {
    // As on cleartext: a half-sent head is cut off at the header timeout,
    // and so is a keep-alive connection that waits that long for its next
    // request, idle_timeout notwithstanding.
    let pki = Pki::new("ca");
    let upstream = Upstream::start("u").await;
    let gateway = https_gateway(
        &upstream,
        &[("site", &pki.server(&["site.example"]), "")],
        "[listener.http]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"60s\"",
    )
    .await;
    let http1 = options("site.example", &["http/1.1"]);
    let connect = || tls::connect(gateway.addr("tls"), pki.roots(), &http1);
    let mut half = connect().await.expect("handshake");
    half.write_all(b"GET /a HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let sent = std::time::Instant::now();
    assert!(read_until_closed(&mut half).await.is_empty());
    assert!(sent.elapsed() >= std::time::Duration::from_millis(250));

    let mut kept = connect().await.expect("handshake");
    kept.write_all(b"GET /b HTTP/1.1\r\nHost: site.example\r\n\r\n")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let answer = String::from_utf8(read_until_closed(&mut kept).await).expect("text");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    let paths: Vec<String> = upstream.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/b"]);
}

#[test]
fn missing_or_mismatched_certificate_files_are_config_errors_naming_the_file() {
    let pki = Pki::new("ca");
    let dir = tempfile::tempdir().expect("dir");
    let (cert, _) = pki.server(&["a.example"]).write(dir.path(), "a");
    let (_, other_key) = pki.server(&["b.example"]).write(dir.path(), "b");
    let config = |cert: &str, key: &str| {
        format!(
            r#"
            [[listener]]
            name = "tls"
            protocol = "https"
            address = "127.0.0.1:0"
            [[listener.tls.certificate]]
            cert = "{cert}"
            key = "{key}"
            [[listener.route]]
            path_prefix = "/"
            direct = {{ status = 200 }}
            "#
        )
    };
    let run = |text: String| {
        let (output, _, _dir) = check_config(&text);
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = dir.path().join("missing.crt");
    let err = run(config(
        &missing.display().to_string(),
        &other_key.display().to_string(),
    ));
    assert!(
        err.contains("missing.crt") && err.contains("listener[0].tls.certificate[0]"),
        "{err}"
    );
    let err = run(config(
        &cert.display().to_string(),
        &other_key.display().to_string(),
    ));
    assert!(
        err.contains("b.key") && err.contains("does not match"),
        "{err}"
    );
    let err = run(config(
        &cert.display().to_string(),
        &cert.display().to_string(),
    ));
    assert!(
        err.contains("a.crt") && err.contains("no private key"),
        "{err}"
    );
}

async fn upstream_tls_gateway(upstream: &TlsUpstream, ca: &Issued, cluster_tls: &str) -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).expect("write CA");
    Gateway::start_in(
        dir,
        &format!(
            r#"
            [[listener]]
            name = "web"
            protocol = "http"
            address = "127.0.0.1:0"
            [[listener.route]]
            path_prefix = "/"
            cluster = "secure"

            [[cluster]]
            name = "secure"
            endpoints = ["{}"]
            [cluster.tls]
            ca = "ca.pem"
            {cluster_tls}
            "#,
            upstream.addr
        ),
    )
    .await
}

#[tokio::test]
async fn upstream_tls_with_a_private_ca_and_sni_override() {
    let pki = Pki::new("internal ca");
    let upstream =
        TlsUpstream::start("secure", &pki.server(&["svc.internal"]), &["http/1.1"]).await;
    let gateway = upstream_tls_gateway(&upstream, &pki.ca, "sni = \"svc.internal\"").await;
    let mut client = gateway.http1("web").await;
    for _ in 0..2 {
        let reply = client.get("/x").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, "secure")
        );
    }
    assert_eq!(
        upstream.seen(),
        vec![(http::Version::HTTP_11, Some("svc.internal".into())); 2]
    );
}

#[tokio::test]
async fn upstream_h2_is_negotiated_by_alpn() {
    let pki = Pki::new("internal ca");
    let upstream = TlsUpstream::start(
        "secure",
        &pki.server(&["svc.internal"]),
        &["h2", "http/1.1"],
    )
    .await;
    let gateway = upstream_tls_gateway(
        &upstream,
        &pki.ca,
        "sni = \"svc.internal\"\nalpn = [\"h2\", \"http/1.1\"]",
    )
    .await;
    let client = gateway.http2("web").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move { client.get("/y").await }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task").text(), "secure");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|(v, _)| *v == http::Version::HTTP_2),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_upstream_certificate_from_another_ca_is_a_502() {
    let (pki, other) = (Pki::new("internal ca"), Pki::new("other ca"));
    let upstream =
        TlsUpstream::start("secure", &pki.server(&["svc.internal"]), &["http/1.1"]).await;
    let gateway = upstream_tls_gateway(&upstream, &other.ca, "sni = \"svc.internal\"").await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/").await.status, 502);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn upstream_tls_verifies_the_endpoint_address_without_an_sni_override() {
    let pki = Pki::new("internal ca");
    let upstream = TlsUpstream::start("by-ip", &pki.server(&["127.0.0.1"]), &["http/1.1"]).await;
    let gateway = upstream_tls_gateway(&upstream, &pki.ca, "").await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/").await.text(), "by-ip");
    // The name checked is the endpoint's host: a certificate for another
    // name is refused.
    let other = TlsUpstream::start("other", &pki.server(&["svc.internal"]), &["http/1.1"]).await;
    let gateway = upstream_tls_gateway(&other, &pki.ca, "").await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/").await.status, 502);
}
