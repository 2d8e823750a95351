//! Starting, reloading and stopping: the runtime, listeners, admin,
//! signals and the graceful shutdown.

mod callouts;
mod listeners;
mod reload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::admin::AdminState;
use crate::config::Config;
use crate::filter::FilterHost;
use crate::listener::Shutdown;
use crate::state::{ChainLoader, Snapshot};
use crate::worker::Workers;

pub use listeners::ListenerSet;

/// Everything a running gateway shares between start-up and reloads.
pub struct Gateway {
    pub config_path: PathBuf,
    pub state: Arc<ArcSwap<Snapshot>>,
    pub admin: Arc<AdminState>,
    pub shutdown: Shutdown,
    pub address_file: Option<PathBuf>,
    pub admin_address: Option<SocketAddr>,
    pub loader: ChainLoader,
    /// The worker runtimes; every listener accepts on each of them.
    pub workers: Vec<tokio::runtime::Handle>,
    /// The services (run on this, the control runtime).
    pub services: Arc<crate::service::ServiceSet>,
}

/// Runs the gateway with `config` until SIGTERM or Ctrl-C: one worker
/// thread per core (or `runtime.workers`) serving connections, and a
/// control runtime on this thread for reloads, admin and signals.
pub fn run(config: Config, address_file: Option<PathBuf>) -> anyhow::Result<()> {
    let workers = match config.runtime.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    crate::worker::set_count(workers);
    let workers = Workers::start()?;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    let handles = (0..workers.len())
        .map(|i| workers.handle(i).clone())
        .collect();
    crate::access_log::configure(&config.access_log);
    crate::trace::configure(&config.tracing);
    let result = control.block_on(serve(config, address_file, handles));
    workers.stop();
    crate::access_log::drain(std::time::Duration::from_secs(2));
    crate::trace::shutdown(std::time::Duration::from_secs(2));
    result
}

/// Builds the snapshot of `config`: clusters (reusing `previous`' pools
/// where a cluster is unchanged) and filter chains (compiled off the
/// request path).
pub async fn build_snapshot(
    config: Arc<Config>,
    previous: Option<&Snapshot>,
    loader: &ChainLoader,
) -> Snapshot {
    Snapshot::build(config, previous, loader).await
}

async fn serve(
    config: Config,
    address_file: Option<PathBuf>,
    workers: Vec<tokio::runtime::Handle>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let grace = config.runtime.shutdown_grace;
    let (shutdown, trigger) = Shutdown::new();

    let admin_socket = match &config.admin {
        Some(admin) => Some(
            TcpListener::bind(admin.address)
                .await
                .with_context(|| format!("admin: cannot bind {}", admin.address))?,
        ),
        None => None,
    };

    // The filter host needs the clusters for callouts, the snapshot needs
    // the host for its chains: start with the clusters alone.
    let callouts = Arc::new(callouts::SnapshotCallouts::default());
    let filter_host =
        FilterHost::new(&config.wasm, callouts.clone()).context("cannot start the filter host")?;
    let bare = Snapshot::build(config.clone(), None, &ChainLoader::default()).await;
    let state = Arc::new(ArcSwap::from_pointee(bare));
    let _ = callouts.state.set(state.clone());
    let loader = ChainLoader::new(filter_host.clone());
    let snapshot = build_snapshot(config.clone(), Some(&state.load_full()), &loader).await;
    state.store(Arc::new(snapshot));
    // Services start with the clusters in place (for their callouts) and
    // before traffic, so the data they publish is there for the filters.
    let services = crate::service::ServiceSet::new(filter_host.clone());
    services.apply(&config).await;
    let admin = Arc::new(AdminState::new(state.clone(), Some(filter_host.clone()))?);
    let _ = admin.services.set(services.clone());
    let admin_address = match admin_socket {
        Some(socket) => {
            let address = socket.local_addr()?;
            tracing::info!(%address, "admin listening");
            tokio::spawn(crate::admin::serve(socket, admin.clone(), shutdown.clone()));
            Some(address)
        }
        None => None,
    };
    let gateway = Arc::new(Gateway {
        config_path: config.source.clone(),
        state: state.clone(),
        admin: admin.clone(),
        shutdown: shutdown.clone(),
        address_file,
        admin_address,
        loader,
        workers,
        services: services.clone(),
    });

    // Bind everything first: a taken port is a start-up error.
    let mut listeners = ListenerSet::default();
    listeners.apply(&gateway, &config, true).await?;
    tokio::spawn(reap_idle_connections(state.clone()));

    // Installed before "ready": from then on SIGHUP means reload, never
    // the default (terminate), and no change to the file is missed.
    let stop = stop_signal()?;
    let mut rotations =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            .context("cannot install the SIGUSR1 handler")?;
    tokio::spawn(async move {
        // logrotate moved the access log: reopen it.
        while rotations.recv().await.is_some() {
            crate::access_log::reopen();
        }
    });
    let triggers = reload::Triggers::new(&gateway.config_path)
        .context("cannot install the reload triggers")?;
    let reloads = tokio::spawn(reload::run(gateway.clone(), listeners, triggers));
    admin.ready.store(true, Ordering::Release);
    tracing::info!("gateway ready");
    stop.await;
    reloads.abort();
    tracing::info!(grace = ?grace, "shutting down: no new connections, finishing requests in flight");
    drop(shutdown);
    drop(gateway);
    if trigger.shutdown(grace).await {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!("grace period over with connections still open; closing them");
    }
    services.stop_all().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed
/// when this is called, not when it is first polled, so a signal right
/// after start-up is never the default "terminate now".
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Closes pooled upstream connections past their idle timeout.
async fn reap_idle_connections(state: Arc<ArcSwap<Snapshot>>) {
    loop {
        let interval = state.load().clusters.reap_interval();
        tokio::time::sleep(interval).await;
        for cluster in state.load().clusters.iter() {
            cluster.reap_idle();
        }
    }
}

/// Writes `{"listeners": {name: address}, "admin": address}` atomically.
pub fn write_address_file(
    path: &Path,
    listeners: &std::collections::BTreeMap<String, SocketAddr>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let json = serde_json::json!({ "listeners": listeners, "admin": admin });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json.to_string())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
