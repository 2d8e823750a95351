//! Hostile guests: each is contained, and the next request is served.

use super::*;

// === hostile guests ===

async fn hostile(text: &str, failure: FailurePolicy) -> (FilterChain, Duration) {
    let host = test_host();
    let chain = chain_with(&host, text, |c| {
        c.failure = failure;
        c.instances = 1;
        c.memory_limit = bytesize::ByteSize::mib(8);
    })
    .await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let mut run = chain.start(meta()).expect("run");
    let started = Instant::now();
    let outcome = run.on_request(request(&[("x-attack", "1")])).await;
    let took = started.elapsed();
    match failure {
        FailurePolicy::Closed => {
            let resp = outcome.expect_err("fails closed");
            assert_eq!(resp.status(), 503);
            assert!(body_text(resp.into_body()).await.contains("`f`"));
        }
        FailurePolicy::Open => assert!(outcome.is_ok(), "fails open"),
    }
    drop(run);
    // The next request runs on a fresh instance.
    let mut run = chain.start(meta()).expect("run");
    assert!(
        run.on_request(request(&[])).await.is_ok(),
        "a fresh instance serves the next request"
    );
    (chain, took)
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    let (_, took) = hostile(
        include_str!("../../../../tests/wasm/hostile/loop.wat"),
        FailurePolicy::Closed,
    )
    .await;
    // The loop never ends by itself: that it ended is the deadline's doing.
    // The bound leaves room for a loaded machine (the epoch ticker thread
    // and this one compete for the CPU); precision is not asserted here.
    assert!(
        took < Duration::from_secs(2),
        "deadline 100ms, took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(90),
        "stopped before the deadline: {took:?}"
    );
    hostile(
        include_str!("../../../../tests/wasm/hostile/loop.wat"),
        FailurePolicy::Open,
    )
    .await;
}

#[tokio::test]
async fn unbounded_memory_growth_is_capped() {
    hostile(
        include_str!("../../../../tests/wasm/hostile/memory_grow.wat"),
        FailurePolicy::Closed,
    )
    .await;
}

#[tokio::test]
async fn deep_recursion_is_contained() {
    hostile(
        include_str!("../../../../tests/wasm/hostile/recursion.wat"),
        FailurePolicy::Closed,
    )
    .await;
}

#[tokio::test]
async fn unreachable_trap_is_contained() {
    hostile(
        include_str!("../../../../tests/wasm/hostile/unreachable.wat"),
        FailurePolicy::Open,
    )
    .await;
}

#[tokio::test]
async fn bad_pointers_get_invalid_memory_access() {
    let host = test_host();
    let chain = chain_with(
        &host,
        include_str!("../../../../tests/wasm/hostile/bad_pointers.wat"),
        |_| {},
    )
    .await;
    let mut run = chain.start(meta()).expect("run");
    let req = run
        .on_request(request(&[]))
        .await
        .expect("every bad call got status 6");
    assert_eq!(
        req.headers().get("x-bad-pointers").map(|v| v.as_bytes()),
        Some(&b"ok"[..])
    );
}

#[tokio::test]
async fn a_filter_that_keeps_failing_is_backed_off() {
    let host = test_host();
    let chain = chain_with(
        &host,
        include_str!("../../../../tests/wasm/hostile/unreachable.wat"),
        |c| c.instances = 1,
    )
    .await;
    for _ in 0..3 {
        let mut run = chain.start(meta()).expect("run");
        assert!(run.on_request(request(&[("x-attack", "1")])).await.is_err());
    }
    assert_eq!(chain.status()[0].state, "backed-off");
    // While backed off, even harmless requests get the failure policy.
    let mut run = chain.start(meta()).expect("run");
    assert_eq!(
        run.on_request(request(&[]))
            .await
            .expect_err("backed off")
            .status(),
        503
    );
}

/// Traps in `proxy_on_request_headers` when the request has `x-attack`;
/// adds `x-resp: yes` to every response it sees.
fn trap_on_attack() -> String {
    let d = Data::new(&["x-attack", "x-resp", "yes"]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_header (i32.const 0) {attack} (i32.const 1024) (i32.const 1028))) (then unreachable))
             (i32.const 0))
           (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
             (drop (call $add_header (i32.const 2) {xresp} {yes}))
             (i32.const 0))"#,
        attack = d.at("x-attack"),
        xresp = d.at("x-resp"),
        yes = d.at("yes"),
    );
    abi(&d, &body)
}

#[tokio::test]
async fn a_failing_instance_leaves_requests_on_other_instances_alone() {
    let host = test_host();
    let chain = chain_with(&host, &trap_on_attack(), |c| c.instances = 2).await;
    // `calm` is bound to one instance, `attack` (next) to the other.
    let mut calm = chain.start(meta()).expect("run");
    assert!(calm.on_request(request(&[])).await.is_ok());
    let mut attack = chain.start(meta()).expect("run");
    assert_eq!(
        attack
            .on_request(request(&[("x-attack", "1")]))
            .await
            .expect_err("trapped")
            .status(),
        503
    );
    // The calm request's instance was untouched: its response phase runs.
    let resp = calm.on_response(http::Response::new(full("fine"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("x-resp").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    // The attacked request's instance is gone for good.
    assert_eq!(
        attack
            .on_response(http::Response::new(full("x")))
            .await
            .status(),
        200,
        "skipped: no context"
    );
    calm.finish();
    attack.finish();
}

#[tokio::test]
async fn proc_exit_discards_the_instance() {
    let host = test_host();
    let d = Data::new(&["x-exit"]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_header (i32.const 0) {x} (i32.const 1024) (i32.const 1028)))
               (then (call $proc_exit (i32.const 3))))
             (i32.const 0))"#,
        x = d.at("x-exit"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| c.instances = 1).await;
    let mut run = chain.start(meta()).expect("run");
    assert_eq!(
        run.on_request(request(&[("x-exit", "1")]))
            .await
            .expect_err("exited")
            .status(),
        503
    );
    assert!(
        chain.status()[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("proc_exit"),
        "{:?}",
        chain.status()
    );
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[])).await.is_ok());
}

#[tokio::test]
async fn a_trap_counts_once_however_many_requests_were_bound_to_the_instance() {
    let host = test_host();
    // One instance: every request in flight is bound to the one that traps.
    let chain = chain_with(&host, &trap_on_attack(), |c| c.instances = 1).await;
    for round in 0..3 {
        let mut bystanders = Vec::new();
        for _ in 0..5 {
            let mut run = chain.start(meta()).expect("run");
            assert!(run.on_request(request(&[])).await.is_ok());
            bystanders.push(run);
        }
        let mut attack = chain.start(meta()).expect("run");
        assert!(attack
            .on_request(request(&[("x-attack", "1")]))
            .await
            .is_err());
        // Requests paused inside the trapped instance get the failure policy...
        for mut run in bystanders {
            let resp = run.on_response(http::Response::new(full("x"))).await;
            assert_eq!(resp.status(), 503, "round {round}");
            run.finish();
        }
        attack.finish();
        // ...but the trap counted once: the filter stays in service and the
        // next request gets a fresh instance.
        assert_eq!(chain.status()[0].state, "loaded", "round {round}");
        let mut next = chain.start(meta()).expect("run");
        assert!(next.on_request(request(&[])).await.is_ok(), "round {round}");
        let resp = next.on_response(http::Response::new(full("fine"))).await;
        assert_eq!(
            resp.headers().get("x-resp").map(|v| v.as_bytes()),
            Some(&b"yes"[..])
        );
        next.finish();
    }
}
