//! The snapshot every request reads: routes, filter chains and clusters of
//! one configuration, swapped whole on reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{Config, Protocol};
use crate::filter::FilterChain;
use crate::http::route::{Route, RouteTable};
use crate::upstream::ClusterSet;

/// What one HTTP listener does with requests.
pub struct ListenerRuntime {
    pub routes: RouteTable,
    pub filters: FilterChain,
}

/// One configuration, ready to serve.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub clusters: ClusterSet,
    listeners: HashMap<String, Arc<ListenerRuntime>>,
    pub access_log: bool,
    pub ids: &'static RequestIds,
}

impl Snapshot {
    /// Builds the runtime objects of `config`; filter chains are loaded
    /// through `load_chain` (compiled off the request path).
    pub async fn build<F, Fut>(config: Arc<Config>, mut load_chain: F) -> Snapshot
    where
        F: FnMut(Vec<crate::config::FilterConfig>) -> Fut,
        Fut: std::future::Future<Output = FilterChain>,
    {
        let mut listeners = HashMap::new();
        for listener in &config.listeners {
            if listener.protocol == Protocol::Tcp {
                continue;
            }
            let filters = if listener.filters.is_empty() {
                FilterChain::empty()
            } else {
                load_chain(listener.filters.clone()).await
            };
            let mut routes = Vec::new();
            for route in &listener.routes {
                let chain = if route.filters.is_empty() {
                    FilterChain::empty()
                } else {
                    load_chain(route.filters.clone()).await
                };
                routes.push(Route::from_config(route, chain));
            }
            listeners.insert(
                listener.name.clone(),
                Arc::new(ListenerRuntime {
                    routes: RouteTable::new(routes),
                    filters,
                }),
            );
        }
        Snapshot {
            clusters: ClusterSet::new(&config.clusters),
            listeners,
            access_log: config.access_log.enabled,
            ids: RequestIds::global(),
            config,
        }
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRuntime>> {
        self.listeners.get(name)
    }

    pub fn listeners(&self) -> impl Iterator<Item = (&String, &Arc<ListenerRuntime>)> {
        self.listeners.iter()
    }
}

/// Request ids unique in the process and unlikely to repeat across
/// restarts: a random prefix chosen at start and a counter.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn global() -> &'static RequestIds {
        static IDS: std::sync::OnceLock<RequestIds> = std::sync::OnceLock::new();
        IDS.get_or_init(|| RequestIds {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        })
    }

    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}-{n:x}", self.prefix)
    }
}
