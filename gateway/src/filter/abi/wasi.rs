//! The WASI subset SDKs pull in, for `wasi_snapshot_preview1` and
//! `wasi_unstable`: no files, no environment, no arguments.

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::{read_bytes, with_bytes, write_bytes, write_u32};
use crate::filter::state::HostState;

pub const ESUCCESS: i32 = 0;
pub const EBADF: i32 = 8;
pub const EFAULT: i32 = 21;
pub const EINVAL: i32 = 28;
pub const ENOSYS: i32 = 52;

/// `fd_write` to stdout/stderr goes to the log, one entry per call, at
/// most `MAX_LOG_LINE` bytes of it (the rest is counted as written, so the
/// guest does not retry). stderr logs at error level, as the reference host.
fn fd_write(c: &mut Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, rp: i32) -> i32 {
    if fd != 1 && fd != 2 {
        return EBADF;
    }
    if !(0..=1024).contains(&n) {
        return EINVAL;
    }
    let cap = super::misc::MAX_LOG_LINE;
    let mut text = Vec::new();
    let mut written: u32 = 0;
    for i in 0..n {
        let Ok(iov) = read_bytes(c, iovs.wrapping_add(i * 8), 8) else {
            return EFAULT;
        };
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        if len == 0 {
            continue;
        }
        let room = cap - text.len();
        // Every buffer is bounds-checked; only what fits the line is copied.
        let Ok(()) = with_bytes(c, ptr, len, |b| {
            text.extend_from_slice(&b[..b.len().min(room)])
        }) else {
            return EFAULT;
        };
        written = written.wrapping_add(len as u32);
    }
    let msg = String::from_utf8_lossy(&text);
    let msg = msg.trim_end();
    if !msg.is_empty() {
        super::misc::log(
            &c.data().filter.config.name,
            if fd == 1 { 2 } else { 4 },
            msg,
        );
    }
    if write_u32(c, rp, written).is_err() {
        return EFAULT;
    }
    ESUCCESS
}

pub(super) fn add(linker: &mut Linker<HostState>, m: &str) -> Result<()> {
    linker.func_wrap(
        m,
        "fd_write",
        |mut c: Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, rp: i32| -> i32 {
            fd_write(&mut c, fd, iovs, n, rp)
        },
    )?;
    linker.func_wrap(
        m,
        "fd_read",
        |_c: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    )?;
    // fd_close and fd_seek succeed without effect, as in the reference host.
    linker.func_wrap(m, "fd_close", |_c: Caller<'_, HostState>, _: i32| -> i32 {
        ESUCCESS
    })?;
    linker.func_wrap(
        m,
        "fd_seek",
        |_c: Caller<'_, HostState>, _: i32, _: i64, _: i32, _: i32| -> i32 { ESUCCESS },
    )?;
    linker.func_wrap(
        m,
        "fd_fdstat_get",
        |mut c: Caller<'_, HostState>, fd: i32, rp: i32| -> i32 {
            // As the reference host: stdout and stderr only, with the
            // right to write (fs_rights_base = FD_WRITE).
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let mut stat = [0u8; 24];
            stat[8] = 64;
            if write_bytes(&mut c, rp, &stat).is_err() {
                return EFAULT;
            }
            ESUCCESS
        },
    )?;
    linker.func_wrap(
        m,
        "clock_time_get",
        |mut c: Caller<'_, HostState>, id: i32, _precision: i64, rp: i32| -> i32 {
            let now = match id {
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                1 => monotonic_nanos(),
                _ => return EINVAL,
            };
            if write_bytes(&mut c, rp, &now.to_le_bytes()).is_err() {
                return EFAULT;
            }
            ESUCCESS
        },
    )?;
    linker.func_wrap(
        m,
        "random_get",
        |mut c: Caller<'_, HostState>, p: i32, l: i32| -> i32 {
            if !(0..=65536).contains(&l) {
                return EINVAL;
            }
            let mut buf = vec![0u8; l as usize];
            rand::Rng::fill(&mut rand::rng(), &mut buf[..]);
            if write_bytes(&mut c, p, &buf).is_err() {
                return EFAULT;
            }
            ESUCCESS
        },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(
            m,
            name,
            |mut c: Caller<'_, HostState>, rc: i32, rs: i32| -> i32 {
                if write_u32(&mut c, rc, 0)
                    .and_then(|()| write_u32(&mut c, rs, 0))
                    .is_err()
                {
                    return EFAULT;
                }
                ESUCCESS
            },
        )?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(
            m,
            name,
            |_c: Caller<'_, HostState>, _: i32, _: i32| -> i32 { ESUCCESS },
        )?;
    }
    linker.func_wrap(
        m,
        "proc_exit",
        |_c: Caller<'_, HostState>, code: i32| -> Result<()> {
            // The instance is discarded, as after any trap.
            wasmtime::bail!("guest called proc_exit({code})")
        },
    )?;
    linker.func_wrap(m, "sched_yield", |_c: Caller<'_, HostState>| -> i32 {
        ESUCCESS
    })?;
    Ok(())
}

fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}
