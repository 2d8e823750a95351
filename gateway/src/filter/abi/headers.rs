//! Header-map hostcalls and the proxy-wasm map wire format.

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::{map_type, read_bytes, read_string, return_bytes, status, GuestResult};
use crate::filter::state::{Headers, HostState};

/// Serializes pairs: count, then (name size, value size) per pair, then each
/// name and value followed by a NUL byte; all integers u32 little-endian.
pub fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let (count, bytes) = pairs.clone().fold((0usize, 0usize), |(c, b), (k, v)| {
        (c + 1, b + k.len() + v.len() + 2)
    });
    let mut out = Vec::with_capacity(4 + count * 8 + bytes);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
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
    if data.is_empty() {
        return Some(Vec::new());
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
    let mut pairs = Vec::with_capacity(count);
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
        pairs.push((
            String::from_utf8(key.to_vec()).ok()?.to_ascii_lowercase(),
            value.to_vec(),
        ));
    }
    Some(pairs)
}

fn map(state: &mut HostState, map: i32) -> GuestResult<&mut Headers> {
    if map == map_type::HTTP_CALL_RESPONSE_HEADERS || map == map_type::HTTP_CALL_RESPONSE_TRAILERS {
        let answer = state.call_response.as_mut().ok_or(status::NOT_FOUND)?;
        return Ok(if map == map_type::HTTP_CALL_RESPONSE_HEADERS {
            &mut answer.headers
        } else {
            &mut answer.trailers
        });
    }
    // Maps of a request are reachable from its own context only.
    if state.effective != state.current {
        return Err(status::NOT_FOUND);
    }
    let stream = state.stream.as_deref_mut().ok_or(status::NOT_FOUND)?;
    match map {
        map_type::HTTP_REQUEST_HEADERS => Ok(&mut stream.request_headers),
        map_type::HTTP_REQUEST_TRAILERS => Ok(&mut stream.request_trailers),
        map_type::HTTP_RESPONSE_HEADERS => Ok(&mut stream.response_headers),
        map_type::HTTP_RESPONSE_TRAILERS => Ok(&mut stream.response_trailers),
        _ => Err(status::BAD_ARGUMENT),
    }
}

/// Guest-given header names and values must be valid HTTP.
fn valid(name: &str, value: &[u8]) -> bool {
    let name_ok = name.strip_prefix(':').map_or(name, |n| n);
    http::HeaderName::from_bytes(name_ok.as_bytes()).is_ok()
        && http::HeaderValue::from_bytes(value).is_ok()
}

fn write_op(
    caller: &mut Caller<'_, HostState>,
    map_kind: i32,
    kptr: i32,
    klen: i32,
    value: Option<(i32, i32)>,
    op: fn(&mut Headers, &str, &[u8]),
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
    match map(caller.data_mut(), map_kind) {
        Ok(headers) => {
            op(headers, &key, &value);
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
            let bytes = match map(c.data_mut(), m) {
                Ok(h) => encode_pairs(h.pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_slice()))),
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
            match map(c.data_mut(), m) {
                Ok(h) => {
                    h.pairs = pairs;
                    h.dirty = true;
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
            let key = match read_string(&c, kp, kl) {
                Ok(k) => k,
                Err(s) => return Ok(s),
            };
            let value = match map(c.data_mut(), m) {
                Ok(h) => match h.get(&key) {
                    Some(v) => v.to_vec(),
                    None => return Ok(status::NOT_FOUND),
                },
                Err(s) => return Ok(s),
            };
            return_bytes(&mut c, &value, rp, rl)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32| -> i32 {
            write_op(&mut c, m, kp, kl, None, |h, k, _| h.remove(k))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            write_op(&mut c, m, kp, kl, Some((vp, vl)), Headers::replace)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Caller<'_, HostState>, m: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            write_op(&mut c, m, kp, kl, Some((vp, vl)), Headers::add)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Caller<'_, HostState>, m: i32, rp: i32| -> i32 {
            let size = match map(c.data_mut(), m) {
                Ok(h) => {
                    h.pairs
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 10)
                        .sum::<usize>()
                        + 4
                }
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
