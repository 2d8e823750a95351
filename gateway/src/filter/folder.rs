//! A filter chain taken from a folder: every `*.wasm` in it is a filter,
//! in file-name order (`10-auth.wasm` before `20-router.wasm`), configured
//! by an optional sidecar `<stem>.toml`. The folder is watched (inotify via
//! `notify`, debounced, plus a polling fallback); a changed module is
//! compiled and started off the request path and replaces the old one only
//! if all of that succeeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use super::loading;
use super::pool::LoadedFilter;
use super::{FilterChain, FilterHost};
use crate::config::filter::FilterConfig;

/// Events closer together than this make one rescan.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// One module of the folder and the version of it that serves.
struct Entry {
    /// sha256 of the module serving, and of its sidecar.
    module_sha: String,
    sidecar_sha: String,
    /// What serves now (the last version that loaded, or an unavailable
    /// placeholder if none ever did).
    filter: Arc<LoadedFilter>,
    generation: u64,
    since: SystemTime,
    /// Why the newest version on disk is not serving, if it is not.
    pending_error: Option<String>,
}

/// A module to load: new, or changed since its version in the folder.
struct Pending {
    /// File name (`10-auth.wasm`) and stem (`10-auth`).
    name: String,
    stem: String,
    module_sha: String,
    sidecar_sha: String,
    /// Its settings, or why its sidecar is unusable.
    config: Result<FilterConfig, String>,
}

/// What the folder looked like at the last scan, to skip unchanged scans.
pub(crate) type Listing = Vec<(String, u64, Option<SystemTime>)>;

/// A folder of filters and the chain it currently makes.
pub struct FilterFolder {
    pub dir: PathBuf,
    host: Arc<FilterHost>,
    chain: ArcSwap<FilterChain>,
    state: tokio::sync::Mutex<FolderState>,
}

#[derive(Default)]
struct FolderState {
    entries: BTreeMap<String, Entry>,
    /// Versions that start serving with the next chain swap, logged once
    /// the swap is done (so the log never runs ahead of requests).
    serving: Vec<(String, String, u64)>,
    listing: Listing,
    generation: u64,
}

impl FilterFolder {
    /// Loads every module of `dir` and starts watching it; polling every
    /// `poll` too (zero: events only).
    pub async fn open(host: &Arc<FilterHost>, dir: PathBuf, poll: Duration) -> Arc<FilterFolder> {
        let folder = Arc::new(FilterFolder {
            dir,
            host: host.clone(),
            chain: ArcSwap::from_pointee(FilterChain::empty()),
            state: Default::default(),
        });
        folder.rescan().await;
        tokio::spawn(watch(Arc::downgrade(&folder), poll));
        folder
    }

    /// The chain as it is now; a request keeps the one it started with.
    pub fn chain(&self) -> Arc<FilterChain> {
        self.chain.load_full()
    }

    /// Reads the folder and brings the chain in line with it.
    pub async fn rescan(&self) {
        let mut state = self.state.lock().await;
        let listing = listing(&self.dir);
        if listing == state.listing {
            return;
        }
        state.listing = listing.clone();
        let mut changed = false;
        let present: Vec<String> = listing
            .iter()
            .map(|(n, _, _)| n.clone())
            .filter(|n| is_module(n))
            .collect();
        let before = state.entries.len();
        state.entries.retain(|name, _| present.contains(name));
        if state.entries.len() != before {
            changed = true;
            tracing::info!(dir = %self.dir.display(), "filter removed from the folder");
        }
        // Changed modules load a few at once (a cold start of a full
        // folder is one compile per module), then take their places in
        // file-name order.
        let pending: Vec<Pending> = present
            .iter()
            .filter_map(|name| self.pending(&state, name))
            .collect();
        let loaded = futures_util::future::join_all(pending.into_iter().map(|p| async {
            let filter = match &p.config {
                Ok(config) => Ok(loading::load_one(&self.host, config.clone()).await),
                Err(why) => Err(why.clone()),
            };
            (p, filter)
        }))
        .await;
        for (p, filter) in loaded {
            if self.apply(&mut state, p, filter) {
                changed = true;
            }
        }
        if changed {
            let filters = state.entries.values().map(|e| e.filter.clone()).collect();
            self.chain
                .store(Arc::new(FilterChain::from_loaded(filters)));
            let order: Vec<&String> = state.entries.keys().collect();
            tracing::info!(dir = %self.dir.display(), chain = ?order, "filter chain updated");
            for (filter, sha256, generation) in std::mem::take(&mut state.serving) {
                tracing::info!(%filter, %sha256, generation, "filter version now serving");
            }
        }
    }

    /// What to load for `name`, if its module or sidecar changed since
    /// the version in `state`.
    fn pending(&self, state: &FolderState, name: &str) -> Option<Pending> {
        let path = self.dir.join(name);
        let sidecar_path = path.with_extension("toml");
        // Sizes are checked before anything is read whole: a huge file in
        // the folder costs a stat, not the gateway's memory.
        let (sidecar, oversized) = match read_capped(&sidecar_path, MAX_SIDECAR) {
            Ok(bytes) => (bytes, None),
            Err(Capped::Missing) => (Vec::new(), None),
            Err(Capped::TooLarge(n)) => (format!("# {n} bytes").into_bytes(), Some(n)),
        };
        let sidecar_sha = hex(&Sha256::digest(&sidecar));
        let cap = self.host.config.max_module_size.as_u64();
        let module_sha = match read_capped(&path, cap) {
            Ok(bytes) => hex(&Sha256::digest(&bytes)),
            Err(Capped::Missing) => return None,
            // Named by its size: the load reports it as over max_module_size.
            Err(Capped::TooLarge(n)) => format!("oversized-{n}"),
        };
        if let Some(entry) = state.entries.get(name) {
            if entry.module_sha == module_sha && entry.sidecar_sha == sidecar_sha {
                return None;
            }
        }
        let stem = name.trim_end_matches(".wasm").to_string();
        Some(Pending {
            name: name.to_string(),
            config: match oversized {
                Some(n) => Err(format!(
                    "{}: {n} bytes, over the {MAX_SIDECAR}-byte limit of a sidecar",
                    sidecar_path.display()
                )),
                None => filter_config(&stem, &path, &sidecar, &sidecar_path),
            },
            stem,
            module_sha,
            sidecar_sha,
        })
    }

    /// Puts what loaded for `p` in the folder's state (or keeps the
    /// version serving if it failed). True when what serves changed.
    fn apply(
        &self,
        state: &mut FolderState,
        p: Pending,
        loaded: Result<LoadedFilter, String>,
    ) -> bool {
        let Pending {
            name,
            stem,
            module_sha,
            sidecar_sha,
            ..
        } = p;
        let name = name.as_str();
        let path = self.dir.join(name);
        let loaded = loaded.map_err(|why| (FilterConfig::new(stem.clone(), path.clone()), why));
        let (ok, filter, error) = match loaded {
            Ok(filter) if filter.is_loaded() => (true, filter, None),
            Ok(filter) => {
                let error = filter
                    .status()
                    .last_error
                    .unwrap_or_else(|| "failed to load".into());
                (false, filter, Some(error))
            }
            Err((config, why)) => (
                false,
                LoadedFilter::unavailable(&self.host, &config, why.clone()),
                Some(why),
            ),
        };
        crate::metrics::filter_reload(&stem, ok);
        state.generation += 1;
        let generation = state.generation;
        if ok {
            let sha = filter.sha256().to_string();
            state.serving.push((stem.clone(), sha.clone(), generation));
            state.entries.insert(
                name.to_string(),
                Entry {
                    module_sha: sha,
                    sidecar_sha,
                    filter: Arc::new(filter),
                    generation,
                    since: SystemTime::now(),
                    pending_error: None,
                },
            );
            return true;
        }
        let error = error.unwrap_or_default();
        match state.entries.get_mut(name) {
            // Only a version that loaded is worth keeping; a failed
            // placeholder gives way to the new one (its policy may differ).
            Some(entry) if entry.filter.is_loaded() => {
                tracing::error!(filter = %stem, "new version rejected, the previous version keeps serving: {error}");
                entry.pending_error = Some(error);
                // Remember what was rejected so it is not retried until it changes.
                entry.module_sha = module_sha;
                entry.sidecar_sha = sidecar_sha;
                false
            }
            _ => {
                tracing::error!(filter = %stem, policy = ?filter.config.failure,
                    "filter failed to load and has no previous version: {error}");
                state.entries.insert(
                    name.to_string(),
                    Entry {
                        module_sha,
                        sidecar_sha,
                        filter: Arc::new(filter),
                        generation,
                        since: SystemTime::now(),
                        pending_error: Some(error),
                    },
                );
                true
            }
        }
    }

    /// Each module's status with its generation, for the admin endpoint.
    pub async fn status(&self) -> serde_json::Value {
        let state = self.state.lock().await;
        let filters: Vec<serde_json::Value> = state
            .entries
            .iter()
            .map(|(file, e)| {
                let mut status = serde_json::to_value(e.filter.status()).unwrap_or_default();
                if let Some(map) = status.as_object_mut() {
                    map.insert("file_name".into(), file.clone().into());
                    map.insert("generation".into(), e.generation.into());
                    map.insert(
                        "serving_since".into(),
                        humantime::format_rfc3339_seconds(e.since)
                            .to_string()
                            .into(),
                    );
                    map.insert("pending_error".into(), e.pending_error.clone().into());
                }
                status
            })
            .collect();
        serde_json::json!({ "dir": self.dir.display().to_string(), "filters": filters })
    }
}

/// The filter config of module `stem`: defaults, overridden by the sidecar
/// (its text `sidecar`, read from `sidecar_path`). Errors name the
/// sidecar's file, line and key.
pub(crate) fn filter_config(
    stem: &str,
    path: &Path,
    sidecar: &[u8],
    sidecar_path: &Path,
) -> Result<FilterConfig, String> {
    sidecar_config(stem, path, sidecar, sidecar_path)
}

/// A module's settings of type `T` (a filter's or a service's) from its
/// sidecar, with `path` and a default `name` filled in.
pub(crate) fn sidecar_config<T: serde::de::DeserializeOwned>(
    stem: &str,
    path: &Path,
    sidecar: &[u8],
    sidecar_path: &Path,
) -> Result<T, String> {
    if sidecar.len() > MAX_SIDECAR {
        return Err(format!(
            "{}: over the {MAX_SIDECAR}-byte limit of a sidecar",
            sidecar_path.display()
        ));
    }
    let text = std::str::from_utf8(sidecar)
        .map_err(|_| format!("{}: not UTF-8", sidecar_path.display()))?;
    // Sidecar settings: everything of a filter's config but its file.
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| crate::config::ConfigError::from_toml(sidecar_path, text, &e).to_string())?;
    if table.contains_key("path") {
        return Err(format!(
            "{}: `path` is the module's own file and cannot be set",
            sidecar_path.display()
        ));
    }
    // The module's own keys go first, as whole lines (root keys precede
    // any table), so an error's position maps back to the sidecar's lines.
    let mut own = format!(
        "path = {}\n",
        toml::Value::String(path.display().to_string())
    );
    if !table.contains_key("name") {
        own.push_str(&format!(
            "name = {}\n",
            toml::Value::String(stem.to_string())
        ));
    }
    let whole = format!("{own}{text}");
    toml::from_str::<T>(&whole).map_err(|e| {
        let mut err = crate::config::ConfigError::from_toml(sidecar_path, &whole, &e);
        let own_lines = own.lines().count();
        err.position = err
            .position
            .filter(|(line, _)| *line > own_lines)
            .map(|(line, col)| (line - own_lines, col));
        err.to_string()
    })
}

/// Every module of folder `dir` in chain order, with its configuration
/// (from its sidecar) or why that configuration is invalid.
pub fn modules(dir: &Path) -> Vec<(PathBuf, Result<FilterConfig, String>)> {
    listing(dir)
        .into_iter()
        .filter(|(name, _, _)| is_module(name))
        .map(|(name, _, _)| {
            let path = dir.join(&name);
            let sidecar_path = path.with_extension("toml");
            let sidecar = match read_capped(&sidecar_path, MAX_SIDECAR) {
                Ok(bytes) => bytes,
                Err(Capped::Missing) => Vec::new(),
                Err(Capped::TooLarge(n)) => {
                    format!("# {n} bytes: over the {MAX_SIDECAR}-byte limit").into_bytes()
                }
            };
            let stem = name.trim_end_matches(".wasm");
            let config = filter_config(stem, &path, &sidecar, &sidecar_path);
            (path, config)
        })
        .collect()
}

/// Largest sidecar read.
pub(crate) const MAX_SIDECAR: usize = 1 << 20;

pub(crate) enum Capped {
    Missing,
    TooLarge(u64),
}

/// Reads `path` whole only if it is at most `cap` bytes (checked on the
/// open file, and again while reading, in case it grows meanwhile).
pub(crate) fn read_capped(path: &Path, cap: impl TryInto<u64>) -> Result<Vec<u8>, Capped> {
    use std::io::Read;
    let cap: u64 = cap.try_into().unwrap_or(u64::MAX);
    let file = std::fs::File::open(path).map_err(|_| Capped::Missing)?;
    let len = file.metadata().map_err(|_| Capped::Missing)?.len();
    if len > cap {
        return Err(Capped::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|_| Capped::Missing)?;
    if bytes.len() as u64 > cap {
        return Err(Capped::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

pub(crate) fn is_module(name: &str) -> bool {
    name.ends_with(".wasm") && !name.starts_with('.')
}

/// Names, sizes and modification times of the folder's modules and
/// sidecars (following symlinks, as Kubernetes volumes need).
pub(crate) fn listing(dir: &Path) -> Listing {
    let mut out: Listing = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let relevant =
                        is_module(&name) || (name.ends_with(".toml") && !name.starts_with('.'));
                    let meta = std::fs::metadata(e.path()).ok().filter(|m| m.is_file())?;
                    relevant.then(|| (name, meta.len(), meta.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rescans on folder events (debounced) and every `poll`, until the
/// folder is dropped.
async fn watch(folder: Weak<FilterFolder>, poll: Duration) {
    let Some(dir) = folder.upgrade().map(|f| f.dir.clone()) else {
        return;
    };
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
            tracing::warn!(dir = %dir.display(), "no folder events ({e}); polling only");
            None
        }
    };
    let poll = if poll.is_zero() {
        Duration::from_secs(3600)
    } else {
        poll
    };
    loop {
        tokio::select! {
            event = rx.recv() => {
                if event.is_none() {
                    return;
                }
                // Let a burst (write, rename, symlink swap) settle.
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(poll) => {}
        }
        match folder.upgrade() {
            Some(folder) => folder.rescan().await,
            None => return,
        }
    }
}
