//! The process-wide filter host: one wasmtime `Engine` (pooling allocator,
//! epoch interruption driven by a ticker thread, bounded stack), one
//! `Linker` with every hostcall, the state filters share, and the compile
//! cache.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store,
};

use super::abi;
use super::cache::CompileCache;
use super::metrics::{MetricRegistry, MetricSnapshot};
use super::shared_data::{Queues, SharedData};
use super::state::{FilterMeta, HostState};
use crate::config::filter::{FilterConfig, FilterHostConfig};
use crate::upstream::callout::CalloutClient;

/// State every filter of the process shares.
pub struct HostShared {
    pub shared_data: SharedData,
    pub queues: Queues,
    pub metrics: MetricRegistry,
    pub callouts: Arc<dyn CalloutClient>,
    /// What `gateway.clusters` lists; set by whoever loads a configuration.
    pub clusters: super::clusters::ClusterNames,
}

/// One per process: runs every filter.
pub struct FilterHost {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    known: HashSet<(String, String)>,
    pub(crate) shared: Arc<HostShared>,
    pub(crate) config: FilterHostConfig,
    /// Compiled-code cache, keyed by module digest and engine configuration.
    cache: Option<CompileCache>,
}

impl FilterHost {
    /// Sets the cluster names filters see (`gateway.clusters`): call it
    /// before loading a configuration's filters.
    pub fn set_clusters<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        self.shared.clusters.set(names);
    }

    pub fn new(
        cfg: &FilterHostConfig,
        callouts: Arc<dyn CalloutClient>,
    ) -> Result<Arc<FilterHost>> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(cfg.max_instances)
            .total_memories(cfg.max_instances)
            .total_tables(cfg.max_instances)
            .max_memory_size(cfg.max_memory.as_u64() as usize)
            // Reset small memories with memset instead of madvise: request
            // isolation recycles a slot per request.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .max_wasm_stack(cfg.max_wasm_stack.as_u64() as usize)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wt(Engine::new(&config), "creating the wasm engine")?;
        spawn_epoch_ticker(&engine, cfg.epoch_tick);

        let mut linker = Linker::new(&engine);
        wt(abi::add_to_linker(&mut linker), "linking hostcalls")?;
        let shared = Arc::new(HostShared {
            shared_data: SharedData::default(),
            queues: Queues::default(),
            metrics: MetricRegistry::default(),
            callouts,
            clusters: Default::default(),
        });
        // The names the linker defines, so unknown imports can be stubbed.
        let mut probe = Store::new(
            &engine,
            HostState::new(probe_meta(), shared.clone(), 1 << 16),
        );
        let known = linker
            .iter(&mut probe)
            .map(|(m, n, _)| (m.to_string(), n.to_string()))
            .collect();
        drop(probe);

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        let cache = cfg
            .cache_dir
            .as_ref()
            .filter(|d| !d.as_os_str().is_empty())
            .and_then(|dir| match CompileCache::open(dir, hasher.finish()) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!("compile cache disabled: {e:#}");
                    None
                }
            });
        Ok(Arc::new(FilterHost {
            engine,
            linker,
            known,
            shared,
            config: cfg.clone(),
            cache,
        }))
    }

    /// Every metric filters defined, for the exporter.
    pub fn metrics(&self) -> Vec<MetricSnapshot> {
        self.shared.metrics.snapshot()
    }

    /// Compiles `wasm` (blocking: call off the async workers), through the
    /// cache, and checks it is a proxy-wasm module this host can run.
    pub(crate) fn prepare(&self, wasm: &[u8], sha256: &str) -> Result<InstancePre<HostState>> {
        if wasm.len() as u64 > self.config.max_module_size.as_u64() {
            bail!(
                "module is {} bytes, over max_module_size {}",
                wasm.len(),
                self.config.max_module_size
            );
        }
        let module = self.compile(wasm, sha256)?;
        self.link(&module)
    }

    /// Whether the host implements import `module`.`name` (others are
    /// linked as stubs answering `UNIMPLEMENTED`).
    pub(crate) fn implements(&self, module: &str, name: &str) -> bool {
        self.known.contains(&(module.to_string(), name.to_string()))
    }

    /// Checks `module` is a proxy-wasm module this host can run and links
    /// its imports.
    pub(crate) fn link(&self, module: &Module) -> Result<InstancePre<HostState>> {
        let exports: HashSet<&str> = module.exports().map(|e| e.name()).collect();
        if !exports.contains("proxy_abi_version_0_2_1")
            && !exports.contains("proxy_abi_version_0_2_0")
        {
            bail!("not a proxy-wasm 0.2.x module: exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0");
        }
        if !exports.contains("memory") {
            bail!("module exports no memory");
        }
        let mut linker = self.linker.clone();
        let stubbed = wt(
            abi::link_unknown(&mut linker, &self.known, module),
            "stubbing unknown imports",
        )?;
        if !stubbed.is_empty() {
            tracing::info!(imports = ?stubbed, "unknown imports linked as UNIMPLEMENTED stubs");
        }
        wt(
            linker.instantiate_pre(module),
            "linking the module's imports",
        )
    }

    /// Compiles `wasm` through the cache (blocking).
    pub(crate) fn compile(&self, wasm: &[u8], sha256: &str) -> Result<Module> {
        let Some(cache) = &self.cache else {
            return wt(Module::new(&self.engine, wasm), "compiling");
        };
        if let Some(module) = cache.load(&self.engine, sha256) {
            tracing::info!(sha256, "module code taken from the compile cache");
            return Ok(module);
        }
        let started = std::time::Instant::now();
        let module = wt(Module::new(&self.engine, wasm), "compiling")?;
        tracing::info!(
            sha256,
            took_ms = started.elapsed().as_millis() as u64,
            "module compiled"
        );
        if let Err(e) = cache.store(&module, sha256) {
            tracing::warn!("cannot cache compiled filter: {e:#}");
        }
        Ok(module)
    }
}

/// Advances the epoch every `tick` while the engine lives.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let tick = tick.max(Duration::from_millis(1));
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the wasm epoch ticker; guest deadlines will not fire: {e}");
    }
}

fn probe_meta() -> Arc<FilterMeta> {
    Arc::new(FilterMeta {
        config: FilterConfig::new("probe", "probe.wasm"),
        vm_id: String::new(),
        root_id: String::new(),
        vm_config: Bytes::new(),
        plugin_config: Bytes::new(),
    })
}

/// Turns a wasmtime error into an `anyhow` one, keeping its message chain.
pub(crate) fn wt<T>(r: wasmtime::Result<T>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{what}: {e:#}"))
}
