//! State shared between instances and requests: data, queues, ticks.

use super::*;

#[tokio::test]
async fn shared_data_queues_ticks_and_metrics() {
    let host = test_host();
    let d = Data::new(&["q", "ticks", "msgs", "k", "v", "x-shared"]);
    let body = format!(
        r#"(global $queue (mut i32) (i32.const 0))
           (global $ticks (mut i32) (i32.const 0))
           (global $msgs (mut i32) (i32.const 0))
           (func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $register_queue {q} (i32.const 1040)))
             (global.set $queue (i32.load (i32.const 1040)))
             (drop (call $define_metric (i32.const 0) {ticks} (i32.const 1044)))
             (global.set $ticks (i32.load (i32.const 1044)))
             (drop (call $define_metric (i32.const 0) {msgs} (i32.const 1048)))
             (global.set $msgs (i32.load (i32.const 1048)))
             (drop (call $set_tick (i32.const 10)))
             (i32.const 1))
           (func (export "proxy_on_tick") (param i32)
             (drop (call $increment_metric (global.get $ticks) (i64.const 1))))
           (func (export "proxy_on_queue_ready") (param i32 i32)
             (if (i32.eqz (call $dequeue (local.get 1) (i32.const 1024) (i32.const 1028)))
               (then (drop (call $increment_metric (global.get $msgs) (i64.const 1))))))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_shared {k} (i32.const 1024) (i32.const 1028) (i32.const 1052)))
               (then (drop (call $add_header (i32.const 0) {xshared} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             (drop (call $set_shared {k} {v} (i32.const 0)))
             (drop (call $enqueue (global.get $queue) {v}))
             (i32.const 0))"#,
        q = d.at("q"),
        ticks = d.at("ticks"),
        msgs = d.at("msgs"),
        k = d.at("k"),
        v = d.at("v"),
        xshared = d.at("x-shared"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| c.instances = 2).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let mut run = chain.start(meta()).expect("run");
    let first = run.on_request(request(&[])).await.expect("forwarded");
    assert!(first.headers().get("x-shared").is_none());
    // The second request lands on the other instance: the data is shared.
    let mut run = chain.start(meta()).expect("run");
    let second = run.on_request(request(&[])).await.expect("forwarded");
    assert_eq!(
        second.headers().get("x-shared").map(|v| v.as_bytes()),
        Some(&b"v"[..])
    );

    let metric = |name: &str| {
        host.metrics()
            .iter()
            .find(|m| m.name == name)
            .map_or(0, |m| m.value)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    // Bounded poll: ticks come every 10ms, queue messages at once.
    while (metric("ticks") < 2 || metric("msgs") < 2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        metric("ticks") >= 2,
        "proxy_on_tick ran: {:?}",
        host.metrics()
    );
    assert_eq!(
        metric("msgs"),
        2,
        "proxy_on_queue_ready dequeued both messages"
    );
}

/// Answers `auth` callouts only once the test lets them through.
struct GatedCallouts(Arc<tokio::sync::Semaphore>);

impl CalloutClient for GatedCallouts {
    fn call(
        &self,
        c: &str,
        r: http::Request<Bytes>,
        t: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let gate = self.0.clone();
        let answer = Callouts.call(c, r, t);
        Box::pin(async move {
            let _permit = gate
                .acquire()
                .await
                .map_err(|e| CalloutError::Failed(e.to_string()))?;
            answer.await
        })
    }
    fn has_cluster(&self, c: &str) -> bool {
        Callouts.has_cluster(c)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_requests_interleave_on_one_shared_instance() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let cfg = FilterHostConfig {
        cache_dir: None,
        max_instances: 16,
        ..FilterHostConfig::default()
    };
    let host = FilterHost::new(&cfg, Arc::new(GatedCallouts(gate.clone()))).expect("host");
    let chain = chain_with(&host, &callout_filter(), |c| c.instances = 1).await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let chain = chain.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = chain.start(meta()).expect("run");
            let req = run.on_request(request(&[])).await.expect("forwarded");
            run.finish();
            req.headers()
                .get("x-auth-user")
                .map(|v| v.as_bytes().to_vec())
        }));
    }
    // None can finish before its callout is answered.
    tokio::task::yield_now().await;
    assert!(tasks.iter().all(|t| !t.is_finished()));
    gate.add_permits(3);
    for t in tasks {
        let header = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(header.as_deref(), Some(&b"alice"[..]));
    }
}
