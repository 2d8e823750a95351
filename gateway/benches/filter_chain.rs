//! Per-request cost of a filter chain: 0, 1 and 3 trivial filters (each
//! reads a request header and continues), in `shared` and `request`
//! isolation. Run: `cargo bench -p gateway --bench filter_chain`.
//! Ends with a summary in µs per request added per filter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use futures_util::future::BoxFuture;
use gateway::config::filter::{FilterConfig, FilterHostConfig, Isolation};
use gateway::filter::{FilterChain, FilterHost, RequestMeta};
use gateway::http::body::empty;
use gateway::upstream::callout::{CalloutClient, CalloutError, CalloutResponse};

const TRIVIAL: &str = r#"(module
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (data (i32.const 0) "user-agent")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get_header (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 16) (i32.const 20)))
    (i32.const 0)))"#;

struct NoCallouts;

impl CalloutClient for NoCallouts {
    fn call(
        &self,
        c: &str,
        _r: http::Request<Bytes>,
        _t: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let c = c.to_string();
        Box::pin(async move { Err(CalloutError::UnknownCluster(c)) })
    }
    fn has_cluster(&self, _c: &str) -> bool {
        false
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        id: http::HeaderValue::from_static("bench"),
        source: "127.0.0.1:5000".parse().expect("addr"),
        destination: "127.0.0.1:8080".parse().expect("addr"),
        scheme: "http",
        tls_version: None,
        mtls: false,
        peer_subject: None,
        sni: None,
    }
}

fn request() -> http::Request<gateway::http::body::Body> {
    http::Request::builder()
        .uri("/ping")
        .header("host", "example.com")
        .header("user-agent", "bench")
        .header("accept", "*/*")
        .body(empty())
        .expect("request")
}

struct Setup {
    rt: tokio::runtime::Runtime,
    chains: Vec<(String, usize, FilterChain)>,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("trivial.wasm");
    std::fs::write(&path, TRIVIAL).expect("write module");
    let host = FilterHost::new(
        &FilterHostConfig {
            cache_dir: None,
            ..Default::default()
        },
        Arc::new(NoCallouts),
    )
    .expect("host");
    let mut chains = Vec::new();
    for (mode, isolation) in [
        ("shared", Isolation::Shared),
        ("request", Isolation::Request),
    ] {
        for n in [0usize, 1, 3] {
            let cfgs: Vec<FilterConfig> = (0..n)
                .map(|i| {
                    let mut c = FilterConfig::new(format!("trivial-{i}"), &path);
                    c.isolation = isolation;
                    c
                })
                .collect();
            let chain = rt.block_on(FilterChain::load(&host, &cfgs));
            assert!(
                chain.status().iter().all(|s| s.state == "loaded"),
                "{:?}",
                chain.status()
            );
            chains.push((mode.to_string(), n, chain));
        }
    }
    Setup { rt, chains }
}

async fn one_request(chain: &FilterChain) {
    let req = request();
    match chain.start(meta()) {
        None => {
            std::hint::black_box(req);
        }
        Some(mut run) => {
            let req = run.on_request(req).await.expect("forwarded");
            std::hint::black_box(req);
            let resp = run.on_response(http::Response::new(empty())).await;
            std::hint::black_box(resp);
            run.finish();
        }
    }
}

fn per_request(s: &Setup, chain: &FilterChain, iters: u64) -> Duration {
    s.rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            one_request(chain).await;
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("filter_chain");
    for (mode, n, chain) in &s.chains {
        group.bench_function(format!("{mode}/{n}"), |b| {
            b.iter_custom(|iters| per_request(&s, chain, iters))
        });
    }
    group.finish();
}

/// CPU time this thread has run (Linux `/proc/thread-self/schedstat`, ns):
/// unlike wall time, not inflated when other work shares the cores.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// µs per request for each chain, and per filter over the empty chain:
/// wall time, and (where the OS tells) CPU time, the least of 3 runs each.
fn summary() {
    let s = setup();
    const N: u64 = 20_000;
    println!("\nper request (least of 3 runs of {N}), and added per filter over the empty chain:");
    for mode in ["shared", "request"] {
        let mut base: Option<(f64, f64)> = None;
        for (m, n, chain) in s.chains.iter().filter(|(m, _, _)| m == mode) {
            per_request(&s, chain, N / 10); // warm up
            let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
            for _ in 0..3 {
                let before = thread_cpu();
                let w = per_request(&s, chain, N).as_secs_f64() * 1e6 / N as f64;
                let c = match (before, thread_cpu()) {
                    (Some(b), Some(a)) => (a - b).as_secs_f64() * 1e6 / N as f64,
                    _ => f64::NAN,
                };
                wall = wall.min(w);
                cpu = cpu.min(c);
            }
            let (base_wall, base_cpu) = *base.get_or_insert((wall, cpu));
            let per = |x: f64, b: f64| if *n == 0 { 0.0 } else { (x - b) / *n as f64 };
            println!(
                "  {m:7} {n} filters: {wall:8.2} µs/request, {:6.2} µs added per filter; CPU {cpu:8.2} µs/request, {:6.2} per filter",
                per(wall, base_wall),
                per(cpu, base_cpu)
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
