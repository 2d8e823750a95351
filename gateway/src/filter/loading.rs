//! Loading filters off the async workers, several at once: a folder or a
//! route table with a hundred modules starts in the time of a hundred
//! compiles divided by the cores, not added up.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::engine::FilterHost;
use super::pool::LoadedFilter;
use crate::config::filter::FilterConfig;

/// Loads running at once in the process, whoever asked for them (chains
/// of every listener and route, folders): one per core. More would only
/// queue for the same CPUs and hold more half-built modules in memory;
/// Cranelift already spreads one module's functions over the cores, which
/// covers a lone large module.
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    })
}

/// Loads every filter of `configs` concurrently (within the process-wide
/// bound); the result is in the order of `configs`.
pub(crate) async fn load_all(
    host: &Arc<FilterHost>,
    configs: impl IntoIterator<Item = FilterConfig>,
) -> Vec<LoadedFilter> {
    futures_util::future::join_all(configs.into_iter().map(|c| load_one(host, c))).await
}

/// Compiles, instantiates and starts one filter on a blocking thread, once
/// a load slot is free. Never fails: a filter that does not load comes
/// back unavailable.
pub(crate) async fn load_one(host: &Arc<FilterHost>, config: FilterConfig) -> LoadedFilter {
    // The semaphore is never closed, so acquiring only waits.
    let _slot = permits().acquire().await;
    let (h, c) = (host.clone(), config.clone());
    match tokio::task::spawn_blocking(move || LoadedFilter::load(&h, &c)).await {
        Ok(filter) => filter,
        Err(e) => LoadedFilter::unavailable(host, &config, format!("load task failed: {e}")),
    }
}

/// The filters of the configuration in force, for the next reload: a filter
/// whose configuration and module are unchanged carries over with its
/// instances and their state, as Envoy keeps a VM whose configuration did
/// not change. Loading it again would also hold two sets of instances at
/// once, which a `max_instances` sized for one set cannot take.
#[derive(Default)]
pub struct LoadedSet {
    filters: std::sync::Mutex<Vec<std::sync::Weak<LoadedFilter>>>,
}

impl LoadedSet {
    /// A loaded filter of the configuration in force with exactly `config`
    /// and the same module bytes on disk.
    async fn reusable(
        &self,
        host: &Arc<FilterHost>,
        config: &FilterConfig,
    ) -> Option<Arc<LoadedFilter>> {
        // Taken out of the set: two chains with the same filter each had
        // their own, and each gets its own again.
        let candidate = {
            let mut kept = self.filters.lock().unwrap_or_else(|p| p.into_inner());
            let at = kept.iter().position(|f| {
                f.upgrade().is_some_and(|f| {
                    f.is_loaded() && f.config == *config && Arc::ptr_eq(f.host(), host)
                })
            })?;
            kept.swap_remove(at).upgrade()?
        };
        let check = candidate.clone();
        let unchanged = tokio::task::spawn_blocking(move || check.module_unchanged())
            .await
            .unwrap_or(false);
        unchanged.then_some(candidate)
    }

    /// Loads `configs` (in order), reusing what can be reused, and keeps the
    /// result for the next reload.
    pub(crate) async fn load_all(
        &self,
        host: &Arc<FilterHost>,
        configs: &[FilterConfig],
    ) -> Vec<Arc<LoadedFilter>> {
        let loaded = futures_util::future::join_all(configs.iter().map(|c| async move {
            match self.reusable(host, c).await {
                Some(filter) => {
                    tracing::debug!(filter = %c.name, "unchanged: kept across the reload");
                    filter
                }
                None => Arc::new(load_one(host, c.clone()).await),
            }
        }))
        .await;
        let mut kept = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|f| f.strong_count() > 0);
        kept.extend(loaded.iter().map(Arc::downgrade));
        loaded
    }
}
