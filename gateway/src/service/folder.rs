//! The services folder (`[wasm] services_dir`): every `*.wasm` in it is a
//! service named by its stem and configured by an optional sidecar
//! `<stem>.toml` (the keys of `[[service]]` but `path`). Watched like a
//! filter folder: change events (debounced) plus a polling fallback.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::ServiceSet;
use crate::config::ServiceConfig;
use crate::filter::hosting::{
    is_module, listing, read_capped, sidecar_config, Capped, MAX_SIDECAR,
};

/// Events closer together than this make one rescan.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Every module of `dir` with its settings, or why its sidecar is unusable
/// (then with the defaults, for the report).
pub(super) fn modules(dir: &Path) -> Vec<(ServiceConfig, Result<(), String>)> {
    listing(dir)
        .into_iter()
        .filter(|(name, _, _)| is_module(name))
        .map(|(name, _, _)| {
            let path = dir.join(&name);
            let stem = name.trim_end_matches(".wasm");
            let sidecar_path = path.with_extension("toml");
            let sidecar = match read_capped(&sidecar_path, MAX_SIDECAR) {
                Ok(bytes) => Ok(bytes),
                Err(Capped::Missing) => Ok(Vec::new()),
                Err(Capped::TooLarge(n)) => Err(format!(
                    "{}: {n} bytes, over the {MAX_SIDECAR}-byte limit of a sidecar",
                    sidecar_path.display()
                )),
            };
            match sidecar.and_then(|s| sidecar_config(stem, &path, &s, &sidecar_path)) {
                Ok(config) => (config, Ok(())),
                Err(why) => (ServiceConfig::new(stem, path), Err(why)),
            }
        })
        .collect()
}

/// Reconciles `set` on folder events (debounced) and every `poll`, until
/// the set is dropped or the folder changes (`generation` moves on).
pub(super) async fn watch(set: Weak<ServiceSet>, dir: PathBuf, poll: Duration, generation: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(64);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "no services folder events ({e}); polling only");
            None
        }
    };
    let poll = if poll.is_zero() {
        Duration::from_secs(3600)
    } else {
        poll
    };
    let mut last = listing(&dir);
    loop {
        let changed = tokio::select! {
            event = rx.recv() => {
                if event.is_none() {
                    return;
                }
                // Let a burst (write, rename, symlink swap) settle.
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                true
            }
            // A poll with nothing changed costs a listing, not a load.
            () = tokio::time::sleep(poll) => listing(&dir) != last,
        };
        let Some(set) = set.upgrade() else { return };
        if set.folder_generation() != generation {
            return;
        }
        if changed {
            last = listing(&dir);
            set.reconcile().await;
        }
    }
}
