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
