//! A guest that calls random hostcall sequences with random pointers and
//! lengths: the input is compiled into a wasm module whose request and
//! response header and body callbacks and callout answer make those calls, run through a real
//! filter chain. The host must answer every call with a status (or trap
//! the guest), never panic or hang.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use gateway::config::filter::FilterHostConfig;
use gateway::config::FilterConfig;
use gateway::filter::{FilterChain, FilterHost, RequestMeta};
use gateway::upstream::callout::{CalloutClient, CalloutError, CalloutResponse};

use super::Target;

/// (module, name, parameters: `i` i32 / `I` i64); every one returns i32.
const IMPORTS: &[(&str, &str, &str)] = &[
    ("env", "proxy_log", "iii"),
    ("env", "proxy_get_log_level", "i"),
    ("env", "proxy_get_current_time_nanoseconds", "i"),
    ("env", "proxy_set_tick_period_milliseconds", "i"),
    ("env", "proxy_get_property", "iiii"),
    ("env", "proxy_set_property", "iiii"),
    ("env", "proxy_get_buffer_bytes", "iiiii"),
    ("env", "proxy_set_buffer_bytes", "iiiii"),
    ("env", "proxy_get_buffer_status", "iii"),
    ("env", "proxy_get_header_map_pairs", "iii"),
    ("env", "proxy_set_header_map_pairs", "iii"),
    ("env", "proxy_get_header_map_value", "iiiii"),
    ("env", "proxy_replace_header_map_value", "iiiii"),
    ("env", "proxy_remove_header_map_value", "iii"),
    ("env", "proxy_add_header_map_value", "iiiii"),
    ("env", "proxy_get_header_map_size", "ii"),
    ("env", "proxy_send_local_response", "iiiiiiii"),
    ("env", "proxy_continue_stream", "i"),
    ("env", "proxy_close_stream", "i"),
    ("env", "proxy_http_call", "iiiiiiiiii"),
    ("env", "proxy_get_shared_data", "iiiii"),
    ("env", "proxy_set_shared_data", "iiiii"),
    ("env", "proxy_register_shared_queue", "iii"),
    ("env", "proxy_resolve_shared_queue", "iiiii"),
    ("env", "proxy_enqueue_shared_queue", "iii"),
    ("env", "proxy_dequeue_shared_queue", "iii"),
    ("env", "proxy_define_metric", "iiii"),
    ("env", "proxy_increment_metric", "iI"),
    ("env", "proxy_record_metric", "iI"),
    ("env", "proxy_get_metric", "ii"),
    ("env", "proxy_set_effective_context", "i"),
    ("env", "proxy_done", ""),
    ("env", "proxy_call_foreign_function", "iiiiii"),
    ("env", "proxy_get_status", "iii"),
    ("env", "proxy_clear_route_cache", ""),
    ("env", "proxy_grpc_send", "iiii"),
    ("wasi_snapshot_preview1", "fd_write", "iiii"),
    ("wasi_snapshot_preview1", "random_get", "ii"),
    ("wasi_snapshot_preview1", "clock_time_get", "iIi"),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "ii"),
    ("wasi_snapshot_preview1", "environ_sizes_get", "ii"),
];

/// Where the module's data lives, so that pointers can aim at it.
const PAIRS_AT: i64 = 512;
const STRINGS_AT: i64 = 1024;
const STRINGS: &[&str] = &[
    "request\0path",
    ":path",
    "x-a",
    "auth",
    "gateway\0upstream",
    "q",
];

/// One argument from the input: small, boundary, data-aimed or raw.
fn arg(bytes: &mut impl Iterator<Item = u8>, pairs_len: usize) -> i64 {
    let sel = bytes.next().unwrap_or(0);
    match sel % 22 {
        0 => 0,
        1 => 1,
        2 => 4,
        3 => 16,
        4 => 64,
        5 => 256,
        6 => 1024,
        7 => 4096,
        8 => 65535,
        9 => 65536,
        10 => 131068,
        11 => 131072,
        12 => -1,
        13 => -4,
        14 => i64::from(i32::MAX),
        15 => i64::from(i32::MIN),
        16 => PAIRS_AT,
        17 => pairs_len as i64,
        18 => {
            let i = usize::from(bytes.next().unwrap_or(0)) % STRINGS.len();
            STRINGS_AT + 32 * i as i64
        }
        19 => {
            let i = usize::from(bytes.next().unwrap_or(0)) % STRINGS.len();
            STRINGS[i].len() as i64
        }
        _ => {
            let raw: Vec<u8> = bytes.take(4).collect();
            let mut b = [0u8; 4];
            b[..raw.len()].copy_from_slice(&raw);
            i64::from(i32::from_le_bytes(b))
        }
    }
}

fn calls(bytes: &mut impl Iterator<Item = u8>, pairs_len: usize, max: usize) -> String {
    let mut out = String::new();
    for _ in 0..max {
        let Some(op) = bytes.next() else { break };
        let (_, name, params) = IMPORTS[usize::from(op) % IMPORTS.len()];
        let _ = write!(out, "(drop (call ${name}");
        for p in params.chars() {
            let v = arg(bytes, pairs_len);
            if p == 'I' {
                let _ = write!(out, " (i64.const {v})");
            } else {
                let _ = write!(out, " (i32.const {})", v as i32);
            }
        }
        out.push_str("))\n");
    }
    out
}

fn escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// The module for `input`.
pub fn module(input: &[u8]) -> String {
    let pairs = gateway::filter::encode_pairs(
        [(&b":path"[..], &b"/x"[..]), (b"x-a", b"1"), (b"auth", b"")].into_iter(),
    );
    let mut bytes = input.iter().copied();
    let request = calls(&mut bytes, pairs.len(), 48);
    let response = calls(&mut bytes, pairs.len(), 24);
    let answer = calls(&mut bytes, pairs.len(), 16);
    let request_body = calls(&mut bytes, pairs.len(), 16);
    let response_body = calls(&mut bytes, pairs.len(), 16);
    // What the callbacks answer: mostly continue, rarely pause (a pause
    // nobody resumes waits out the filter's callout timeout) or 2.
    let mut action = || match bytes.next() {
        Some(0xab) => 1,
        Some(0xac) => 2,
        _ => 0,
    };
    let actions = [action(), action(), action(), action()];
    let mut m = String::from("(module\n");
    for (module, name, params) in IMPORTS {
        let params: Vec<&str> = params
            .chars()
            .map(|p| if p == 'I' { "i64" } else { "i32" })
            .collect();
        let _ = writeln!(
            m,
            "(import \"{module}\" \"{name}\" (func ${name} (param {}) (result i32)))",
            params.join(" ")
        );
    }
    m.push_str(
        r#"(memory (export "memory") 2)
(global $heap (mut i32) (i32.const 65536))
(func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
  (if (i32.gt_u (i32.add (global.get $heap) (local.get $n)) (i32.const 131072))
    (then (global.set $heap (i32.const 65536))))
  (local.set $p (global.get $heap))
  (global.set $heap (i32.add (global.get $heap) (local.get $n)))
  (local.get $p))
(func (export "proxy_abi_version_0_2_1"))
"#,
    );
    let _ = writeln!(m, "(data (i32.const {PAIRS_AT}) \"{}\")", escaped(&pairs));
    for (i, s) in STRINGS.iter().enumerate() {
        let _ = writeln!(
            m,
            "(data (i32.const {}) \"{}\")",
            STRINGS_AT + 32 * i as i64,
            escaped(s.as_bytes())
        );
    }
    let _ = writeln!(
        m,
        "(func (export \"proxy_on_request_headers\") (param i32 i32 i32) (result i32)\n{request}(i32.const {}))",
        actions[0]
    );
    let _ = writeln!(
        m,
        "(func (export \"proxy_on_response_headers\") (param i32 i32 i32) (result i32)\n{response}(i32.const {}))",
        actions[1]
    );
    let _ = writeln!(
        m,
        "(func (export \"proxy_on_request_body\") (param i32 i32 i32) (result i32)\n{request_body}(i32.const {}))",
        actions[2]
    );
    let _ = writeln!(
        m,
        "(func (export \"proxy_on_response_body\") (param i32 i32 i32) (result i32)\n{response_body}(i32.const {}))",
        actions[3]
    );
    let _ = writeln!(
        m,
        "(func (export \"proxy_on_http_call_response\") (param i32 i32 i32 i32 i32)\n(drop (call $proxy_continue_stream (i32.const 0)))\n{answer})"
    );
    m.push(')');
    m
}

/// Answers callouts to `auth` at once.
struct Callouts;

impl CalloutClient for Callouts {
    fn call(
        &self,
        cluster: &str,
        _request: http::Request<Bytes>,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let known = cluster == "auth";
        Box::pin(async move {
            if !known {
                return Err(CalloutError::Failed("unknown".into()));
            }
            Ok(CalloutResponse {
                status: http::StatusCode::OK,
                headers: http::HeaderMap::new(),
                body: Bytes::from_static(b"ok"),
                trailers: http::HeaderMap::new(),
            })
        })
    }
    fn has_cluster(&self, cluster: &str) -> bool {
        cluster == "auth"
    }
}

pub fn target() -> Target {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let host = rt.block_on(async {
        let cfg = FilterHostConfig {
            cache_dir: None,
            max_instances: 32,
            ..FilterHostConfig::default()
        };
        FilterHost::new(&cfg, Arc::new(Callouts)).expect("filter host")
    });
    let dir = std::env::temp_dir().join(format!("gateway-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("guest.wasm");
    let seeds = (0..IMPORTS.len() as u8)
        .map(|i| vec![i, 16, 17, 18, 1, 19, 1, 6, 12, 20, 0, 0, 1, 0])
        .collect();
    Target {
        name: "guest",
        seeds,
        max_len: 1024,
        run: Box::new(move |input| {
            // Written as text: wasmtime compiles it (the .wasm name is the folder's rule).
            std::fs::write(&path, module(input)).expect("write module");
            let host = host.clone();
            let path = path.clone();
            rt.block_on(async move {
                let run = async {
                    let mut config = FilterConfig::new("fuzz", &path);
                    // A pause nobody resumes ends after this + 1 s.
                    config.max_callout_timeout = Duration::from_millis(100);
                    let chain = FilterChain::load(&host, &[config]).await;
                    let Some(mut run) = chain.start(meta()) else {
                        return;
                    };
                    let req = http::Request::builder()
                        .uri("/x?y=1")
                        .header("host", "example.com")
                        .header("x-a", "1")
                        .body(gateway::http::body::full("body"))
                        .expect("request");
                    if run.on_request(req).await.is_ok() {
                        let resp = http::Response::builder()
                            .status(200)
                            .header("x-up", "1")
                            .body(gateway::http::body::full("answer"))
                            .expect("response");
                        let _ = run.on_response(resp).await;
                    }
                    run.finish();
                };
                // Every guest call has a deadline; a pause has the callout
                // timeout. Beyond this the host hung.
                if tokio::time::timeout(Duration::from_secs(40), run)
                    .await
                    .is_err()
                {
                    panic!("the chain did not finish within 40 s");
                }
            });
        }),
    }
}

fn meta() -> RequestMeta {
    RequestMeta {
        id: http::HeaderValue::from_static("fuzz-1"),
        source: "10.0.0.1:40000".parse().expect("addr"),
        destination: "10.0.0.2:8080".parse().expect("addr"),
        scheme: "http",
        tls_version: None,
        mtls: false,
        peer_subject: None,
        sni: None,
    }
}
