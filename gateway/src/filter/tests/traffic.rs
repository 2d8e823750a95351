//! Headers, local responses, properties, callouts and bodies.

use super::*;

async fn headers_round_trip(isolation: Isolation) {
    let host = test_host();
    let chain = chain_with(&host, &header_filter(), |c| c.isolation = isolation).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    for _ in 0..3 {
        let mut run = chain.start(meta()).expect("run");
        let req = run
            .on_request(request(&[("x-in", "hello"), ("x-drop", "1")]))
            .await
            .expect("forwarded");
        assert_eq!(
            req.headers().get("x-seen").map(|v| v.as_bytes()),
            Some(&b"hello"[..])
        );
        assert!(req.headers().get("x-drop").is_none());
        assert_eq!(req.uri().path(), "/rewritten");
        assert_eq!(
            req.headers().get("host").map(|v| v.as_bytes()),
            Some(&b"example.com"[..])
        );
        let resp = run.on_response(http::Response::new(full("body"))).await;
        assert_eq!(
            resp.headers().get("x-resp").map(|v| v.as_bytes()),
            Some(&b"yes"[..])
        );
        run.finish();
    }
}

#[tokio::test]
async fn headers_get_add_remove_replace_shared() {
    headers_round_trip(Isolation::Shared).await;
}

#[tokio::test]
async fn headers_get_add_remove_replace_per_request() {
    headers_round_trip(Isolation::Request).await;
}

#[tokio::test]
async fn local_response_without_authorization() {
    let host = test_host();
    let d = Data::new(&["authorization", "denied", "details"]);
    // Headers for the answer, in the map wire format: www-authenticate: Basic
    let wire =
        crate::filter::abi::encode_pairs([(&b"www-authenticate"[..], &b"Basic"[..])].into_iter());
    let wire_wat: String = wire.iter().map(|b| format!("\\{b:02x}")).collect();
    let body = format!(
        r#"(data (i32.const 2048) "{wire_wat}")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $get_header (i32.const 0) {auth} (i32.const 1024) (i32.const 1028))
               (then
                 (drop (call $local (i32.const 401) {details} {denied} (i32.const 2048) (i32.const {len}) (i32.const -1)))
                 (return (i32.const 1))))
             (i32.const 0))"#,
        auth = d.at("authorization"),
        details = d.at("details"),
        denied = d.at("denied"),
        len = wire.len(),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let resp = run
        .on_request(request(&[]))
        .await
        .expect_err("answered locally");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Basic"[..])
    );
    assert_eq!(body_text(resp.into_body()).await, "denied");
    let mut run = chain.start(meta()).expect("run");
    assert!(run
        .on_request(request(&[("authorization", "x")]))
        .await
        .is_ok());
}

#[tokio::test]
async fn properties_read_and_upstream_override() {
    let host = test_host();
    let d = Data::new(&[
        "request\0url_path",
        "x-url-path",
        "source\0port",
        "x-port",
        "eight",
        "gateway\0upstream",
        "ping_pong",
    ]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_prop {url} (i32.const 1024) (i32.const 1028)))
               (then (drop (call $add_header (i32.const 0) {xurl} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             ;; ports are 8-byte little-endian integers
             (if (i32.eqz (call $get_prop {port} (i32.const 1024) (i32.const 1028)))
               (then (if (i32.and (i32.eq (i32.load (i32.const 1028)) (i32.const 8))
                                  (i32.eq (i32.load (i32.load (i32.const 1024))) (i32.const 40000)))
                 (then (drop (call $add_header (i32.const 0) {xport} {eight}))))))
             (drop (call $set_prop {up} {pp}))
             (i32.const 0))"#,
        url = d.at("request\0url_path"),
        xurl = d.at("x-url-path"),
        port = d.at("source\0port"),
        xport = d.at("x-port"),
        eight = d.at("eight"),
        up = d.at("gateway\0upstream"),
        pp = d.at("ping_pong"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(request(&[])).await.expect("forwarded");
    assert_eq!(
        req.headers().get("x-url-path").map(|v| v.as_bytes()),
        Some(&b"/ping"[..])
    );
    assert_eq!(
        req.headers().get("x-port").map(|v| v.as_bytes()),
        Some(&b"eight"[..])
    );
    assert_eq!(run.upstream_override().as_deref(), Some("ping_pong"));
}

#[tokio::test]
async fn a_finished_request_leaves_nothing_to_the_next() {
    // Requests of one thread reuse the stream state of finished ones: the
    // next request must see none of the last one's headers, properties or
    // upstream choice.
    let host = test_host();
    let d = Data::new(&[
        "x-set",
        "x-leaked",
        "my\0flag",
        "one",
        "gateway\0upstream",
        "ping_pong",
    ]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_prop {flag} (i32.const 1024) (i32.const 1028)))
               (then (drop (call $add_header (i32.const 0) {leaked} {one}))))
             (if (i32.eqz (call $get_header (i32.const 0) {xset} (i32.const 1024) (i32.const 1028)))
               (then
                 (drop (call $set_prop {flag} {one}))
                 (drop (call $set_prop {up} {pp}))))
             (i32.const 0))"#,
        flag = d.at("my\0flag"),
        leaked = d.at("x-leaked"),
        one = d.at("one"),
        xset = d.at("x-set"),
        up = d.at("gateway\0upstream"),
        pp = d.at("ping_pong"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    for round in 0..3 {
        let mut run = chain.start(meta()).expect("run");
        let req = run
            .on_request(request(&[("x-set", "1")]))
            .await
            .expect("forwarded");
        assert!(req.headers().get("x-leaked").is_none(), "round {round}");
        assert_eq!(run.upstream_override().as_deref(), Some("ping_pong"));
        assert_eq!(run.property(b"my\0flag").as_deref(), Some(&b"one"[..]));
        run.finish();

        let mut run = chain.start(meta()).expect("run");
        let req = run.on_request(request(&[])).await.expect("forwarded");
        assert!(req.headers().get("x-leaked").is_none(), "round {round}");
        assert_eq!(run.upstream_override(), None, "round {round}");
        assert_eq!(run.property(b"my\0flag"), None, "round {round}");
        run.finish();
    }
}

#[tokio::test]
async fn http_call_pauses_then_resumes_with_the_answer() {
    let host = test_host();
    let chain = chain_with(&host, &callout_filter(), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = tokio::time::timeout(Duration::from_secs(5), run.on_request(request(&[])))
        .await
        .expect("resumes in time")
        .expect("forwarded");
    assert_eq!(
        req.headers().get("x-auth-user").map(|v| v.as_bytes()),
        Some(&b"alice"[..])
    );
}

#[tokio::test]
async fn buffering_filter_over_the_limit_gets_413() {
    let host = test_host();
    // Pauses on every body chunk until the end of the stream.
    let text = abi(
        &Data::new(&[]),
        r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
             (i32.eqz (local.get 2)))"#,
    );
    let chain = chain_with(&host, &text, |c| {
        c.body_buffer_limit = bytesize::ByteSize::b(8)
    })
    .await;
    let stream = futures_util::stream::iter(
        ["0123", "4567", "89ab"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let body = crate::http::body::boxed(http_body_util::StreamBody::new(stream));
    let req = http::Request::builder()
        .uri("/")
        .body(body)
        .expect("request");
    let mut run = chain.start(meta()).expect("run");
    assert_eq!(
        run.on_request(req)
            .await
            .expect_err("over the limit")
            .status(),
        413
    );

    // Under the limit, the whole body arrives, in one piece.
    let stream = futures_util::stream::iter(
        ["01", "23"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let body = crate::http::body::boxed(http_body_util::StreamBody::new(stream));
    let req = http::Request::builder()
        .uri("/")
        .body(body)
        .expect("request");
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(req).await.expect("forwarded");
    assert_eq!(body_text(req.into_body()).await, "0123");
}

#[tokio::test]
async fn a_pause_at_the_end_of_the_body_waits_for_the_callout() {
    let host = test_host();
    let d = Data::new(&["auth", "authorized"]);
    let call_headers = crate::filter::abi::encode_pairs(
        [
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/check"),
            (b":authority", b"auth"),
        ]
        .into_iter(),
    );
    let hw: String = call_headers.iter().map(|b| format!("\\{b:02x}")).collect();
    // Waits for the whole body, checks it with a callout, then replaces it.
    let body = format!(
        r#"(data (i32.const 3072) "{hw}")
           (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
             (if (i32.eqz (local.get 2)) (then (return (i32.const 1))))
             (if (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1032))
               (then unreachable))
             {remember}
             (i32.const 1))
           (import_placeholder)
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             {recall}
             (drop (call $set_buffer (i32.const 0) (i32.const 0) (i32.const -1) {authorized}))
             (drop (call $continue (i32.const 0))))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
        authorized = d.at("authorized"),
        remember = super::REMEMBER_CALLER,
        recall = super::RECALL_CALLER,
    )
    .replace("(import_placeholder)", "");
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let stream = futures_util::stream::iter(
        ["se", "cret"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let req = http::Request::builder()
        .uri("/")
        .body(crate::http::body::boxed(http_body_util::StreamBody::new(
            stream,
        )))
        .expect("request");
    let mut run = chain.start(meta()).expect("run");
    let req = tokio::time::timeout(Duration::from_secs(5), run.on_request(req))
        .await
        .expect("in time")
        .expect("forwarded");
    assert_eq!(body_text(req.into_body()).await, "authorized");
}

#[tokio::test]
async fn pseudo_headers_rewrite_method_and_authority() {
    let host = test_host();
    let d = Data::new(&[":method", "POST", ":authority", "backend.internal:81"]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $replace_header (i32.const 0) {m} {post}))
             (drop (call $replace_header (i32.const 0) {a} {backend}))
             (i32.const 0))"#,
        m = d.at(":method"),
        post = d.at("POST"),
        a = d.at(":authority"),
        backend = d.at("backend.internal:81"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(request(&[])).await.expect("forwarded");
    assert_eq!(req.method(), http::Method::POST);
    // HTTP/1 origin-form: the authority travels in Host, the path is kept.
    assert_eq!(
        req.headers().get("host").map(|v| v.as_bytes()),
        Some(&b"backend.internal:81"[..])
    );
    assert_eq!(req.uri().to_string(), "/ping?x=1");
}
