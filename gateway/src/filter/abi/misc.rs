//! Logging, time, timers, contexts and properties.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::{guest_range, return_bytes, status, status_of, with_bytes, write_bytes, write_u32};
use crate::filter::properties::{self, PropertyError};
use crate::filter::state::{HostState, ROOT_CONTEXT};

/// The proxy-wasm log level the `tracing` subscriber lets through.
fn current_level() -> u32 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => 0,
        LevelFilter::DEBUG => 1,
        LevelFilter::INFO => 2,
        LevelFilter::WARN => 3,
        LevelFilter::ERROR => 4,
        _ => 5,
    }
}

/// Longest log line a guest can write (`proxy_log`, `fd_write`); the rest
/// is cut, so a guest cannot make the host copy its whole memory per call.
pub(super) const MAX_LOG_LINE: usize = 16 << 10;

/// The bytes of a log message: bounds-checked whole, copied up to the cap.
pub(super) fn log_bytes(c: &Caller<'_, HostState>, p: i32, l: i32) -> super::GuestResult<Vec<u8>> {
    super::with_bytes(c, p, l, |b| b[..b.len().min(MAX_LOG_LINE)].to_vec())
}

pub(super) fn log(filter: &str, level: i32, msg: &str) {
    match level {
        0 => tracing::trace!(filter, "{msg}"),
        1 => tracing::debug!(filter, "{msg}"),
        2 => tracing::info!(filter, "{msg}"),
        3 => tracing::warn!(filter, "{msg}"),
        _ => tracing::error!(filter, "{msg}"),
    }
}

pub(super) fn add(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Caller<'_, HostState>, level: i32, p: i32, l: i32| -> i32 {
            if !(0..=5).contains(&level) {
                return status::BAD_ARGUMENT;
            }
            match log_bytes(&c, p, l) {
                Ok(msg) => {
                    let msg = String::from_utf8_lossy(&msg);
                    log(&c.data().filter.config.name, level, &msg);
                    if let Some(start_log) = c.data_mut().start_log.as_mut() {
                        start_log.push(level, &msg);
                    }
                    status::OK
                }
                Err(s) => s,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Caller<'_, HostState>, rp: i32| -> i32 {
            status_of(write_u32(&mut c, rp, current_level()))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, HostState>, rp: i32| -> i32 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            status_of(write_bytes(&mut c, rp, &now.to_le_bytes()))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, HostState>, ms: i32| -> i32 {
            // Ticks belong to the root context; 0 stops them.
            c.data_mut().effects.tick_period = Some(Duration::from_millis(u64::from(ms as u32)));
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, HostState>, id: i32| -> i32 {
            let id = id as u32;
            let st = c.data_mut();
            if id == ROOT_CONTEXT || id == st.current || st.signals.contains_key(&id) {
                st.effective = id;
                status::OK
            } else {
                status::BAD_ARGUMENT
            }
        },
    )?;
    // Contexts are finalized at once, never left pending on `proxy_on_done`
    // returning false: there is nothing to be done with, as in the reference
    // host for a context that is not pending.
    linker.func_wrap("env", "proxy_done", |_c: Caller<'_, HostState>| -> i32 {
        status::NOT_FOUND
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Caller<'_, HostState>, rc: i32, rp: i32, rl: i32| -> Result<i32> {
            let (code, msg) = c.data().status.clone();
            if let Err(s) = write_u32(&mut c, rc, code) {
                return Ok(s);
            }
            return_bytes(&mut c, &msg, rp, rl)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |c: Caller<'_, HostState>, np: i32, nl: i32, ap: i32, al: i32, _rp: i32, _rl: i32| -> i32 {
            // No foreign functions yet: every name is unknown (arguments are
            // checked first, as in the reference host).
            match super::with_bytes(&c, np, nl, |_| ()).and(super::with_bytes(&c, ap, al, |_| ())) {
                Ok(()) => status::NOT_FOUND,
                Err(s) => s,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, HostState>, pp: i32, pl: i32, rp: i32, rl: i32| -> Result<i32> {
            // The path is read where it lies, and the value copied out
            // through the instance's scratch buffer: no allocation.
            let mut value = std::mem::take(&mut c.data_mut().scratch);
            value.clear();
            let found = with_bytes(&c, pp, pl, |path| {
                properties::get(c.data(), path).map(|v| value.extend_from_slice(&v))
            });
            let r = match found {
                Err(s) => Ok(s),
                Ok(Ok(())) => return_bytes(&mut c, &value, rp, rl),
                Ok(Err(PropertyError::NotFound)) => Ok(status::NOT_FOUND),
                Ok(Err(PropertyError::BadArgument)) => Ok(status::BAD_ARGUMENT),
            };
            c.data_mut().scratch = value;
            r
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Caller<'_, HostState>, pp: i32, pl: i32, vp: i32, vl: i32| -> i32 {
            // Read where they lie in the guest's memory: nothing copied.
            let Some(memory) = c.data().memory else {
                return status::INTERNAL_FAILURE;
            };
            let (data, state) = memory.data_and_store_mut(&mut c);
            let data = &*data;
            let (path, value) =
                match guest_range(data, pp, pl).and_then(|p| Ok((p, guest_range(data, vp, vl)?))) {
                    Ok(x) => x,
                    Err(s) => return s,
                };
            match properties::set(state, path, value) {
                Ok(()) => status::OK,
                Err(PropertyError::NotFound) => status::NOT_FOUND,
                Err(PropertyError::BadArgument) => status::BAD_ARGUMENT,
            }
        },
    )?;
    Ok(())
}
