//! Shared data, shared queues and metrics hostcalls.

use bytes::Bytes;
use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::{read_bytes, read_string, return_bytes, status, status_of, write_bytes, write_u32};
use crate::filter::metrics::MetricKind;
use crate::filter::shared_data::{CasError, QueueError};
use crate::filter::state::HostState;

/// Longest shared-queue name.
const MAX_QUEUE_NAME: usize = 256;

pub(super) fn add(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Caller<'_, HostState>,
         kp: i32,
         kl: i32,
         rp: i32,
         rl: i32,
         rcas: i32|
         -> Result<i32> {
            let key = match read_string(&c, kp, kl) {
                Ok(k) => k,
                Err(s) => return Ok(s),
            };
            let st = c.data();
            let Some((value, cas)) = st.host.shared_data.get(&st.filter.vm_id, &key) else {
                return Ok(status::NOT_FOUND);
            };
            if let Err(s) = write_u32(&mut c, rcas, cas) {
                return Ok(s);
            }
            return_bytes(&mut c, &value, rp, rl)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |c: Caller<'_, HostState>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> i32 {
            let (key, value) =
                match read_string(&c, kp, kl).and_then(|k| Ok((k, read_bytes(&c, vp, vl)?))) {
                    Ok(kv) => kv,
                    Err(s) => return s,
                };
            let st = c.data();
            match st
                .host
                .shared_data
                .set(&st.filter.vm_id, &key, Bytes::from(value), cas as u32)
            {
                Ok(()) => status::OK,
                Err(CasError::Mismatch) => status::CAS_MISMATCH,
                Err(CasError::TooLarge) => status::INTERNAL_FAILURE,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Caller<'_, HostState>, np: i32, nl: i32, rid: i32| -> i32 {
            // Queue names are kept for the queue's life: bounded.
            if nl as u32 as usize > MAX_QUEUE_NAME {
                return status::BAD_ARGUMENT;
            }
            let name = match read_string(&c, np, nl) {
                Ok(n) => n,
                Err(s) => return s,
            };
            let st = c.data();
            match st
                .host
                .queues
                .register(&st.filter.vm_id, &name, st.queue_waker.clone())
            {
                Ok(id) => status_of(write_u32(&mut c, rid, id)),
                Err(QueueError::Full) => status::INTERNAL_FAILURE,
                Err(QueueError::NotFound) => status::NOT_FOUND,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Caller<'_, HostState>, vp: i32, vl: i32, np: i32, nl: i32, rid: i32| -> i32 {
            let (vm_id, name) =
                match read_string(&c, vp, vl).and_then(|v| Ok((v, read_string(&c, np, nl)?))) {
                    Ok(x) => x,
                    Err(s) => return s,
                };
            let vm_id = if vm_id.is_empty() {
                c.data().filter.vm_id.clone()
            } else {
                vm_id
            };
            match c.data().host.queues.resolve(&vm_id, &name) {
                Some(id) => status_of(write_u32(&mut c, rid, id)),
                None => status::NOT_FOUND,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |c: Caller<'_, HostState>, id: i32, vp: i32, vl: i32| -> i32 {
            let value = match read_bytes(&c, vp, vl) {
                Ok(v) => v,
                Err(s) => return s,
            };
            match c.data().host.queues.enqueue(id as u32, Bytes::from(value)) {
                Ok(()) => status::OK,
                Err(QueueError::Full) => status::INTERNAL_FAILURE,
                Err(QueueError::NotFound) => status::NOT_FOUND,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Caller<'_, HostState>, id: i32, rp: i32, rl: i32| -> Result<i32> {
            // Only the filter's own queues can be drained.
            let st = c.data();
            match st.host.queues.dequeue(&st.filter.vm_id, id as u32) {
                Ok(Some(v)) => return_bytes(&mut c, &v, rp, rl),
                Ok(None) => Ok(status::EMPTY),
                Err(_) => Ok(status::NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, HostState>, kind: i32, np: i32, nl: i32, rid: i32| -> i32 {
            let Some(kind) = MetricKind::from_abi(kind) else {
                return status::BAD_ARGUMENT;
            };
            // Checked before anything is copied out of the guest.
            if nl as u32 as usize > crate::filter::metrics::MAX_METRIC_NAME {
                return status::BAD_ARGUMENT;
            }
            let name = match read_string(&c, np, nl) {
                Ok(n) => n,
                Err(s) => return s,
            };
            let st = c.data();
            match st.host.metrics.define(&st.filter.vm_id, &name, kind) {
                Ok(id) => status_of(write_u32(&mut c, rid, id)),
                Err(s) => s,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Caller<'_, HostState>, id: i32, delta: i64| -> i32 {
            let st = c.data();
            status_of(
                st.host
                    .metrics
                    .increment(&st.filter.vm_id, id as u32, delta),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Caller<'_, HostState>, id: i32, value: i64| -> i32 {
            let st = c.data();
            status_of(
                st.host
                    .metrics
                    .record(&st.filter.vm_id, id as u32, value as u64),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Caller<'_, HostState>, id: i32, rp: i32| -> i32 {
            let st = c.data();
            match st.host.metrics.get(&st.filter.vm_id, id as u32) {
                Ok(v) => status_of(write_bytes(&mut c, rp, &v.to_le_bytes())),
                Err(s) => s,
            }
        },
    )?;
    Ok(())
}
