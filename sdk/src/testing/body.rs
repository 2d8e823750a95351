//! Feeding a body to a filter chunk by chunk, as a proxy-wasm host does:
//! a chunk the filter pauses on stays buffered and the next callback sees
//! everything held so far; `Continue` releases it.

use super::host::{MockHost, StreamState};
use crate::abi::action;

/// Which body of the exchange.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Request,
    Response,
}

impl Side {
    fn parts(self, s: &mut StreamState) -> (&mut Vec<u8>, &mut Vec<u8>, &mut bool) {
        match self {
            Side::Request => (
                &mut s.request_body,
                &mut s.request_body_out,
                &mut s.request_body_held,
            ),
            Side::Response => (
                &mut s.response_body,
                &mut s.response_body_out,
                &mut s.response_body_held,
            ),
        }
    }
}

/// Delivers `body` in chunks of `chunk` bytes through `callback(size, eos)`.
/// With `trailers` to follow, no chunk ends the stream (as in a real host).
/// Returns true if the filter paused at the end of the body (it waits for a
/// callout); stops early when the filter answered locally.
pub(super) fn feed(
    host: &MockHost,
    side: Side,
    body: &[u8],
    chunk: usize,
    trailers: bool,
    mut callback: impl FnMut(usize, bool) -> u32,
) -> bool {
    let chunk = chunk.max(1);
    let count = body.len().div_ceil(chunk).max(1);
    for n in 0..count {
        let piece = body
            .get(n * chunk..((n + 1) * chunk).min(body.len()))
            .unwrap_or(&[]);
        let last = n + 1 == count;
        let eos = last && !trailers;
        let size = {
            let mut stream = host.stream();
            let (held, _, _) = side.parts(&mut stream);
            held.extend_from_slice(piece);
            held.len()
        };
        let action = callback(size, eos);
        let mut stream = host.stream();
        if stream.local_response.is_some() {
            return false;
        }
        let (held, out, was_held) = side.parts(&mut stream);
        if action == action::PAUSE {
            *was_held = true;
            if eos {
                return true;
            }
            if last {
                // Held until the trailers end the message.
                return false;
            }
        } else {
            out.append(held);
        }
    }
    false
}

/// Sends on what the host still holds of `side`'s body (the trailers
/// ended the message).
pub(super) fn release(host: &MockHost, side: Side) {
    let mut stream = host.stream();
    let (held, out, _) = side.parts(&mut stream);
    out.append(held);
}
