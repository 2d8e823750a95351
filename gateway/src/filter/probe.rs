//! A filter module examined without serving it: its ABI version, exports,
//! imports (and which this host does not implement), callbacks and memory
//! needs, then one VM started with its configuration. `gateway filter
//! inspect` prints this report; `gateway check` runs it for every filter.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::{ExternType, Module};

use super::engine::FilterHost;
use super::instance::FilterInstance;
use super::pool::FilterCode;
use super::state::FilterMeta;
use crate::config::filter::FilterConfig;

/// Bytes in one wasm page.
const PAGE: u64 = 64 * 1024;

/// What `gateway filter inspect` reports about one module.
#[derive(Debug, Clone, Serialize)]
pub struct FilterReport {
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// `"0.2.1"` or `"0.2.0"`; `None` when the module is no proxy-wasm module.
    pub abi_version: Option<String>,
    pub exports: Vec<String>,
    pub imports: Vec<ImportReport>,
    /// The proxy-wasm callbacks (`proxy_on_*`) the module implements.
    pub callbacks: Vec<String>,
    pub memory: Option<MemoryReport>,
    /// `proxy_on_vm_start`'s outcome: `ok`, `failed`, `not run` or `not implemented`.
    pub vm_start: &'static str,
    /// `proxy_on_configure`'s outcome, likewise.
    pub configure: &'static str,
    /// What the filter logged while it started (level, message).
    pub log: Vec<LogLine>,
    /// Why the module cannot serve; `None` when it started.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub module: String,
    pub name: String,
    /// False: linked as a stub that answers `UNIMPLEMENTED` (or `ENOSYS`).
    pub implemented: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub initial_pages: u64,
    pub max_pages: Option<u64>,
    /// The filter's `memory_limit` (capped by `[wasm] max_memory`), in pages.
    pub limit_pages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

impl FilterReport {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Examines the module of `config` and starts one VM of it with `config`'s
/// configuration (blocking: compiles the module).
pub fn inspect(host: &Arc<FilterHost>, config: &FilterConfig) -> FilterReport {
    let mut report = FilterReport {
        file: config.path.display().to_string(),
        size: 0,
        sha256: String::new(),
        abi_version: None,
        exports: Vec::new(),
        imports: Vec::new(),
        callbacks: Vec::new(),
        memory: None,
        vm_start: "not run",
        configure: "not run",
        log: Vec::new(),
        error: None,
    };
    if let Err(e) = examine(host, config, &mut report) {
        report.error = Some(format!("{e:#}"));
    }
    report
}

fn examine(
    host: &Arc<FilterHost>,
    config: &FilterConfig,
    report: &mut FilterReport,
) -> anyhow::Result<()> {
    let problems = config.check();
    anyhow::ensure!(
        problems.is_empty(),
        "invalid configuration: {}",
        problems.join("; ")
    );
    let max = host.config.max_module_size.as_u64();
    let size = std::fs::metadata(&config.path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", config.path.display()))?
        .len();
    anyhow::ensure!(
        size <= max,
        "{size} bytes, over [wasm] max_module_size ({max})"
    );
    let wasm = std::fs::read(&config.path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", config.path.display()))?;
    report.size = wasm.len() as u64;
    report.sha256 = Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let module = host.compile(&wasm, &report.sha256)?;
    describe(host, config, &module, report);
    let pre = host.link(&module)?;

    let has = |name: &str| module.get_export(name).is_some();
    let exports =
        super::exports::ExportIndex::new(&module, &super::declared::Declared::read(&wasm));
    let code = FilterCode {
        wants: super::exports::Wants::of(&exports),
        meta: Arc::new(FilterMeta {
            vm_id: config.name.clone(),
            root_id: config.root_id.clone().unwrap_or_default(),
            vm_config: Bytes::from(config.vm_config.clone().unwrap_or_default()),
            plugin_config: Bytes::from(config.config.clone().unwrap_or_default()),
            config: config.clone(),
        }),
        exports,
        pre,
    };
    let implemented = |name| {
        if has(name) {
            "not run"
        } else {
            "not implemented"
        }
    };
    report.vm_start = implemented("proxy_on_vm_start");
    report.configure = implemented("proxy_on_configure");
    match FilterInstance::start(host, &code, None) {
        Ok(instance) => {
            report.log = instance
                .start_log
                .lines
                .iter()
                .map(|(level, message)| LogLine {
                    level: level_name(*level),
                    message: message.clone(),
                })
                .collect();
            let ran = |outcome: &'static str| if outcome == "not run" { "ok" } else { outcome };
            report.vm_start = ran(report.vm_start);
            report.configure = ran(report.configure);
            Ok(())
        }
        Err(e) => {
            let reason = format!("{e:#}");
            if reason.starts_with("proxy_on_vm_start") {
                report.vm_start = "failed";
            } else if reason.starts_with("proxy_on_configure") {
                if report.vm_start == "not run" {
                    report.vm_start = "ok";
                }
                report.configure = "failed";
            }
            Err(e)
        }
    }
}

/// Fills in what the module declares.
fn describe(host: &FilterHost, config: &FilterConfig, module: &Module, report: &mut FilterReport) {
    report.exports = module.exports().map(|e| e.name().to_string()).collect();
    report.abi_version = ["0_2_1", "0_2_0"]
        .into_iter()
        .find(|v| {
            module
                .get_export(&format!("proxy_abi_version_{v}"))
                .is_some()
        })
        .map(|v| v.replace('_', "."));
    report.callbacks = report
        .exports
        .iter()
        .filter(|e| e.starts_with("proxy_on_"))
        .cloned()
        .collect();
    report.imports = module
        .imports()
        .map(|i| ImportReport {
            module: i.module().to_string(),
            name: i.name().to_string(),
            implemented: host.implements(i.module(), i.name()),
        })
        .collect();
    let limit = config
        .memory_limit
        .as_u64()
        .min(host.config.max_memory.as_u64());
    report.memory = module.exports().find_map(|e| match e.ty() {
        ExternType::Memory(m) => Some(MemoryReport {
            initial_pages: m.minimum(),
            max_pages: m.maximum(),
            limit_pages: limit / PAGE,
        }),
        _ => None,
    });
}

fn level_name(level: i32) -> &'static str {
    match level {
        0 => "trace",
        1 => "debug",
        2 => "info",
        3 => "warn",
        4 => "error",
        _ => "critical",
    }
}
