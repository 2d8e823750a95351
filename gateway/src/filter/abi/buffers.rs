//! Buffer hostcalls: bodies, callout answers, VM and plugin configuration.

use bytes::BytesMut;
use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::{buffer_type, read_bytes, return_bytes, status};
use crate::filter::state::HostState;

fn readable(state: &HostState, kind: i32) -> Result<&[u8], i32> {
    let own_stream = || {
        if state.effective != state.current {
            return Err(status::NOT_FOUND);
        }
        state.stream.as_deref().ok_or(status::NOT_FOUND)
    };
    match kind {
        buffer_type::HTTP_REQUEST_BODY => Ok(&own_stream()?.request_body[..]),
        buffer_type::HTTP_RESPONSE_BODY => Ok(&own_stream()?.response_body[..]),
        buffer_type::HTTP_CALL_RESPONSE_BODY => state
            .call_response
            .as_ref()
            .map(|a| &a.body[..])
            .ok_or(status::NOT_FOUND),
        buffer_type::VM_CONFIGURATION => Ok(&state.filter.vm_config[..]),
        buffer_type::PLUGIN_CONFIGURATION => Ok(&state.filter.plugin_config[..]),
        2 | 3 | 5 | 8 => Err(status::NOT_FOUND),
        _ => Err(status::BAD_ARGUMENT),
    }
}

fn writable(state: &mut HostState, kind: i32) -> Result<&mut BytesMut, i32> {
    match kind {
        buffer_type::HTTP_REQUEST_BODY | buffer_type::HTTP_RESPONSE_BODY => {}
        // Configuration and callout answers are read-only (as in Envoy).
        buffer_type::HTTP_CALL_RESPONSE_BODY
        | buffer_type::VM_CONFIGURATION
        | buffer_type::PLUGIN_CONFIGURATION => return Err(status::BAD_ARGUMENT),
        2 | 3 | 5 | 8 => return Err(status::NOT_FOUND),
        _ => return Err(status::BAD_ARGUMENT),
    }
    if state.effective != state.current {
        return Err(status::NOT_FOUND);
    }
    let stream = state.stream.as_deref_mut().ok_or(status::NOT_FOUND)?;
    Ok(if kind == buffer_type::HTTP_REQUEST_BODY {
        &mut stream.request_body
    } else {
        &mut stream.response_body
    })
}

/// The length a buffer would have after `splice(buf, start, size, data)`.
fn spliced_len(len: usize, start: usize, size: usize, data: usize) -> usize {
    let start = start.min(len);
    let end = start.saturating_add(size).min(len);
    len - (end - start) + data
}

/// Replaces `size` bytes at `start` with `data` (clamped to the buffer).
fn splice(buf: &mut BytesMut, start: usize, size: usize, data: &[u8]) {
    let start = start.min(buf.len());
    let end = start.saturating_add(size).min(buf.len());
    let tail = buf.split_off(end);
    buf.truncate(start);
    buf.extend_from_slice(data);
    buf.extend_from_slice(&tail);
}

pub(super) fn add(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, HostState>,
         kind: i32,
         start: i32,
         max: i32,
         rp: i32,
         rl: i32|
         -> Result<i32> {
            let bytes = match readable(c.data(), kind) {
                Ok(b) => {
                    let start = (start as u32 as usize).min(b.len());
                    let end = start.saturating_add(max as u32 as usize).min(b.len());
                    b[start..end].to_vec()
                }
                Err(s) => return Ok(s),
            };
            // As the reference host: nothing to read is OK, without calling
            // the guest's allocator or touching the out-pointers (SDKs pass
            // scratch or even bogus pointers when they know the size is 0).
            if bytes.is_empty() {
                return Ok(status::OK);
            }
            return_bytes(&mut c, &bytes, rp, rl)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Caller<'_, HostState>, kind: i32, start: i32, size: i32, p: i32, l: i32| -> i32 {
            let data = match read_bytes(&c, p, l) {
                Ok(d) => d,
                Err(s) => return s,
            };
            let limit = c.data().filter.config.body_buffer_limit.as_u64() as usize;
            let (start, size) = (start as u32 as usize, size as u32 as usize);
            match writable(c.data_mut(), kind) {
                // A body never grows past the filter's body_buffer_limit.
                Ok(buf) if spliced_len(buf.len(), start, size, data.len()) > limit => {
                    status::INTERNAL_FAILURE
                }
                Ok(buf) => {
                    splice(buf, start, size, &data);
                    status::OK
                }
                Err(s) => s,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: Caller<'_, HostState>, kind: i32, rs: i32, rf: i32| -> i32 {
            let size = match readable(c.data(), kind) {
                Ok(b) => b.len() as u32,
                Err(s) => return s,
            };
            let r =
                super::write_u32(&mut c, rs, size).and_then(|()| super::write_u32(&mut c, rf, 0));
            super::status_of(r)
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_prepends_appends() {
        let mut b = BytesMut::from(&b"hello"[..]);
        splice(&mut b, 0, 0, b">");
        assert_eq!(&b[..], b">hello");
        splice(&mut b, 100, 0, b"<");
        assert_eq!(&b[..], b">hello<");
        splice(&mut b, 0, usize::MAX, b"x");
        assert_eq!(&b[..], b"x");
        assert_eq!(spliced_len(5, 0, 0, 1), 6);
        assert_eq!(spliced_len(5, 2, usize::MAX, 0), 2);
        assert_eq!(spliced_len(5, 99, 3, 4), 9);
    }
}
