//! Services: root-only modules run once per gateway process. The official
//! SDK's `hello_world` runs unmodified; a service and a filter share data;
//! hot reload, limits and failures behave as for filters. Waits are on the
//! gateway's log lines and admin answers, never on sleeps.

use std::path::Path;
use std::time::{Duration, Instant};

use gateway_tests::{wasm, Gateway, Http1Client, Upstream, WAIT};

/// A gateway with an admin listener, one listener routing everything to
/// `up`, and `extra` appended (services, `[wasm]` settings).
fn config(up: &Upstream, wasm_section: &str, extra: &str) -> String {
    format!(
        r#"
        [runtime]
        workers = 1
        [admin]
        address = "127.0.0.1:0"
        [wasm]
        cache_dir = ""
        {wasm_section}
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        {extra}
        "#,
        up.addr
    )
}

fn count(gateway: &Gateway, needle: &str) -> usize {
    gateway.logs().iter().filter(|l| l.contains(needle)).count()
}

/// The line number of the first log line containing `needle` after line `from`.
fn position(gateway: &Gateway, needle: &str, from: usize) -> Option<usize> {
    gateway
        .logs()
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i)
}

async fn admin_get(gateway: &Gateway, path: &str) -> String {
    let admin = gateway.admin.expect("admin listener");
    let reply = Http1Client::connect(admin).await.get(path).await;
    assert_eq!(reply.status.as_u16(), 200, "{path}: {}", reply.text());
    reply.text()
}

/// The `/services` entry of `name`.
async fn service(gateway: &Gateway, name: &str) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_str(&admin_get(gateway, "/services").await).expect("services json");
    json["services"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no service {name} in {json}"))
}

/// Polls `/services` until `check` holds for service `name` (bounded by WAIT).
async fn service_until(
    gateway: &Gateway,
    name: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = service(gateway, name).await;
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "service {name} never got there: {status}"
        );
        // Polling an admin endpoint, not a synchronisation sleep: the
        // state is only visible there.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_official_sdk_hello_world_runs_unmodified_as_a_service() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let text = config(
        &up,
        "",
        &format!(
            "[[service]]\nname = \"hello\"\npath = \"{}\"\n",
            wasm::path("tw-hello-world").display()
        ),
    )
    // Several workers, still one instance.
    .replace("workers = 1", "workers = 3");
    let gateway = Gateway::start_in(dir, &text).await;
    assert!(gateway.wait_for_log("Hello, World!", WAIT), "no start line");
    // Its 5-second timer fires on the service's one instance.
    assert!(
        gateway.wait_for_log("there is no lucky number", Duration::from_secs(15)),
        "no tick line: {:?}",
        gateway.logs()
    );
    // One instance per process: one start line, whatever the workers.
    assert_eq!(count(&gateway, "Hello, World!"), 1);
    // Requests are unaffected.
    let mut client = gateway.http1("web").await;
    for _ in 0..3 {
        let reply = client.get("/any").await;
        assert_eq!(reply.status.as_u16(), 200);
        assert_eq!(reply.text(), "up");
    }
    let status = service_until(&gateway, "hello", |s| s["last_tick"].is_string()).await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["source"], "config");
    assert_eq!(status["sha256"].as_str().map(str::len), Some(64));
    let metrics = admin_get(&gateway, "/metrics").await;
    assert!(
        metrics.contains("gateway_service_up{service=\"hello\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_service_info{service=\"hello\",sha256=\""),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_service_last_tick_timestamp_seconds{service=\"hello\"}"));
    let page = admin_get(&gateway, "/").await;
    let table = page
        .split("<table id=\"services\">")
        .nth(1)
        .expect("services table");
    assert!(
        table.contains("<b>hello</b>") && table.contains("running"),
        "{page}"
    );
}

#[tokio::test]
async fn a_service_dropped_in_a_filter_folder_is_reported_once_and_fails_closed() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::copy(wasm::path("tw-hello-world"), folder.join("hello.wasm")).expect("copy");
    let text = config(&up, "", "").replace(
        "address = \"127.0.0.1:0\"\n        [[listener.route]]",
        "address = \"127.0.0.1:0\"\n        filters_dir = \"filters\"\n        [[listener.route]]",
    );
    let gateway = Gateway::start_in(dir, &text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..5 {
        let reply = client.get("/").await;
        assert_eq!(
            reply.status.as_u16(),
            503,
            "the filter's failure policy (closed)"
        );
        assert!(reply.text().contains("hello"), "{}", reply.text());
    }
    assert_eq!(up.received().len(), 0);
    assert!(gateway.wait_for_log("no HTTP context: is this a service?", WAIT));
    assert!(gateway.wait_for_log("missing ContextType", WAIT));
    // Everything the five requests logged is in: the access log lines.
    assert!(
        gateway.wait_for_log_count("status=503", 5, WAIT),
        "{:?}",
        gateway.logs()
    );
    assert_eq!(
        count(&gateway, "no HTTP context: is this a service?"),
        1,
        "{:?}",
        gateway.logs()
    );
    // The guest's own panic line is logged once too, not once per request.
    assert_eq!(
        count(&gateway, "missing ContextType"),
        1,
        "{:?}",
        gateway.logs()
    );
    let filters = admin_get(&gateway, "/filters").await;
    assert!(
        filters.contains("no HTTP context: is this a service?"),
        "{filters}"
    );

    // Failing open, the module is skipped: requests reach the upstream.
    std::fs::write(folder.join("hello.toml"), "failure = \"open\"\n").expect("sidecar");
    assert!(gateway.wait_for_log_count("filter version now serving", 2, WAIT));
    for _ in 0..3 {
        let reply = client.get("/").await;
        assert_eq!(reply.status.as_u16(), 200);
        assert_eq!(reply.text(), "up");
    }
    assert!(gateway.wait_for_log_count("no HTTP context: is this a service?", 2, WAIT));
    assert!(gateway.wait_for_log_count("status=200", 3, WAIT));
    assert_eq!(count(&gateway, "no HTTP context: is this a service?"), 2);
}

#[tokio::test]
async fn a_changed_service_replaces_the_old_one_only_after_it_started() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let services = dir.path().join("services");
    std::fs::create_dir(&services).expect("mkdir");
    let hello = std::fs::read(wasm::path("tw-hello-world")).expect("module");
    std::fs::write(services.join("hello.wasm"), &hello).expect("module");
    let text = config(
        &up,
        "services_dir = \"services\"\nservices_poll = \"100ms\"",
        "",
    );
    let gateway = Gateway::start_in(dir, &text).await;
    assert!(gateway.wait_for_log("Hello, World!", WAIT));
    let first = service(&gateway, "hello").await;
    assert_eq!(first["source"], "folder");
    assert_eq!(first["generation"], 1);

    // A broken version is reported; the running one keeps running.
    replace(&services.join("hello.wasm"), b"not wasm at all");
    assert!(gateway.wait_for_log(
        "new version rejected, the previous version keeps running",
        WAIT
    ));
    let kept = service(&gateway, "hello").await;
    assert_eq!(kept["state"], "running");
    assert_eq!(kept["sha256"], first["sha256"]);
    assert!(kept["pending_error"].is_string(), "{kept}");
    assert_eq!(count(&gateway, "service stopped"), 0);

    // A good version (the module back, a new sidecar) starts, then the
    // old one is stopped (proxy_on_done, proxy_on_delete).
    let before = gateway.logs().len();
    std::fs::write(services.join("hello.toml"), "vm_config = \"v2\"\n").expect("sidecar");
    replace(&services.join("hello.wasm"), &hello);
    assert!(
        gateway.wait_for_log("service stopped", WAIT),
        "{:?}",
        gateway.logs()
    );
    let started = position(&gateway, "Hello, World!", before).expect("the new version started");
    let stopped = position(&gateway, "service stopped", before).expect("the old one stopped");
    assert!(
        started < stopped,
        "new started at line {started}, old stopped at {stopped}"
    );
    let second = service(&gateway, "hello").await;
    assert_eq!(second["generation"], 2);
    assert!(second["pending_error"].is_null(), "{second}");
    assert_eq!(count(&gateway, "service stopped"), 1);

    // Removed from the folder: stopped.
    std::fs::remove_file(services.join("hello.wasm")).expect("rm");
    assert!(gateway.wait_for_log_count("service stopped", 2, WAIT));
    assert!(gateway.wait_for_log("service removed", WAIT));
}

/// Writes `bytes` to `path` the way deploy tools do: a temporary file
/// renamed over the old one.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn a_service_over_its_deadline_or_memory_restarts_with_back_off_and_filters_keep_serving() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let module = wasm::hostile("service_failing", dir.path());
    let services = format!(
        r#"
        [[service]]
        name = "looping"
        path = "{0}"
        deadline = "20ms"
        [[service]]
        name = "growing"
        path = "{0}"
        vm_config = "grow"
        memory_limit = "1MiB"
        "#,
        module.display()
    );
    let text = config(&up, "failure_backoff = \"50ms\"", &services);
    let mut gateway = Gateway::start_in(dir, &text).await;
    let mut client = gateway.http1("web").await;
    // Each instance starts, ticks once, then fails; it is restarted, again
    // and again, with the process and the listener untouched.
    for name in ["looping", "growing"] {
        let status = service_until(&gateway, name, |s| s["restarts"].as_u64() >= Some(2)).await;
        let error = status["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains("proxy_on_tick"), "{name}: {error}");
        if name == "looping" {
            assert!(error.contains("deadline exceeded"), "{error}");
        }
        let reply = client.get("/during").await;
        assert_eq!(reply.status.as_u16(), 200);
        assert_eq!(reply.text(), "up");
    }
    assert!(count(&gateway, "hostile service started") >= 6);
    assert!(count(&gateway, "hostile service ticked") >= 4);
    let metrics = admin_get(&gateway, "/metrics").await;
    assert!(
        metrics.contains("gateway_service_failures_total{service=\"looping\"}"),
        "{metrics}"
    );
    // Back-off: the waits double (50, 100, 200 ms...), so a second of
    // failing makes a handful of restarts, not hundreds.
    let restarts = service(&gateway, "looping").await["restarts"]
        .as_u64()
        .unwrap_or(0);
    let started = Instant::now();
    let later = service_until(&gateway, "looping", |s| {
        s["restarts"].as_u64() > Some(restarts + 1)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(100), "{later}");
    assert!(
        gateway.wait_exit(Duration::from_millis(1)).is_none(),
        "the gateway is still up"
    );
}

#[tokio::test]
async fn a_service_that_does_not_start_is_reported_and_the_gateway_serves() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm but not really").expect("write");
    let text = config(
        &up,
        "",
        &format!(
            "[[service]]\nname = \"broken\"\npath = \"{}\"\n",
            broken.display()
        ),
    );
    let mut gateway = Gateway::start_in(dir, &text).await;
    let status = service(&gateway, "broken").await;
    assert_eq!(status["state"], "failed");
    assert!(
        status["pending_error"]
            .as_str()
            .is_some_and(|e| e.contains("compiling")),
        "{status}"
    );
    let reply = gateway.http1("web").await.get("/").await;
    assert_eq!(reply.status.as_u16(), 200);
    let metrics = admin_get(&gateway, "/metrics").await;
    assert!(
        metrics.contains("gateway_service_up{service=\"broken\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_service_loads_total{service=\"broken\",result=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(gateway.wait_exit(Duration::from_millis(1)).is_none());
}

/// An upstream serving a deny list that the test changes, counting fetches.
struct ListServer {
    addr: std::net::SocketAddr,
    list: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ListServer {
    async fn start(list: &str) -> ListServer {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let list = std::sync::Arc::new(std::sync::Mutex::new(list.to_string()));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (l, f) = (list.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (l, f) = (l.clone(), f.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        f.fetch_add(1, Ordering::SeqCst);
                        let body = l.lock().expect("list").clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(body)),
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ListServer {
            addr,
            list,
            fetches,
            task,
        }
    }

    fn set(&self, list: &str) {
        *self.list.lock().expect("list") = list.to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ListServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends requests until one gets `status`; returns how long that took
/// (bounded by WAIT).
async fn until_status(gateway: &Gateway, status: u16) -> Duration {
    let started = Instant::now();
    let mut client = gateway.http1("web").await;
    loop {
        if client.get("/").await.status.as_u16() == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < WAIT, "never got {status}");
        // Paced client requests, not a synchronisation sleep: the change
        // is only visible through them.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_bundled_denylist_service_and_filter_follow_the_upstream_list() {
    const PERIOD: Duration = Duration::from_millis(300);
    let up = Upstream::start("up").await;
    let lists = ListServer::start("# nobody yet\n10.9.9.9\n").await;
    let dir = tempfile::tempdir().expect("dir");
    let extra = format!(
        r#"
        [[cluster]]
        name = "lists"
        endpoints = ["{lists}"]
        [[service]]
        name = "denylist-sync"
        path = "{service}"
        vm_id = "denylist"
        config = {{ cluster = "lists", path = "/deny", period_ms = {period} }}
        "#,
        lists = lists.addr,
        service = wasm::path("filter-denylist-sync").display(),
        period = PERIOD.as_millis(),
    );
    let text = config(&up, "", &extra).replace(
        "address = \"127.0.0.1:0\"\n        [[listener.route]]",
        &format!(
            "address = \"127.0.0.1:0\"\n        [[listener.filter]]\n        name = \"denylist\"\n        path = \"{}\"\n        vm_id = \"denylist\"\n        [[listener.route]]",
            wasm::path("filter-denylist").display()
        ),
    );
    let gateway = Gateway::start_in(dir, &text).await;
    assert!(
        gateway
            .log_count_reaches("deny list updated: 1 clients", 1, WAIT)
            .await
    );
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/").await.status.as_u16(), 200, "not listed");

    // The test's client (127.0.0.1) goes on the list upstream: the filter
    // follows at the service's next fetch, within one period.
    let fetched = lists.fetches();
    lists.set("10.9.9.9\n127.0.0.1\n");
    let took = until_status(&gateway, 403).await;
    assert!(
        lists.fetches() <= fetched + 2,
        "followed at the first fetch after the change (or the one in flight)"
    );
    assert!(took < PERIOD * 2 + Duration::from_secs(5), "took {took:?}");
    let reached = up.received().len();
    for _ in 0..3 {
        let reply = client.get("/").await;
        assert_eq!(reply.status.as_u16(), 403);
        assert_eq!(reply.text(), "forbidden\n");
    }
    assert_eq!(
        up.received().len(),
        reached,
        "denied requests never reach the upstream"
    );
    let metrics = admin_get(&gateway, "/metrics").await;
    let denied = "gateway_filter_counter_total{filter=\"denylist\",name=\"denylist_denied\"}";
    assert!(metrics.contains(denied), "{metrics}");

    // Off the list again: served again.
    lists.set("10.9.9.9\n");
    let took = until_status(&gateway, 200).await;
    assert!(took < PERIOD * 2 + Duration::from_secs(5), "took {took:?}");
    let status = service(&gateway, "denylist-sync").await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["vm_id"], "denylist");
}

#[tokio::test]
async fn filters_feed_a_queue_the_service_drains_by_vm_id() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let module = wasm::path("tw-queue-pair");
    let extra = format!(
        "[[service]]\nname = \"events\"\npath = \"{0}\"\nvm_id = \"events-vm\"\nconfig = \"service\"\n",
        module.display()
    );
    let text = config(&up, "", &extra).replace(
        "address = \"127.0.0.1:0\"\n        [[listener.route]]",
        &format!(
            "address = \"127.0.0.1:0\"\n        [[listener.filter]]\n        name = \"events-filter\"\n        path = \"{}\"\n        vm_id = \"events-vm\"\n        config = \"filter\"\n        [[listener.route]]",
            module.display()
        ),
    );
    let gateway = Gateway::start_in(dir, &text).await;
    let mut client = gateway.http1("web").await;
    for i in 1..=5 {
        assert_eq!(client.get(&format!("/e{i}")).await.status.as_u16(), 200);
    }
    // The service drained what the filter enqueued, and published the
    // count in the shared data the filter reads (same vm_id).
    assert!(
        gateway.log_count_reaches("events: /e5", 1, WAIT).await,
        "{:?}",
        gateway.logs()
    );
    let reply = client.get("/after").await;
    let seen: u64 = reply
        .header("x-events-seen")
        .and_then(|v| v.parse().ok())
        .expect("x-events-seen");
    assert!(seen >= 5, "seen {seen}");
    let drained = gateway
        .logs()
        .iter()
        .filter(|l| l.contains("drained") && l.contains("filter=\"events\""))
        .count();
    assert!(
        drained >= 1,
        "drained by the service itself: {:?}",
        gateway.logs()
    );
}

#[tokio::test]
async fn a_config_reload_starts_changed_services_and_stops_removed_ones() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let entry = |vm_config: &str| {
        format!(
            "[[service]]\nname = \"hello\"\npath = \"{}\"\nvm_config = \"{vm_config}\"\n",
            wasm::path("tw-hello-world").display()
        )
    };
    let gateway = Gateway::start_in(dir, &config(&up, "", &entry("v1"))).await;
    assert!(gateway.wait_for_log("Hello, World!", WAIT));
    // Unchanged on reload: left running, not restarted.
    gateway.rewrite_config(&config(&up, "", &entry("v1")));
    assert!(gateway.log_count_reaches("config reloaded", 1, WAIT).await);
    assert_eq!(count(&gateway, "Hello, World!"), 1);
    // Changed: the new one starts, then the old one stops.
    gateway.rewrite_config(&config(&up, "", &entry("v2")));
    assert!(gateway.log_count_reaches("service stopped", 1, WAIT).await);
    assert_eq!(count(&gateway, "Hello, World!"), 2);
    assert_eq!(service(&gateway, "hello").await["generation"], 2);
    // Removed: stopped, and gone from /services.
    gateway.rewrite_config(&config(&up, "", ""));
    assert!(gateway.log_count_reaches("service removed", 1, WAIT).await);
    let json: serde_json::Value =
        serde_json::from_str(&admin_get(&gateway, "/services").await).expect("json");
    assert_eq!(json["services"].as_array().map(Vec::len), Some(0), "{json}");
}

#[tokio::test]
async fn gateway_check_starts_services_too() {
    let good = format!(
        "[[service]]\nname = \"hello\"\npath = \"{}\"\n",
        wasm::path("tw-hello-world").display()
    );
    let (output, _, _dir) = gateway_tests::check_config(&good);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ok: service `hello`"), "{stdout}");
    let bad = format!(
        "[[service]]\nname = \"sync\"\npath = \"{}\"\nconfig = {{ period_ms = 0 }}\n",
        wasm::path("filter-denylist-sync").display()
    );
    let (output, _, _dir) = gateway_tests::check_config(&bad);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("service `sync` (key `service[0]`"),
        "{stderr}"
    );
    assert!(stderr.contains("configuration rejected"), "{stderr}");
}
