//! Header-map hostcalls and the proxy-wasm map wire format.

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::{map_type, read_bytes, read_string, return_bytes, status, with_bytes, GuestResult};
use crate::filter::state::{Headers, HostState};

/// Serializes pairs: count, then (name size, value size) per pair, then each
/// name and value followed by a NUL byte; all integers u32 little-endian.
pub fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let pairs: Vec<(&[u8], &[u8])> = pairs.collect();
    let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + bytes);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in &pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the wire format; `None` when it is malformed.
pub fn decode_pairs(data: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut pairs = Vec::new();
    for_each_pair(data, |key, value| {
        pairs.push((
            String::from_utf8(key.to_vec()).ok()?.to_ascii_lowercase(),
            value.to_vec(),
        ));
        Some(())
    })?;
    Some(pairs)
}

/// Visits the pairs of the wire format in order; `None` when it is
/// malformed or `visit` gives up.
pub fn for_each_pair(data: &[u8], mut visit: impl FnMut(&[u8], &[u8]) -> Option<()>) -> Option<()> {
    if data.is_empty() {
        return Some(());
    }
    let u32_at = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = u32_at(0)?;
    // Each pair takes at least 10 bytes: this bounds `count` by the input.
    if count > data.len() / 10 {
        return None;
    }
    let mut pos = 4 + count * 8;
    for i in 0..count {
        let klen = u32_at(4 + i * 8)?;
        let vlen = u32_at(8 + i * 8)?;
        let key = data.get(pos..pos.checked_add(klen)?)?;
        pos += klen + 1;
        let value = data.get(pos..pos.checked_add(vlen)?)?;
        pos += vlen + 1;
        if pos > data.len() {
            return None;
        }
        visit(key, value)?;
    }
    Some(())
}

/// Most pairs one header map may hold after a guest's change.
pub const MAX_MAP_PAIRS: usize = 1024;
/// Most bytes of names and values one header map may hold after a guest's change.
pub const MAX_MAP_BYTES: usize = 256 << 10;

/// Whether a map of `pairs` pairs holding `bytes` bytes of names and
/// values is beyond what one header map may hold.
pub fn over_map_bounds(pairs: usize, bytes: usize) -> bool {
    pairs > MAX_MAP_PAIRS || bytes > MAX_MAP_BYTES
}

fn map_bytes<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs.map(|(k, v)| k.len() + v.len()).sum()
}

/// The map a read sees: `Ok(None)` when the map exists in the ABI but not
/// here and now (another context's request, no callout answer, gRPC),
/// `Err` for a map type the ABI does not know.
fn readable_map(state: &HostState, map: i32) -> GuestResult<Option<&Headers>> {
    match map {
        map_type::HTTP_CALL_RESPONSE_HEADERS => {
            Ok(state.call_response.as_ref().map(|a| &a.headers))
        }
        map_type::HTTP_CALL_RESPONSE_TRAILERS => {
            Ok(state.call_response.as_ref().map(|a| &a.trailers))
        }
        // gRPC metadata: no gRPC here.
        4 | 5 => Ok(None),
        map_type::HTTP_REQUEST_HEADERS..=map_type::HTTP_RESPONSE_TRAILERS => {
            // Maps of a request are reachable from its own context only.
            let stream = match state.stream.as_deref() {
                Some(s) if state.effective == state.current => s,
                _ => return Ok(None),
            };
            Ok(Some(match map {
                map_type::HTTP_REQUEST_HEADERS => &stream.request_headers,
                map_type::HTTP_REQUEST_TRAILERS => &stream.request_trailers,
                map_type::HTTP_RESPONSE_HEADERS => &stream.response_headers,
                _ => &stream.response_trailers,
            }))
        }
        _ => Err(status::BAD_ARGUMENT),
    }
}

/// The map a write changes. As in Envoy, callout answers and gRPC metadata
/// are read-only and a map not available here is `BAD_ARGUMENT`.
fn writable_map(state: &mut HostState, map: i32) -> GuestResult<&mut Headers> {
    if !(map_type::HTTP_REQUEST_HEADERS..=map_type::HTTP_RESPONSE_TRAILERS).contains(&map)
        || state.effective != state.current
    {
        return Err(status::BAD_ARGUMENT);
    }
    let stream = state.stream.as_deref_mut().ok_or(status::BAD_ARGUMENT)?;
    Ok(match map {
        map_type::HTTP_REQUEST_HEADERS => &mut stream.request_headers,
        map_type::HTTP_REQUEST_TRAILERS => &mut stream.request_trailers,
        map_type::HTTP_RESPONSE_HEADERS => &mut stream.response_headers,
        _ => &mut stream.response_trailers,
    })
}

/// Guest-given header names and values must be valid HTTP.
fn valid(name: &str, value: &[u8]) -> bool {
    let name_ok = name.strip_prefix(':').map_or(name, |n| n);
    http::HeaderName::from_bytes(name_ok.as_bytes()).is_ok()
        && http::HeaderValue::from_bytes(value).is_ok()
}

/// A single-value change: `grows` says whether it may add a pair.
struct WriteOp {
    op: fn(&mut Headers, &str, &[u8]),
    grows: bool,
}

fn write_op(
    caller: &mut Caller<'_, HostState>,
    map_kind: i32,
    kptr: i32,
    klen: i32,
    value: Option<(i32, i32)>,
    write: WriteOp,
) -> i32 {
    let key = match read_string(caller, kptr, klen) {
        Ok(k) => k,
        Err(s) => return s,
    };
    let value = match value.map(|(p, l)| read_bytes(caller, p, l)).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(s) => return s,
    };
    if !valid(&key, &value) {
        return status::BAD_ARGUMENT;
    }
    match writable_map(caller.data_mut(), map_kind) {
        Ok(headers) => {
            // Header growth is bounded per map, not by the guest's memory.
            if write.grows
                && over_map_bounds(
                    headers.len() + 1,
                    map_bytes(headers.iter()) + key.len() + value.len(),
                )
            {
                return status::INTERNAL_FAILURE;
            }
            (write.op)(headers, &key, &value);
            status::OK
        }
        Err(s) => s,
    }
}

pub(super) fn add(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, HostState>, m: i32, rp: i32, rl: i32| -> Result<i32> {
            // An unavailable map reads as empty (OK), as in Envoy.
            let bytes = match readable_map(c.data(), m) {
                Ok(Some(h)) => {
                    if h.is_empty() {
                        Vec::new()
                    } else {
                        encode_pairs(h.iter())
                    }
                }
                Ok(None) => Vec::new(),
                Err(s) => return Ok(s),
            };
            return_bytes(&mut c, &bytes, rp, rl)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Caller<'_, HostState>, m: i32, p: i32, l: i32| -> i32 {
            let pairs = match read_bytes(&c, p, l).map(|b| decode_pairs(&b)) {
                Ok(Some(pairs)) => pairs,
                Ok(None) => return status::BAD_ARGUMENT,
                Err(s) => return s,
            };
            if !pairs.iter().all(|(k, v)| valid(k, v)) {
                return status::BAD_ARGUMENT;
            }
            if over_map_bounds(
                pairs.len(),
                map_bytes(pairs.iter().map(|(k, v)| (k.as_bytes(), &v[..]))),
            ) {
                return status::INTERNAL_FAILURE;
            }
            match writable_map(c.data_mut(), m) {
                Ok(h) => {
                    h.set_all(pairs);
                    status::OK
                }
                Err(s) => s,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32, rp: i32, rl: i32| -> Result<i32> {
            // The key is read in place and the value copied into the
            // instance's scratch buffer: a lookup allocates nothing.
            let mut value = std::mem::take(&mut c.data_mut().scratch);
            value.clear();
            let found = with_bytes(&c, kp, kl, |key| {
                // A name is ASCII; anything else must still be UTF-8. The
                // ASCII check is inlined, where the UTF-8 one is a call.
                if !key.is_ascii() && std::str::from_utf8(key).is_err() {
                    return Err(status::BAD_ARGUMENT);
                }
                // Missing header: NOT_FOUND; map not available: BAD_ARGUMENT.
                match readable_map(c.data(), m)? {
                    Some(h) => match h.get(key) {
                        Some(v) => {
                            value.extend_from_slice(v);
                            Ok(())
                        }
                        None => Err(status::NOT_FOUND),
                    },
                    None => Err(status::BAD_ARGUMENT),
                }
            })
            .and_then(|r| r);
            let r = match found {
                Ok(()) => return_bytes(&mut c, &value, rp, rl),
                Err(s) => Ok(s),
            };
            // Kept for the next lookup unless a huge value made it large.
            if value.capacity() <= 16 << 10 {
                c.data_mut().scratch = value;
            }
            r
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32| -> i32 {
            let write = WriteOp {
                op: |h, k, _| h.remove(k),
                grows: false,
            };
            write_op(&mut c, m, kp, kl, None, write)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            let write = WriteOp {
                op: Headers::replace,
                grows: true,
            };
            write_op(&mut c, m, kp, kl, Some((vp, vl)), write)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            let write = WriteOp {
                op: Headers::add,
                grows: true,
            };
            write_op(&mut c, m, kp, kl, Some((vp, vl)), write)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Caller<'_, HostState>, m: i32, rp: i32| -> i32 {
            // Envoy's byteSize(): the bytes of names and values.
            let size = match writable_map(c.data_mut(), m) {
                Ok(h) => map_bytes(h.iter()),
                Err(s) => return s,
            };
            super::status_of(super::write_u32(&mut c, rp, size as u32))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_reject_garbage() {
        let pairs = [(b":path".as_slice(), b"/a".as_slice()), (b"x-a", b"")];
        let wire = encode_pairs(pairs.iter().copied());
        let back = decode_pairs(&wire).expect("decodes");
        assert_eq!(
            back,
            vec![
                (":path".to_string(), b"/a".to_vec()),
                ("x-a".to_string(), Vec::new())
            ]
        );
        assert!(decode_pairs(&wire[..wire.len() - 3]).is_none());
        assert!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
