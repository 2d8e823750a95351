//! The snapshot every request reads: routes, filter chains and clusters of
//! one configuration, swapped whole on reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use crate::config::{Config, FilterConfig, Protocol};
use crate::filter::{FilterChain, FilterFolder, FilterHost, LoadedSet};
use crate::http::route::{Route, RouteTable};
use crate::upstream::ClusterSet;
use crate::worker::PerWorker;

/// What one HTTP listener does with requests.
pub struct ListenerRuntime {
    pub routes: RouteTable,
    /// Filters named in the config, run first.
    pub filters: FilterChain,
    /// Filters from `filters_dir`, run next; the chain changes as the
    /// folder does.
    pub folder: Option<Arc<FilterFolder>>,
}

/// Loads filter chains and folders for snapshots; folders outlive a
/// reload when the new config still names them.
#[derive(Default)]
pub struct ChainLoader {
    pub host: Option<Arc<FilterHost>>,
    folders: Mutex<HashMap<PathBuf, Weak<FilterFolder>>>,
    /// Chain filters of the snapshot in force, reused when unchanged.
    loaded: LoadedSet,
}

impl ChainLoader {
    pub fn new(host: Arc<FilterHost>) -> Self {
        Self {
            host: Some(host),
            folders: Mutex::default(),
            loaded: LoadedSet::default(),
        }
    }

    async fn chain(&self, filters: &[FilterConfig]) -> FilterChain {
        match &self.host {
            Some(host) if !filters.is_empty() => {
                FilterChain::load_reusing(host, filters, &self.loaded).await
            }
            _ => FilterChain::empty(),
        }
    }

    async fn folder(&self, dir: &Path, poll: Duration) -> Option<Arc<FilterFolder>> {
        let host = self.host.as_ref()?;
        let existing = self
            .folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dir)
            .and_then(Weak::upgrade);
        if let Some(folder) = existing {
            return Some(folder);
        }
        let folder = FilterFolder::open(host, dir.to_path_buf(), poll).await;
        self.folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_path_buf(), Arc::downgrade(&folder));
        Some(folder)
    }
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
    pub async fn build(
        config: Arc<Config>,
        previous: Option<&Snapshot>,
        loader: &ChainLoader,
    ) -> Snapshot {
        if let Some(host) = &loader.host {
            // Filters check the cluster names they route to at configure time.
            host.set_clusters(config.clusters.iter().map(|c| c.name.as_str()));
        }
        let mut listeners = HashMap::new();
        for listener in &config.listeners {
            if listener.protocol == Protocol::Tcp {
                continue;
            }
            let filters = loader.chain(&listener.filters).await;
            let folder = match &listener.filters_dir {
                Some(dir) => loader.folder(dir, listener.filters_poll).await,
                None => None,
            };
            // Route chains load together (the filter loader bounds how
            // many compile at once), not one route after the other.
            let with_filters = listener.routes.iter().filter(|r| !r.filters.is_empty());
            let mut chains =
                futures_util::future::join_all(with_filters.map(|r| loader.chain(&r.filters)))
                    .await
                    .into_iter();
            let routes = listener
                .routes
                .iter()
                .map(|route| {
                    let chain = if route.filters.is_empty() {
                        FilterChain::empty()
                    } else {
                        chains.next().unwrap_or_else(FilterChain::empty)
                    };
                    Route::from_config(route, chain)
                })
                .collect();
            listeners.insert(
                listener.name.clone(),
                Arc::new(ListenerRuntime {
                    routes: RouteTable::new(routes),
                    filters,
                    folder,
                }),
            );
        }
        Snapshot {
            clusters: ClusterSet::new(&config.clusters, previous.map(|p| &p.clusters)),
            listeners,
            access_log: config.access_log.enabled,
            ids: RequestIds::global(),
            config,
        }
    }

    /// Every chain's filters and their status, for the admin endpoint.
    pub async fn filter_status(&self) -> serde_json::Value {
        let mut chains = Vec::new();
        let mut names: Vec<&String> = self.listeners.keys().collect();
        names.sort();
        for name in names {
            let listener = &self.listeners[name];
            if !listener.filters.is_empty() {
                chains.push(serde_json::json!({
                    "listener": name,
                    "route": null,
                    "filters": listener.filters.status(),
                }));
            }
            if let Some(folder) = &listener.folder {
                chains.push(serde_json::json!({
                    "listener": name,
                    "route": null,
                    "folder": folder.status().await,
                }));
            }
            for route in listener.routes.iter() {
                if !route.filters.is_empty() {
                    chains.push(serde_json::json!({
                        "listener": name,
                        "route": &*route.name,
                        "filters": route.filters.status(),
                    }));
                }
            }
        }
        serde_json::json!({ "chains": chains })
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerRuntime>> {
        self.listeners.get(name)
    }

    pub fn listeners(&self) -> impl Iterator<Item = (&String, &Arc<ListenerRuntime>)> {
        self.listeners.iter()
    }
}

/// Request ids unique in the process and unlikely to repeat across
/// restarts: a random prefix chosen at start, offset by the worker's slot,
/// and a counter of that worker (no cache line shared between workers).
pub struct RequestIds {
    slots: PerWorker<IdSlot>,
}

/// One worker's ids: its prefix, written out once, and its counter.
struct IdSlot {
    /// `{prefix:016x}-`.
    prefix: [u8; 17],
    next: AtomicU64,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl RequestIds {
    pub fn global() -> &'static RequestIds {
        static IDS: std::sync::OnceLock<RequestIds> = std::sync::OnceLock::new();
        IDS.get_or_init(|| RequestIds::new(rand::random(), 1))
    }

    /// Ids after `prefix`, offset by the slot, counting from `first`.
    fn new(prefix: u64, first: u64) -> RequestIds {
        RequestIds {
            slots: PerWorker::new(|slot| {
                let slot_prefix = prefix.wrapping_add(slot as u64);
                let mut text = [b'-'; 17];
                for (i, b) in text[..16].iter_mut().enumerate() {
                    *b = HEX[((slot_prefix >> (60 - 4 * i)) & 0xf) as usize];
                }
                IdSlot {
                    prefix: text,
                    next: AtomicU64::new(first),
                }
            }),
        }
    }

    /// The next id, `{prefix:016x}-{n:x}`, as the header value it travels in.
    pub fn next(&self) -> http::HeaderValue {
        // Threads beyond the slots made share the last slot's counter,
        // atomically, and so its prefix too.
        let slot = self.slots.get();
        let n = slot.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 33];
        buf[..17].copy_from_slice(&slot.prefix);
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        for i in 0..digits {
            buf[17 + i] = HEX[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
        let id = id_bytes(&buf[..17 + digits]);
        debug_assert!(http::HeaderValue::from_maybe_shared(id.clone()).is_ok());
        // SAFETY: the id is hex digits and one '-', all visible ASCII:
        // a valid header value, which is all the unchecked form skips.
        unsafe { http::HeaderValue::from_maybe_shared_unchecked(id) }
    }
}

/// Ids are cut from one block per thread, a hundred or so at a time: an
/// id is then shared (its copies in the request, the access record and
/// the filters' view cost a count each) and costs no allocation of its
/// own. A block is freed when the last id cut from it is.
fn id_bytes(id: &[u8]) -> bytes::Bytes {
    const BLOCK: usize = 4096;
    thread_local! {
        static BLOCK_LEFT: std::cell::RefCell<bytes::BytesMut> =
            std::cell::RefCell::new(bytes::BytesMut::new());
    }
    BLOCK_LEFT.with(|block| {
        let mut block = block.borrow_mut();
        if block.capacity() < id.len() {
            *block = bytes::BytesMut::with_capacity(BLOCK);
        }
        block.extend_from_slice(id);
        block.split().freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_and_well_formed_across_blocks() {
        let ids = RequestIds::new(0x0123_4567_89ab_cdef, 1);
        let mut seen = std::collections::HashSet::new();
        // About 20 bytes each: these span several blocks.
        for n in 1..=1000u64 {
            let id = ids.next();
            let text = id.to_str().expect("visible ASCII");
            let (prefix, count) = text.split_once('-').expect("prefix-count");
            assert_eq!(prefix.len(), 16, "{text}");
            assert!(prefix.starts_with("0123456789abcd"), "{text}");
            assert_eq!(u64::from_str_radix(count, 16).ok(), Some(n), "{text}");
            assert!(seen.insert(text.to_owned()), "repeated {text}");
        }
        // The longest count: sixteen digits.
        let ids = RequestIds::new(0xfedc_ba98_7654_3210, u64::MAX);
        let id = ids.next();
        assert!(
            id.to_str().is_ok_and(|t| t.ends_with("-ffffffffffffffff")),
            "{id:?}"
        );
    }
}
