//! Configuration reload, on SIGHUP and when the file changes: parse and
//! validate the whole file first; a bad file is reported and the config in
//! force stays.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::{build_snapshot, Gateway, ListenerSet};
use crate::config::Config;

/// Changes to the file within this window make one reload.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// What triggers reloads; set up before the gateway says it is ready, so
/// no change after that is missed.
pub struct Triggers {
    rx: tokio::sync::mpsc::Receiver<()>,
    tx: tokio::sync::mpsc::Sender<()>,
    watcher: Option<notify::RecommendedWatcher>,
    hangups: tokio::signal::unix::Signal,
}

impl Triggers {
    pub fn new(config_path: &Path) -> std::io::Result<Triggers> {
        let (tx, rx) = tokio::sync::mpsc::channel::<()>(16);
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok(Triggers {
            watcher: watch_file(config_path, tx.clone()),
            rx,
            tx,
            hangups,
        })
    }
}

/// Reloads until the task is aborted.
pub async fn run(gateway: Arc<Gateway>, mut listeners: ListenerSet, triggers: Triggers) {
    let Triggers {
        mut rx,
        tx,
        watcher: _watcher,
        mut hangups,
    } = triggers;
    let hup_tx = tx;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if hup_tx.send(()).await.is_err() {
                return;
            }
        }
    });
    while rx.recv().await.is_some() {
        // Let a burst of events (editor writes, atomic renames) settle.
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
        reload(&gateway, &mut listeners).await;
    }
}

async fn reload(gateway: &Arc<Gateway>, listeners: &mut ListenerSet) {
    let path = gateway.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
    let config = match loaded {
        Ok(Ok(config)) => Arc::new(config),
        Ok(Err(errors)) => {
            for error in &errors.0 {
                tracing::error!(
                    "config reload rejected, the previous config stays in force: {error}"
                );
            }
            crate::metrics::config_reload(false);
            return;
        }
        Err(e) => {
            tracing::error!("config reload failed: {e}");
            crate::metrics::config_reload(false);
            return;
        }
    };
    let previous = gateway.state.load_full();
    let snapshot = build_snapshot(config.clone(), Some(&previous), &gateway.loader).await;
    crate::access_log::configure(&config.access_log);
    crate::trace::configure(&config.tracing);
    gateway.state.store(Arc::new(snapshot));
    gateway.services.apply(&config).await;
    if let Err(e) = listeners.apply(gateway, &config, false).await {
        tracing::error!("config reload: {e:#}");
    }
    crate::metrics::config_reload(true);
    tracing::info!(file = %gateway.config_path.display(), "config reloaded");
}

/// Watches the directory holding `path` (so atomic renames and symlink
/// swaps are seen) and signals `tx` when anything touches the file.
fn watch_file(
    path: &Path,
    tx: tokio::sync::mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name()?.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let relevant = event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(&name) || p.ends_with("..data"));
            if relevant && !event.kind.is_access() {
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| tracing::warn!("config file watching unavailable ({e}); reload with SIGHUP"))
    .ok()?;
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!("cannot watch {} ({e}); reload with SIGHUP", dir.display());
        return None;
    }
    Some(watcher)
}
