//! A cluster: its endpoints, the balancer that picks among them and a pool
//! of keep-alive connections per endpoint.

use crate::hash::FastMap;
use futures_util::future::Either;
use std::sync::Arc;
use std::time::Duration;

use super::added::AddedFields;
use super::balancer::Balancer;
use super::breaker::CircuitBreaker;
use super::budget::RetryBudget;
use super::endpoint::{Endpoint, EndpointStatus, InFlight, Outlier};
use super::http1::{self, Http1Conn, Http1Error};
use super::pool::{self, EndpointPool, Sender};
use super::retry::RetryPolicy;
use super::tls::UpstreamTls;
use super::UpstreamError;
use crate::config::ClusterConfig;
use crate::http::body::Body;

/// One upstream cluster.
pub struct Cluster {
    pub config: ClusterConfig,
    name: Arc<str>,
    endpoints: Vec<Endpoint>,
    pools: Vec<EndpointPool>,
    balancer: Balancer,
    /// TLS to the endpoints, from `[cluster.tls]`.
    tls: Option<UpstreamTls>,
    /// `protocol = "redis"`: the connections filters' callouts use.
    redis: Option<Arc<super::RedisCluster>>,
    /// The default retry policy, the retry budget and the overload limits.
    pub retry: Arc<RetryPolicy>,
    pub budget: RetryBudget,
    pub breaker: CircuitBreaker,
}

/// All clusters of a configuration, by name.
#[derive(Default)]
pub struct ClusterSet {
    clusters: FastMap<String, Arc<Cluster>>,
}

/// A connection checked out of a cluster, bound to one endpoint.
pub struct Connection {
    cluster: Arc<Cluster>,
    index: usize,
    sender: Sender,
    in_flight: InFlight,
}

/// An endpoint chosen for one L4 connection; see [`Cluster::lease_endpoint`].
pub struct EndpointLease {
    pub index: usize,
    pub address: Arc<str>,
    _in_flight: InFlight,
}

impl Cluster {
    pub fn new(config: ClusterConfig) -> Self {
        let outlier = Outlier {
            connect_failures: config.eject_after_failures,
            resets: config.eject_after_resets,
            status_5xx: config.eject_after_5xx,
            ejection: config.ejection_time,
        };
        let endpoints: Vec<Endpoint> = config
            .endpoints
            .iter()
            .map(|e| Endpoint::new(Arc::from(e.address()), e.weight(), outlier))
            .collect();
        let pools = config
            .endpoints
            .iter()
            .map(|_| {
                EndpointPool::new(
                    config.max_idle_per_endpoint,
                    config.idle_timeout,
                    config.h2_max_concurrent_streams,
                    config.protocol(),
                )
            })
            .collect();
        // The CA file was checked by config validation; if it has gone bad
        // since, connects fail with this reason rather than the start.
        let protocol = config.protocol();
        let tls = config
            .tls
            .as_ref()
            .and_then(|t| match UpstreamTls::new(t, protocol) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    tracing::error!(cluster = %config.name, error = %e, "upstream TLS is unusable");
                    None
                }
            });
        let redis = (protocol == crate::config::UpstreamProtocol::Redis)
            .then(|| Arc::new(super::RedisCluster::new(&config)));
        let breaker = CircuitBreaker::new(&config.name, &config.circuit_breaker);
        Self {
            tls,
            redis,
            retry: Arc::new(RetryPolicy::new(&config.retry)),
            budget: RetryBudget::new(&config.retry_budget, breaker.traffic.clone()),
            breaker,
            name: Arc::from(config.name.as_str()),
            balancer: Balancer::for_endpoints(
                config.balance,
                &endpoints,
                config.healthy_panic_threshold,
            ),
            endpoints,
            pools,
            config,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The Redis connections, when the cluster speaks Redis.
    pub fn redis(&self) -> Option<&Arc<super::RedisCluster>> {
        self.redis.as_ref()
    }

    /// The name, shared (for logs and metrics labels).
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// A new connection to endpoint `index`, never a pooled one: the replay
    /// of a request a stale pooled connection failed.
    pub async fn connect_fresh(
        self: &Arc<Self>,
        index: usize,
    ) -> Result<Connection, UpstreamError> {
        let in_flight = self.endpoints[index].start_request();
        Box::pin(self.open(index, in_flight)).await
    }

    /// The endpoint for a request's next try, avoiding those its earlier
    /// tries used (`tried`) while another is available; see
    /// [`super::retry::next_endpoint`].
    /// `key` is the hash of the request's key, for `ring_hash` (see
    /// [`super::request_key`]).
    pub fn choose(&self, tried: &[usize], key: Option<u64>) -> Result<usize, UpstreamError> {
        super::retry::next_endpoint(&self.balancer, &self.endpoints, tried, key)
            .ok_or_else(|| self.no_healthy_endpoint())
    }

    fn pick(&self, exclude: Option<usize>, key: Option<u64>) -> Result<usize, UpstreamError> {
        self.balancer
            .pick(&self.endpoints, exclude, key)
            .ok_or_else(|| self.no_healthy_endpoint())
    }

    fn no_healthy_endpoint(&self) -> UpstreamError {
        UpstreamError::NoHealthyEndpoint {
            cluster: self.name().to_string(),
        }
    }

    /// A connection to endpoint `index`: pooled if one is idle, new
    /// otherwise. One try; retries are the caller's policy.
    pub async fn connect_to(self: &Arc<Self>, index: usize) -> Result<Connection, UpstreamError> {
        let endpoint = &self.endpoints[index];
        let in_flight = endpoint.start_request();
        // HTTP/2: requests arriving while a connection opens share it.
        let (pooled, _connecting) = self.pools[index].checkout_or_connect().await;
        if let Some(sender) = pooled {
            return Ok(self.connection(index, sender, in_flight));
        }
        // Boxed: connecting (TCP, TLS, the HTTP/2 handshake) is the rare
        // path, and its state would otherwise enlarge, and be copied with,
        // every request's future.
        Box::pin(self.open(index, in_flight)).await
    }

    /// Opens a new connection to endpoint `index`, within the circuit
    /// breaker's pending and connection limits.
    async fn open(
        self: &Arc<Self>,
        index: usize,
        in_flight: InFlight,
    ) -> Result<Connection, UpstreamError> {
        let endpoint = &self.endpoints[index];
        let _pending = self.breaker.pending()?;
        let permit = self.breaker.connection()?;
        // `[cluster.tls]` is set but could not be built (see `new`).
        if self.config.tls.is_some() && self.tls.is_none() {
            return Err(self.connect_error(
                index,
                std::io::Error::other("upstream TLS configuration is unusable"),
            ));
        }
        match pool::connect(
            &endpoint.address,
            self.config.connect_timeout,
            self.tls.as_ref(),
            self.config.protocol(),
        )
        .await
        {
            Ok(sender) => {
                endpoint.record_success();
                // The connection holds its circuit-breaker permit for as
                // long as it lives (in the pool or in use).
                let sender = self.pools[index].share(sender, permit);
                Ok(self.connection(index, sender, in_flight))
            }
            Err(source) => {
                self.connect_failed(index);
                Err(self.connect_error(index, source))
            }
        }
    }

    /// The error of a failed connect to endpoint `index`.
    fn connect_error(&self, index: usize, source: std::io::Error) -> UpstreamError {
        UpstreamError::Connect {
            cluster: self.name().to_string(),
            endpoint: self.endpoints[index].address.to_string(),
            source,
        }
    }

    /// Sends an upgrade request (WebSocket and the like) on a connection of
    /// its own, through hyper's client, which hands over the upgraded
    /// stream. Returns the endpoint used and the response.
    pub async fn upgrade(
        self: &Arc<Self>,
        request: http::Request<Body>,
        key: Option<u64>,
    ) -> Result<(Arc<str>, http::Response<hyper::body::Incoming>), UpstreamError> {
        let index = self.pick(None, key)?;
        let endpoint = &self.endpoints[index];
        let _in_flight = endpoint.start_request();
        let mut tx = match pool::connect_upgrade(
            &endpoint.address,
            self.config.connect_timeout,
            self.tls.as_ref(),
        )
        .await
        {
            Ok(tx) => tx,
            Err(source) => {
                self.connect_failed(index);
                return Err(self.connect_error(index, source));
            }
        };
        endpoint.record_success();
        let response =
            tx.send_request(request)
                .await
                .map_err(|source| UpstreamError::Protocol {
                    cluster: self.name().to_string(),
                    endpoint: endpoint.address.to_string(),
                    source,
                })?;
        Ok((endpoint.address.clone(), response))
    }

    fn connection(
        self: &Arc<Self>,
        index: usize,
        sender: Sender,
        in_flight: InFlight,
    ) -> Connection {
        Connection {
            cluster: self.clone(),
            index,
            sender,
            in_flight,
        }
    }

    /// Passive health: counts a failed connect to endpoint `index` and says
    /// so when that ejects it.
    fn connect_failed(&self, index: usize) {
        let endpoint = &self.endpoints[index];
        if endpoint.record_connect_failure() {
            tracing::warn!(cluster = self.name(), endpoint = %endpoint.address,
                ejection = ?self.config.ejection_time, "endpoint ejected after consecutive connect failures");
        }
    }

    /// L4: an endpoint for a new downstream connection, skipping those
    /// already `tried`. The lease counts as a request in flight (for least
    /// request balancing) for as long as it is held.
    pub fn lease_endpoint(&self, tried: &[usize]) -> Option<EndpointLease> {
        let panic = self.balancer.in_panic(&self.endpoints);
        let usable = |i: &usize| !tried.contains(i) && (panic || self.endpoints[*i].is_available());
        let index = self
            .balancer
            .pick_connection(&self.endpoints, tried.last().copied())
            .filter(usable)
            .or_else(|| (0..self.endpoints.len()).find(usable))?;
        Some(EndpointLease {
            index,
            address: self.endpoints[index].address.clone(),
            _in_flight: self.endpoints[index].start_request(),
        })
    }

    /// L4: how connecting to a leased endpoint went (passive health).
    pub fn record_connect(&self, lease: &EndpointLease, ok: bool) {
        if ok {
            self.endpoints[lease.index].record_success();
        } else {
            self.connect_failed(lease.index);
        }
    }

    /// Each endpoint's passive health, for the admin (read-only).
    pub fn endpoint_health(&self) -> Vec<super::endpoint::EndpointHealth> {
        self.endpoints.iter().map(Endpoint::health).collect()
    }

    /// Each endpoint's health, why and since when, and its counters.
    pub fn endpoint_status(&self) -> Vec<EndpointStatus> {
        self.endpoints.iter().map(Endpoint::status).collect()
    }

    /// Whether too few endpoints are healthy for health to count.
    pub fn in_panic(&self) -> bool {
        self.balancer.in_panic(&self.endpoints)
    }

    pub(super) fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub(super) fn upstream_tls(&self) -> Option<&UpstreamTls> {
        self.tls.as_ref()
    }

    /// Passive health: endpoint `index` answered with `status` (`Some`) or
    /// lost the exchange before the response head (`None`, a reset).
    fn record_outcome(&self, index: usize, status: Option<http::StatusCode>) {
        let endpoint = &self.endpoints[index];
        let ejected = match status {
            Some(status) => endpoint.record_status(status),
            None => endpoint.record_reset(),
        };
        if ejected {
            tracing::warn!(cluster = self.name(), endpoint = %endpoint.address,
                ejection = ?self.config.ejection_time, "endpoint ejected after consecutive resets or 5xx");
        }
    }

    /// Closes pooled connections that sat idle too long.
    pub fn reap_idle(&self) {
        for pool in &self.pools {
            pool.reap();
        }
    }
}

impl Connection {
    pub fn endpoint(&self) -> &Arc<str> {
        &self.cluster.endpoints[self.index].address
    }

    /// The endpoint's index in its cluster.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Sends `request` and waits for the response head. Once the exchange
    /// is over (body read to the end), the connection returns to the
    /// worker's pool.
    ///
    /// Not an `async fn`: the head is written (HTTP/1.1) or copied
    /// (HTTP/2) before the future is made, so the future borrows nothing
    /// and holds the connection once (see `Exchange::serve`).
    pub fn send(
        self,
        head: &http::request::Parts,
        added: &AddedFields,
        body: Body,
    ) -> impl std::future::Future<Output = Result<http::Response<Body>, UpstreamError>> + Send + use<>
    {
        let Connection {
            cluster,
            index,
            sender,
            in_flight,
        } = self;
        match sender {
            Sender::Http1(conn) => {
                let back = PoolReturn {
                    cluster,
                    index,
                    _in_flight: in_flight,
                };
                Either::Left(back.exchange(conn, head, added, body))
            }
            Sender::Http2(stream) => {
                let idle = cluster.config.response_idle_timeout;
                let mut request = request_of(head, body);
                added.insert_into(request.headers_mut());
                // Boxed, so the HTTP/1.1 path's future stays small.
                Either::Right(Box::pin(async move {
                    let result = stream.send(request, idle).await;
                    // The connection stays in the pool, shared; the request
                    // counts as in flight until its response head is in.
                    drop(in_flight);
                    let result = result.map_err(|source| UpstreamError::Protocol {
                        cluster: cluster.name().to_string(),
                        endpoint: cluster.endpoints[index].address.to_string(),
                        source,
                    });
                    cluster.record_outcome(index, result.as_ref().ok().map(|r| r.status()));
                    result
                }))
            }
        }
    }
}

/// A request of a copy of `head` (method, target, version, headers) with
/// `body`.
pub(crate) fn request_of<B>(head: &http::request::Parts, body: B) -> http::Request<B> {
    let mut req = http::Request::new(body);
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = head.uri.clone();
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers.clone();
    req
}

/// An HTTP/1.1 exchange's way back to the pool it came from; it counts the
/// request in flight on the endpoint until the body has been read.
struct PoolReturn {
    cluster: Arc<Cluster>,
    index: usize,
    _in_flight: InFlight,
}

impl http1::Checkin for PoolReturn {
    fn checkin(self, conn: Http1Conn) {
        self.cluster.pools[self.index].checkin(Sender::Http1(conn));
    }
}

impl PoolReturn {
    /// The head is written into the connection's buffer here; the future
    /// sends it and reads the answer's head.
    fn exchange(
        self,
        mut conn: Http1Conn,
        head: &http::request::Parts,
        added: &AddedFields,
        body: Body,
    ) -> impl std::future::Future<Output = Result<http::Response<Body>, UpstreamError>> + Send + use<>
    {
        let head_request = head.method == http::Method::HEAD;
        let framing = conn.encode(head, added, &body);
        async move {
            let sent = async {
                conn.send(framing, body).await?;
                conn.read_head(head_request).await
            }
            .await;
            let head = match sent {
                Ok(head) => head,
                // A pooled connection the upstream closed while it was idle
                // (nothing was answered) is marked stale: the retry loop sends
                // the request again on a new connection if it still holds it.
                Err(e) => {
                    let stale = e.is_stale(conn.reused());
                    return Err(self.failed(e, stale));
                }
            };
            self.cluster.record_outcome(self.index, Some(head.status));
            let mut response = http::Response::new(crate::http::body::empty());
            *response.status_mut() = head.status;
            *response.version_mut() = http::Version::HTTP_11;
            let idle = self.cluster.config.response_idle_timeout;
            let body = http1::response_body(conn, &head, self, idle);
            *response.headers_mut() = head.headers;
            *response.body_mut() = body;
            Ok(response)
        }
    }

    fn failed(&self, source: Http1Error, stale: bool) -> UpstreamError {
        if !stale {
            // A stale pooled connection never reached the upstream.
            self.cluster.record_outcome(self.index, None);
        }
        UpstreamError::Http1 {
            cluster: self.cluster.name().to_string(),
            endpoint: self.cluster.endpoints[self.index].address.to_string(),
            source,
            stale,
        }
    }
}

impl ClusterSet {
    /// Builds the clusters of `configs`, keeping those of `previous` whose
    /// config did not change (and so their warm connection pools).
    pub fn new(configs: &[ClusterConfig], previous: Option<&ClusterSet>) -> Self {
        let clusters = configs
            .iter()
            .map(|c| {
                let kept = previous
                    .and_then(|p| p.clusters.get(&c.name))
                    .filter(|old| same_config(&old.config, c))
                    .cloned();
                let cluster = kept.unwrap_or_else(|| {
                    let new = Arc::new(Cluster::new(c.clone()));
                    super::health::start(&new);
                    new
                });
                (c.name.clone(), cluster)
            })
            .collect();
        Self { clusters }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.clusters.values()
    }

    /// Smallest idle timeout, to pace the reaper.
    pub fn reap_interval(&self) -> Duration {
        self.clusters
            .values()
            .map(|c| c.config.idle_timeout / 2)
            .min()
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(100))
    }
}

/// Whether a cluster can be kept across a reload (with its warm pools).
fn same_config(a: &ClusterConfig, b: &ClusterConfig) -> bool {
    a == b
}
