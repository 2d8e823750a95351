//! A `protocol = "redis"` cluster: a few multiplexed (pipelined)
//! connections per endpoint, driven on a thread of their own, answering
//! filters' callouts by the JSON convention of docs/abi.md.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::callout::CalloutResponse;
use super::redis_reply;
use crate::config::{ClusterConfig, RedisConfig};
use crate::metrics::redis::RedisCounters;

/// The Redis connections of one cluster.
pub struct RedisCluster {
    name: Arc<str>,
    config: ClusterConfig,
    redis: RedisConfig,
    /// Per endpoint, `redis.connections` managers; made on the Redis thread
    /// on first use (a manager binds to the runtime it is made on).
    connections: OnceLock<Vec<Vec<ConnectionManager>>>,
    next: AtomicUsize,
    /// Commands waiting for an answer, bounded.
    in_flight: Arc<Semaphore>,
    health: Health,
}

/// Reachability as callers saw it, with figures for the admin.
struct Health {
    /// 0 unknown (nothing sent yet), 1 up, 2 down.
    state: AtomicU8,
    /// Exponentially weighted mean latency, in microseconds.
    latency_us: AtomicU64,
    last_error: Mutex<Option<String>>,
    counters: RedisCounters,
}

/// What the admin shows of a Redis cluster.
#[derive(Debug, Serialize)]
pub struct RedisStatus {
    /// `unknown` (no command yet), `up` or `down`.
    pub state: &'static str,
    pub commands_ok: u64,
    /// Commands Redis answered with an error.
    pub commands_error: u64,
    pub commands_unavailable: u64,
    pub commands_timeout: u64,
    /// Recent mean time to an answer.
    pub latency_ms: f64,
    pub last_error: Option<String>,
}

/// How one command ended, before it becomes a callout answer.
enum Outcome {
    Reply(redis::Value),
    RedisError(String),
    Unavailable(String),
    Timeout,
}

/// The thread every Redis connection lives on: the workers only await
/// answers, they never drive Redis I/O.
fn redis_runtime() -> Option<&'static tokio::runtime::Handle> {
    static HANDLE: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| tracing::error!(error = %e, "cannot start the Redis runtime"))
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("redis".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map_err(|e| tracing::error!(error = %e, "cannot start the Redis thread"))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

impl RedisCluster {
    pub fn new(config: &ClusterConfig) -> Self {
        let redis = config.redis.clone().unwrap_or_default();
        let permits = redis.max_in_flight.saturating_mul(redis.connections);
        RedisCluster {
            name: Arc::from(config.name.as_str()),
            config: config.clone(),
            in_flight: Arc::new(Semaphore::new(permits.clamp(1, Semaphore::MAX_PERMITS))),
            redis,
            connections: OnceLock::new(),
            next: AtomicUsize::new(0),
            health: Health {
                state: AtomicU8::new(0),
                latency_us: AtomicU64::new(0),
                last_error: Mutex::new(None),
                counters: crate::metrics::redis::counters(&config.name),
            },
        }
    }

    /// Answers a callout: runs the command in `body` within `timeout` (and
    /// the cluster's `request_timeout`) and says how it went in the status.
    pub async fn callout(self: &Arc<Self>, body: Bytes, timeout: Duration) -> CalloutResponse {
        let cmd = match redis_reply::parse_command(&body) {
            Ok(cmd) => cmd,
            Err(why) => return answer(400, &serde_json::json!({ "error": why })),
        };
        let timeout = timeout.min(self.config.request_timeout);
        let started = Instant::now();
        let outcome = match redis_runtime() {
            None => Outcome::Unavailable("no Redis runtime".into()),
            Some(rt) => {
                let this = self.clone();
                match tokio::time::timeout(timeout, rt.spawn(async move { this.run(cmd).await }))
                    .await
                {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(join)) => Outcome::Unavailable(format!("command task failed: {join}")),
                    Err(_) => Outcome::Timeout,
                }
            }
        };
        self.record(&outcome, started.elapsed());
        match outcome {
            Outcome::Reply(value) => answer(200, &redis_reply::to_json(&value)),
            Outcome::RedisError(e) => answer(422, &serde_json::json!({ "error": e })),
            Outcome::Unavailable(e) => answer(503, &serde_json::json!({ "error": e })),
            Outcome::Timeout => answer(504, &serde_json::json!({ "error": "timed out" })),
        }
    }

    /// Sends `cmd` on the Redis thread: on the next connection in turn of
    /// the first endpoint, then of the next endpoints while one is
    /// unreachable.
    async fn run(&self, cmd: redis::Cmd) -> Outcome {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return Outcome::Unavailable("too many commands in flight".into());
        };
        let connections = match self.connections() {
            Ok(c) => c,
            Err(e) => return Outcome::Unavailable(e),
        };
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = Outcome::Unavailable("no endpoint".into());
        for endpoint in connections {
            let mut conn = endpoint[turn % endpoint.len()].clone();
            match conn.send_packed_command(&cmd).await {
                Ok(redis::Value::ServerError(e)) => return Outcome::RedisError(e.to_string()),
                Ok(value) => return Outcome::Reply(value),
                // Redis answered this command with an error.
                Err(e)
                    if matches!(
                        e.kind(),
                        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                    ) =>
                {
                    return Outcome::RedisError(e.to_string());
                }
                // No answer: connect, TLS, AUTH, I/O, timeout.
                Err(e) => last = Outcome::Unavailable(e.to_string()),
            }
        }
        last
    }

    fn connections(&self) -> Result<&Vec<Vec<ConnectionManager>>, String> {
        if let Some(c) = self.connections.get() {
            return Ok(c);
        }
        let mut all = Vec::new();
        for endpoint in self.config.endpoints.iter().map(|e| e.address()) {
            let client = self.client(endpoint)?;
            let mut own = Vec::new();
            for _ in 0..self.redis.connections.max(1) {
                let manager =
                    ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config())
                        .map_err(|e| format!("endpoint {endpoint}: {e}"))?;
                own.push(manager);
            }
            all.push(own);
        }
        Ok(self.connections.get_or_init(|| all))
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.request_timeout))
            // Reconnects back off from 50 ms to 1 s; a command during an
            // outage fails fast instead of waiting through every retry.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_concurrency_limit(self.redis.max_in_flight.max(1))
    }

    fn client(&self, endpoint: &str) -> Result<redis::Client, String> {
        let (host, port) = endpoint
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
            .ok_or_else(|| format!("endpoint `{endpoint}` is not host:port"))?;
        let mut settings =
            redis::RedisConnectionInfo::default().set_db(i64::from(self.redis.database));
        if let Some(user) = &self.redis.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.redis.password {
            settings = settings.set_password(password);
        }
        let error = |e: redis::RedisError| format!("endpoint {endpoint}: {e}");
        match &self.config.tls {
            None => {
                let info = redis::IntoConnectionInfo::into_connection_info(
                    redis::ConnectionAddr::Tcp(host, port),
                )
                .map_err(error)?
                .set_redis_settings(settings);
                redis::Client::open(info).map_err(error)
            }
            Some(tls) => {
                let host = tls.sni.clone().unwrap_or(host);
                let addr = redis::ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                };
                let info = redis::IntoConnectionInfo::into_connection_info(addr)
                    .map_err(error)?
                    .set_redis_settings(settings);
                let root_cert = match &tls.ca {
                    Some(ca) => {
                        Some(std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?)
                    }
                    None => None,
                };
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert,
                };
                redis::Client::build_with_tls(info, certs).map_err(error)
            }
        }
    }

    /// Counts a command, and logs once when reachability changes.
    fn record(&self, outcome: &Outcome, took: Duration) {
        let c = &self.health.counters;
        let reachable = match outcome {
            Outcome::Reply(_) => {
                c.ok.inc();
                true
            }
            Outcome::RedisError(_) => {
                c.error.inc();
                true
            }
            Outcome::Unavailable(_) => {
                c.unavailable.inc();
                false
            }
            Outcome::Timeout => {
                c.timeout.inc();
                false
            }
        };
        if reachable {
            c.latency.observe(took.as_secs_f64());
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            let old = self.health.latency_us.load(Ordering::Relaxed);
            let mean = if old == 0 { us } else { (old * 7 + us) / 8 };
            self.health.latency_us.store(mean, Ordering::Relaxed);
        }
        let why = match outcome {
            Outcome::RedisError(e) | Outcome::Unavailable(e) => Some(e.clone()),
            Outcome::Timeout => Some("timed out".to_string()),
            Outcome::Reply(_) => None,
        };
        if let Some(why) = &why {
            *self
                .health
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        }
        let new = if reachable { 1 } else { 2 };
        let old = self.health.state.swap(new, Ordering::Relaxed);
        if old != new {
            c.up.set(i64::from(reachable));
            if old != 0 {
                c.state_changes.inc();
            }
            if reachable {
                tracing::info!(cluster = %self.name, "redis reachable");
            } else {
                tracing::warn!(cluster = %self.name, error = why.as_deref().unwrap_or(""), "redis unreachable");
            }
        }
    }

    /// State and figures, for the admin.
    pub fn status(&self) -> RedisStatus {
        let c = &self.health.counters;
        RedisStatus {
            state: match self.health.state.load(Ordering::Relaxed) {
                1 => "up",
                2 => "down",
                _ => "unknown",
            },
            commands_ok: c.ok.get(),
            commands_error: c.error.get(),
            commands_unavailable: c.unavailable.get(),
            commands_timeout: c.timeout.get(),
            latency_ms: self.health.latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
            last_error: self
                .health
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A callout answer with a JSON body.
fn answer(status: u16, body: &serde_json::Value) -> CalloutResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    CalloutResponse {
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY),
        headers,
        body: Bytes::from(body.to_string()),
        trailers: http::HeaderMap::new(),
    }
}
