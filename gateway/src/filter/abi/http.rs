//! Stream control: local responses, resuming and closing streams, callouts.

use std::time::Duration;

use bytes::Bytes;
use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::headers::over_map_bounds;
use super::{
    decode_pairs, for_each_pair, guest_range, read_bytes, read_string, status, status_of,
    stream_type, write_u32, GuestResult,
};
use crate::filter::state::{Effects, HostState, LocalResponse, PendingCall};

/// Most callouts one guest callback may start.
const MAX_CALLS_PER_CALLBACK: usize = 64;

/// Applies `f` to the effects of the effective context: this call's own, or
/// those of another live HTTP context of the instance (woken afterwards).
fn with_effects(state: &mut HostState, f: impl FnOnce(&mut Effects)) -> i32 {
    if state.effective == state.current || state.effective == crate::filter::state::ROOT_CONTEXT {
        f(&mut state.effects);
        return status::OK;
    }
    match state.signals.get_mut(&state.effective) {
        Some(slot) => {
            let signal = slot.get_or_insert_with(Default::default);
            f(&mut signal.effects.lock().unwrap_or_else(|p| p.into_inner()));
            signal.notify.notify_one();
            status::OK
        }
        None => status::NOT_FOUND,
    }
}

fn header_pairs(c: &Caller<'_, HostState>, p: i32, l: i32) -> GuestResult<Vec<(String, Vec<u8>)>> {
    let pairs = decode_pairs(&read_bytes(c, p, l)?).ok_or(status::BAD_ARGUMENT)?;
    // The same bound as a header map a filter changes.
    let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if over_map_bounds(pairs.len(), bytes) {
        return Err(status::INTERNAL_FAILURE);
    }
    Ok(pairs)
}

/// A local answer's header fields, each checked and made a field once:
/// malformed pairs or an invalid name or value are `BAD_ARGUMENT`, more
/// than a header map may hold `INTERNAL_FAILURE` (as [`header_pairs`]).
/// The map has room for the two fields the server may add (`date` and
/// `content-length` over HTTP/2), so it is not grown for them.
fn header_fields(data: &[u8]) -> GuestResult<http::HeaderMap> {
    let (mut fields, mut count, mut bytes, mut valid) = (http::HeaderMap::new(), 0, 0, true);
    for_each_pair(data, |k, v| {
        count += 1;
        bytes += k.len() + v.len();
        match (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) {
            (Ok(k), Ok(v)) => {
                fields.append(k, v);
            }
            _ => valid = false,
        }
        Some(())
    })
    .ok_or(status::BAD_ARGUMENT)?;
    if over_map_bounds(count, bytes) {
        return Err(status::INTERNAL_FAILURE);
    }
    if !valid {
        return Err(status::BAD_ARGUMENT);
    }
    fields.reserve(2);
    Ok(fields)
}

/// Most bytes of a local answer's encoded fields (kept with the fields made
/// of them), and of its body, an instance keeps for its next answer.
const KEPT_ANSWER_BYTES: usize = 4096;

/// The fields of a local answer, `raw` in the guest's memory. A filter
/// tends to answer with the same fields request after request (a 401 and
/// its challenge): the instance keeps the last encoded map it sent with
/// the fields made of it, and the same bytes again are a copy of those
/// fields, not a second parse and check.
fn answer_fields(state: &mut HostState, raw: &[u8]) -> GuestResult<http::HeaderMap> {
    if let Some((seen, fields)) = &state.last_answer_fields {
        if **seen == *raw {
            return Ok(fields.clone());
        }
    }
    let fields = header_fields(raw)?;
    if raw.len() <= KEPT_ANSWER_BYTES {
        state.last_answer_fields = Some((Box::from(raw), fields.clone()));
    }
    Ok(fields)
}

/// The body of a local answer, `raw` in the guest's memory. As with its
/// fields, the instance keeps its last body: the same bytes again are that
/// body shared, not a fresh copy.
fn answer_body(state: &mut HostState, raw: &[u8]) -> Bytes {
    if let Some(seen) = &state.last_answer_body {
        if **seen == *raw {
            return seen.clone();
        }
    }
    let body = Bytes::copy_from_slice(raw);
    if raw.len() <= KEPT_ANSWER_BYTES {
        state.last_answer_body = Some(body.clone());
    }
    body
}

fn local_response(c: &mut Caller<'_, HostState>, args: [i32; 7]) -> GuestResult<LocalResponse> {
    let [code, dp, dl, bp, bl, hp, hl] = args;
    if !(100..=599).contains(&code) {
        return Err(status::BAD_ARGUMENT);
    }
    let memory = c.data().memory.ok_or(status::INTERNAL_FAILURE)?;
    let (data, state) = memory.data_and_store_mut(&mut *c);
    // Only a debug line shows the details: copied only for it, but
    // bounds-checked always, as the body and the fields are.
    let details = guest_range(data, dp, dl)?;
    let details = if tracing::enabled!(tracing::Level::DEBUG) {
        String::from_utf8_lossy(details).into_owned()
    } else {
        String::new()
    };
    let body = answer_body(state, guest_range(data, bp, bl)?);
    let headers = answer_fields(state, guest_range(data, hp, hl)?)?;
    Ok(LocalResponse {
        status: code as u16,
        details,
        body,
        headers,
    })
}

fn callout(c: &Caller<'_, HostState>, args: [i32; 9]) -> GuestResult<PendingCall> {
    let [up, ul, hp, hl, bp, bl, _tp, _tl, timeout] = args;
    let cluster = read_string(c, up, ul)?;
    let headers = header_pairs(c, hp, hl)?;
    // A callout body is held until sent: bounded as a buffered body is.
    if bl as u32 as u64 > c.data().filter.config.body_buffer_limit.as_u64() {
        return Err(status::INTERNAL_FAILURE);
    }
    let body = Bytes::from(read_bytes(c, bp, bl)?);
    let st = c.data();
    if !st.host.callouts.has_cluster(&cluster) {
        return Err(status::BAD_ARGUMENT);
    }
    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (Some(method), Some(path), Some(authority)) =
        (pseudo(":method"), pseudo(":path"), pseudo(":authority"))
    else {
        return Err(status::BAD_ARGUMENT);
    };
    let uri = http::Uri::builder()
        .scheme(pseudo(":scheme").as_deref().unwrap_or(b"http"))
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| status::BAD_ARGUMENT)?;
    let mut request = http::Request::builder()
        .method(http::Method::from_bytes(&method).map_err(|_| status::BAD_ARGUMENT)?)
        .uri(uri)
        .body(body)
        .map_err(|_| status::BAD_ARGUMENT)?;
    for (k, v) in headers.iter().filter(|(k, _)| !k.starts_with(':')) {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| status::BAD_ARGUMENT)?;
        let value = http::HeaderValue::from_bytes(v).map_err(|_| status::BAD_ARGUMENT)?;
        request.headers_mut().append(name, value);
    }
    // As Envoy: a negative timeout is refused, 0 means none (here: the
    // filter's max_callout_timeout).
    if timeout < 0 {
        return Err(status::BAD_ARGUMENT);
    }
    let max = st.filter.config.max_callout_timeout;
    let timeout = match timeout {
        0 => max,
        ms => Duration::from_millis(ms as u64).min(max),
    };
    Ok(PendingCall {
        context_id: st.effective,
        token: 0,
        cluster,
        request,
        timeout,
    })
}

fn resume(c: &mut Caller<'_, HostState>, stream: i32) -> i32 {
    match stream {
        stream_type::HTTP_REQUEST => with_effects(c.data_mut(), |e| e.continue_request = true),
        stream_type::HTTP_RESPONSE => with_effects(c.data_mut(), |e| e.continue_response = true),
        // As Envoy outside a TCP filter: downstream is OK with no effect,
        // upstream is not implemented.
        2 => status::OK,
        3 => status::UNIMPLEMENTED,
        _ => status::BAD_ARGUMENT,
    }
}

pub(super) fn add(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Caller<'_, HostState>,
         code: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32|
         -> i32 {
            match local_response(&mut c, [code, dp, dl, bp, bl, hp, hl]) {
                Ok(resp) => with_effects(c.data_mut(), |e| e.local_response = Some(resp)),
                Err(s) => s,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Caller<'_, HostState>, stream: i32| -> i32 { resume(&mut c, stream) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Caller<'_, HostState>, stream: i32| -> i32 {
            match stream {
                0 | 1 => with_effects(c.data_mut(), |e| e.close = true),
                // No TCP filter context: OK with no effect, as in Envoy.
                2 | 3 => status::OK,
                _ => status::BAD_ARGUMENT,
            }
        },
    )?;
    // ABI 0.1/0.2.0 names of the same operations.
    linker.func_wrap(
        "env",
        "proxy_continue_request",
        |mut c: Caller<'_, HostState>| -> i32 { resume(&mut c, 0) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_continue_response",
        |mut c: Caller<'_, HostState>| -> i32 { resume(&mut c, 1) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_clear_route_cache",
        |_c: Caller<'_, HostState>| -> i32 { status::OK },
    )?;
    for name in ["proxy_http_call", "proxy_dispatch_http_call"] {
        linker.func_wrap(
            "env",
            name,
            |mut c: Caller<'_, HostState>,
             up: i32,
             ul: i32,
             hp: i32,
             hl: i32,
             bp: i32,
             bl: i32,
             tp: i32,
             tl: i32,
             timeout: i32,
             rt: i32|
             -> i32 {
                let mut call = match callout(&c, [up, ul, hp, hl, bp, bl, tp, tl, timeout]) {
                    Ok(call) => call,
                    Err(s) => return s,
                };
                let st = c.data_mut();
                // A guest cannot flood the clusters from one callback.
                if st.effects.calls.len() >= MAX_CALLS_PER_CALLBACK {
                    return status::INTERNAL_FAILURE;
                }
                st.next_token = st.next_token.wrapping_add(1).max(1);
                call.token = st.next_token;
                let token = call.token;
                if let Err(s) = write_u32(&mut c, rt, token) {
                    return s;
                }
                c.data_mut().effects.calls.push(call);
                status_of(Ok(()))
            },
        )?;
    }
    Ok(())
}
