//! Redis clusters as filters see them, against a real `redis-server`: the
//! callout convention from a filter of the official proxy-wasm SDK, and the
//! bundled `ratelimit` filter's global mode (the limit, the headers, what
//! Redis holds, admin and metrics, an outage).

use std::time::Duration;

use gateway_tests::redis::ratelimit_config;
use gateway_tests::{Gateway, Http1Client, RedisServer, WAIT};

const LIMIT_5_PER_MINUTE: &str = r#"{"capacity": 2, "per_second": 0.01, "header": "x-tenant",
    "name": "it", "global": {"limit": 5, "window_ms": 60000, "sync_ms": 20}}"#;

async fn get(client: &mut Http1Client, tenant: &str) -> gateway_tests::Reply {
    let request = http::Request::get("/")
        .header("host", "gw")
        .header("x-tenant", tenant)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    client.send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_is_kept_in_redis_and_answered_with_ratelimit_headers() {
    let redis = RedisServer::start();
    let gateway = Gateway::start(&ratelimit_config(redis.addr, LIMIT_5_PER_MINUTE, 1)).await;
    let mut client = gateway.http1("web").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let reply = get(&mut client, "acme").await;
        statuses.push(reply.status.as_u16());
        if reply.status == 200 {
            assert_eq!(reply.header("ratelimit-limit"), Some("5"));
        } else {
            assert_eq!(reply.status, 429);
            assert!(reply.header("retry-after").is_some());
            assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
            assert!(reply.header("ratelimit-reset").is_some());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // The timer reports to Redis: the window's hash holds 5 admitted.
    let window = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        / 60_000;
    let hash = format!("ratelimit:it:header:acme:{window}");
    let deadline = std::time::Instant::now() + WAIT;
    while redis.command(&["HGET", &hash, "a"]) != "5" {
        assert!(
            std::time::Instant::now() < deadline,
            "Redis never got the count"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another tenant has its own limit.
    assert_eq!(get(&mut client, "other").await.status, 200);

    // Admin and metrics show the Redis cluster.
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let overview = admin.get("/overview").await.text();
    let overview: serde_json::Value = serde_json::from_str(&overview).expect("overview JSON");
    let cluster = overview["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "redis"))
        .expect("the redis cluster in the overview");
    assert_eq!(cluster["redis"]["state"], "up", "{cluster}");
    assert!(
        cluster["redis"]["commands_ok"].as_u64() >= Some(1),
        "{cluster}"
    );
    let metrics = admin.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"gateway_redis_commands_total{cluster="redis",result="ok"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_redis_command_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_local_bucket_limits_and_the_global_mode_comes_back() {
    let mut redis = RedisServer::start();
    let gateway = Gateway::start(&ratelimit_config(redis.addr, LIMIT_5_PER_MINUTE, 1)).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(get(&mut client, "a").await.status, 200);
    redis.stop();
    // Requests keep being answered: the local bucket (capacity 2) applies.
    let mut statuses = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while !gateway.wait_for_log("unreachable: limiting", Duration::ZERO) {
        assert!(
            std::time::Instant::now() < deadline,
            "the outage was never noticed"
        );
        statuses.push(get(&mut client, "b").await.status.as_u16());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..4 {
        statuses.push(get(&mut client, "b").await.status.as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.ends_with(&[429, 429]),
        "local bucket limits: {statuses:?}"
    );
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let metrics = admin.get("/metrics").await.text();
    assert!(metrics.contains("ratelimit_redis_unavailable"), "{metrics}");
    // Redis returns: the filter notices by itself and says so once.
    redis.restart();
    assert!(gateway.wait_for_log("global limit again", WAIT));
    assert_eq!(get(&mut client, "c").await.status, 200);
    let logs = gateway.logs();
    let changes = logs
        .iter()
        .filter(|l| l.contains("unreachable: limiting"))
        .count();
    assert_eq!(changes, 1, "one line per state change: {logs:#?}");
}

/// A gateway whose every request runs the Redis command in its
/// `x-redis-command` header through the official-SDK test filter.
async fn command_gateway(redis: &RedisServer) -> Gateway {
    command_gateway_with(redis, "[cluster.redis]\ndatabase = 3").await
}

async fn command_gateway_with(redis: &RedisServer, cluster_extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "redis-command"
        path = "{}"
        [[listener.route]]
        path_prefix = "/"
        [listener.route.direct]
        status = 200
        [[cluster]]
        name = "redis"
        protocol = "redis"
        endpoints = ["{}"]
        connect_timeout = "200ms"
        request_timeout = "1s"
        {cluster_extra}
        "#,
        gateway_tests::wasm::path("tw-redis-command").display(),
        redis.addr
    ))
    .await
}

async fn run(client: &mut Http1Client, command: &str) -> (u16, serde_json::Value) {
    let request = http::Request::get("/")
        .header("host", "gw")
        .header("x-redis-command", command)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let reply = client.send(request).await;
    let body = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    (reply.status.as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_proxy_wasm_filter_reaches_redis_by_the_json_convention() {
    use serde_json::json;
    let mut redis = RedisServer::start();
    let gateway = command_gateway(&redis).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(
        run(&mut client, r#"["SET", "greeting", "hello"]"#).await,
        (200, json!("OK"))
    );
    assert_eq!(
        run(&mut client, r#"["GET", "greeting"]"#).await,
        (200, json!("hello"))
    );
    assert_eq!(
        run(&mut client, r#"["INCRBY", "n", 5]"#).await,
        (200, json!(5))
    );
    assert_eq!(
        run(&mut client, r#"["GET", "missing"]"#).await,
        (200, json!(null))
    );
    assert_eq!(
        run(&mut client, r#"["RPUSH", "l", "a", "b"]"#).await,
        (200, json!(2))
    );
    assert_eq!(
        run(&mut client, r#"["LRANGE", "l", 0, -1]"#).await,
        (200, json!(["a", "b"]))
    );
    // The configured database (3) was selected: database 0 has no such key.
    assert_eq!(redis.command(&["EXISTS", "greeting"]), ":0");
    assert_eq!(
        run(&mut client, r#"["EXISTS", "greeting"]"#).await,
        (200, json!(1))
    );
    // A Redis error reply, a malformed command.
    let (status, body) = run(&mut client, r#"["INCR", "greeting"]"#).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an integer")),
        "{body}"
    );
    let (status, body) = run(&mut client, "GET greeting").await;
    assert_eq!((status, body["error"].is_string()), (400, true));
    // Redis gone: 503 (or 504 while a reconnect is under way), never a hang.
    redis.stop();
    let (status, _) = run(&mut client, r#"["GET", "greeting"]"#).await;
    assert!(status == 503 || status == 504, "{status}");
    // Back (empty: no persistence): answered again without restarting anything.
    redis.restart();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = run(&mut client, r#"["PING"]"#).await;
        if status == 200 {
            assert_eq!(body, json!("PONG"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redis never came back: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_a_password() {
    use serde_json::json;
    let pki = gateway_tests::tls::Pki::new("redis test CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = pki.server(&["localhost"]).write(dir.path(), "redis");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca.cert_pem).expect("write CA");
    let arg = |p: &std::path::Path| p.display().to_string();
    let redis = RedisServer::start_with(vec![
        "--tls-port".into(),
        "--tls-cert-file".into(),
        arg(&cert),
        "--tls-key-file".into(),
        arg(&key),
        "--tls-ca-cert-file".into(),
        arg(&ca),
        "--tls-auth-clients".into(),
        "no".into(),
        "--requirepass".into(),
        "s3cret".into(),
    ]);
    let tls = |password: &str| {
        format!(
            "[cluster.tls]\nca = \"{}\"\nsni = \"localhost\"\n[cluster.redis]\npassword = \"{password}\"",
            ca.display()
        )
    };
    let gateway = command_gateway_with(&redis, &tls("s3cret")).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(
        run(&mut client, r#"["SET", "k", "v"]"#).await,
        (200, json!("OK"))
    );
    assert_eq!(run(&mut client, r#"["GET", "k"]"#).await, (200, json!("v")));
    // A wrong password: no answer to give, so "unreachable", with the reason.
    let wrong = command_gateway_with(&redis, &tls("wrong")).await;
    let mut client = wrong.http1("web").await;
    let (status, body) = run(&mut client, r#"["GET", "k"]"#).await;
    assert_eq!(status, 503, "{body}");
}
