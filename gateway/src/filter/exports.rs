//! The guest's callbacks, found once per module by export index and
//! checked against their ABI signatures.

use anyhow::Result;
use wasmtime::{Instance, ModuleExport, Store, TypedFunc, WasmParams, WasmResults};

use super::declared::{Declared, GOVERNED};
use super::engine::wt;
use super::state::HostState;

/// The callbacks' export indexes, resolved once per module, and whether
/// the module creates its HTTP contexts itself.
pub(crate) struct ExportIndex {
    exports: Vec<(&'static str, Option<ModuleExport>)>,
    lazy_http_contexts: bool,
    transient_http_contexts: bool,
}

const CALLBACKS: &[&str] = &[
    "proxy_on_memory_allocate",
    "malloc",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
    "proxy_on_tick",
    "proxy_on_queue_ready",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
    "_initialize",
    "main",
    "_start",
    "memory",
];

impl ExportIndex {
    /// The callbacks `module` exports, less those its declaration leaves
    /// out (they are never called, as if not exported).
    pub fn new(module: &wasmtime::Module, declared: &Declared) -> Self {
        let mut index = ExportIndex {
            exports: CALLBACKS
                .iter()
                .map(|n| {
                    (
                        *n,
                        module.get_export_index(n).filter(|_| declared.allows(n)),
                    )
                })
                .collect(),
            lazy_http_contexts: declared.lazy_http_contexts(),
            transient_http_contexts: false,
        };
        // The option holds for a module whose only stream callback is the
        // request's headers: any later one may still need the context.
        index.transient_http_contexts = declared.transient_http_contexts()
            && !GOVERNED
                .iter()
                .any(|n| *n != "proxy_on_request_headers" && index.has(n));
        index
    }

    /// Whether the host skips `proxy_on_delete` for an HTTP context that
    /// made no callout (docs/abi.md, "Declared callbacks").
    pub fn transient_http_contexts(&self) -> bool {
        self.transient_http_contexts
    }

    /// Whether the host skips `proxy_on_context_create` for HTTP contexts
    /// (docs/abi.md, "Declared callbacks").
    pub fn lazy_http_contexts(&self) -> bool {
        self.lazy_http_contexts
    }

    /// Whether callback `name` will be called.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The `proxy_on_*` callbacks that will be called, for the admin view.
    pub fn callbacks(&self) -> Vec<&'static str> {
        self.exports
            .iter()
            .filter(|(n, e)| n.starts_with("proxy_on_") && e.is_some())
            .map(|(n, _)| *n)
            .collect()
    }
    pub fn get(&self, name: &str) -> Option<&ModuleExport> {
        self.exports
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, e)| e.as_ref())
    }
}

/// Which stream callbacks a module will have called, so a request skips
/// the phases no filter of its chain implements.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wants {
    pub request_headers: bool,
    pub response_headers: bool,
    /// Body or trailer callbacks: trailers arrive at the end of a body, so
    /// a filter with trailer callbacks needs the body walked.
    pub request_body: bool,
    pub response_body: bool,
    /// Any callback that runs once the response head is in (response
    /// headers, body, trailers, `proxy_on_log`, `proxy_on_done`) and so
    /// may read the response's headers.
    pub response: bool,
}

impl Wants {
    pub fn of(exports: &ExportIndex) -> Wants {
        let has = |name| exports.has(name);
        let response_headers = has("proxy_on_response_headers");
        let response_body = has("proxy_on_response_body") || has("proxy_on_response_trailers");
        Wants {
            request_headers: has("proxy_on_request_headers"),
            response_headers,
            request_body: has("proxy_on_request_body") || has("proxy_on_request_trailers"),
            response_body,
            response: response_headers
                || response_body
                || has("proxy_on_log")
                || has("proxy_on_done"),
        }
    }
}

pub(crate) fn typed<P: WasmParams, R: WasmResults>(
    inst: &Instance,
    store: &mut Store<HostState>,
    idx: &ExportIndex,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>> {
    let Some(export) = idx.get(name) else {
        return Ok(None);
    };
    match inst
        .get_module_export(&mut *store, export)
        .and_then(|e| e.into_func())
    {
        None => Ok(None),
        Some(f) => wt(
            f.typed(&*store),
            &format!("export `{name}` has the wrong signature"),
        )
        .map(Some),
    }
}
