//! Hostcalls the gateway does not implement: they link, and answer
//! `UNIMPLEMENTED` instead of trapping.

use std::collections::HashSet;

use wasmtime::Result;
use wasmtime::{Caller, ExternType, Linker, Module, Val, ValType};

use super::status;
use crate::filter::state::HostState;

pub(super) fn add(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |_c: Caller<'_, HostState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> i32 { status::UNIMPLEMENTED },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |_c: Caller<'_, HostState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> i32 { status::UNIMPLEMENTED },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |_c: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| -> i32 {
            status::UNIMPLEMENTED
        },
    )?;
    for name in ["proxy_grpc_cancel", "proxy_grpc_close"] {
        linker.func_wrap("env", name, |_c: Caller<'_, HostState>, _: i32| -> i32 {
            status::UNIMPLEMENTED
        })?;
    }
    // ABI 0.1 leftovers some SDKs still import.
    linker.func_wrap(
        "env",
        "proxy_get_configuration",
        |_c: Caller<'_, HostState>, _: i32, _: i32| -> i32 { status::UNIMPLEMENTED },
    )?;
    Ok(())
}

/// Links every function import of `module` the linker does not know, under
/// `env` or a WASI module, as a stub: `UNIMPLEMENTED` (WASI: `ENOSYS`) for an
/// `i32` result, zeros otherwise. Other unknown imports stay unresolved, and
/// instantiation reports them.
pub fn link_unknown(
    linker: &mut Linker<HostState>,
    known: &HashSet<(String, String)>,
    module: &Module,
) -> Result<Vec<String>> {
    let mut stubbed = Vec::new();
    for import in module.imports() {
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let (m, name) = (import.module(), import.name());
        if !matches!(m, "env" | "wasi_snapshot_preview1" | "wasi_unstable") {
            continue;
        }
        if known.contains(&(m.to_string(), name.to_string())) {
            continue;
        }
        let code = if m == "env" {
            status::UNIMPLEMENTED
        } else {
            super::wasi::ENOSYS
        };
        let results: Vec<ValType> = ty.results().collect();
        linker.func_new(m, name, ty.clone(), move |_c, _args, out| {
            for (slot, t) in out.iter_mut().zip(&results) {
                *slot = match t {
                    ValType::I32 => Val::I32(code),
                    ValType::I64 => Val::I64(0),
                    ValType::F32 => Val::F32(0),
                    ValType::F64 => Val::F64(0),
                    _ => Val::null_extern_ref(),
                };
            }
            Ok(())
        })?;
        stubbed.push(format!("{m}.{name}"));
    }
    Ok(stubbed)
}
