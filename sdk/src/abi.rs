//! Wire-level constants and encodings of the proxy-wasm ABI v0.2.1.
//!
//! Values follow the spec (`abi-versions/v0.2.1/README.md`) and the official
//! Rust SDK's `types.rs`; nothing here is visible to filter authors.

/// `proxy_result_t` values the SDK reacts to.
pub(crate) mod status {
    pub const OK: u32 = 0;
    pub const NOT_FOUND: u32 = 1;
    pub const CAS_MISMATCH: u32 = 8;
    /// A shared queue with no message.
    pub const EMPTY: u32 = 7;
}

/// Values returned from `proxy_on_request_headers` and friends.
pub(crate) mod action {
    pub const CONTINUE: u32 = 0;
    pub const PAUSE: u32 = 1;
}

/// `proxy_map_type_t`.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MapType {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    CalloutResponseHeaders = 6,
}

/// `proxy_buffer_type_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BufferType {
    RequestBody = 0,
    ResponseBody = 1,
    CalloutResponseBody = 4,
    PluginConfiguration = 7,
}

/// `proxy_stream_type_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum StreamType {
    Request = 0,
}

/// `proxy_metric_type_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MetricKind {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// Encodes header pairs as the ABI's map: a little-endian u32 count, then a
/// (key length, value length) u32 pair per entry, then each key and value
/// followed by a NUL byte.
pub(crate) fn encode_map(pairs: &[(String, String)]) -> Vec<u8> {
    with_encoded_map(pairs, <[u8]>::to_vec)
}

/// Runs `f` on `pairs` in the ABI's map encoding ([`encode_map`]'s), built
/// in a buffer the module keeps for it: a local response or a callout
/// costs no allocation for its encoded headers.
pub(crate) fn with_encoded_map<R>(pairs: &[(String, String)], f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    // Kept between uses up to this size; a larger map's buffer goes.
    const KEEP: usize = 16 << 10;
    let mut out = SCRATCH.with(std::cell::Cell::take);
    out.clear();
    out.reserve(
        4 + pairs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 10)
            .sum::<usize>(),
    );
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    let r = f(&out);
    if out.capacity() <= KEEP {
        SCRATCH.with(|cell| cell.set(out));
    }
    r
}

/// Decodes the ABI's map encoding. Malformed input (from a buggy host) yields
/// the entries decoded so far instead of a panic.
pub(crate) fn decode_map(bytes: &[u8]) -> Vec<(String, String)> {
    let read_u32 = |at: usize| -> Option<usize> {
        let raw = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    };
    let Some(count) = read_u32(0) else {
        return Vec::new();
    };
    let mut pairs = Vec::with_capacity(count.min(1024));
    let mut data = 4usize.saturating_add(count.saturating_mul(8));
    for n in 0..count {
        let (Some(klen), Some(vlen)) = (read_u32(4 + n * 8), read_u32(8 + n * 8)) else {
            break;
        };
        let Some(key) = bytes.get(data..data + klen) else {
            break;
        };
        data += klen + 1;
        let Some(value) = bytes.get(data..data + vlen) else {
            break;
        };
        data += vlen + 1;
        pairs.push((lossy(key), lossy(value)));
    }
    pairs
}

/// Text the host sent, invalid UTF-8 replaced (header values may hold
/// any byte). Valid text, the usual case, is checked and copied once.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// [`lossy`] for a buffer the string may keep: no copy when it is valid.
pub(crate) fn lossy_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Property paths travel as their segments joined by NUL bytes. Paths are
/// short (`gateway.upstream` is set on every routed request): they are
/// encoded on the stack, and only a long one allocates.
pub(crate) fn with_encoded_path<R>(path: &[&str], f: impl FnOnce(&[u8]) -> R) -> R {
    // The gateway's own properties, which filters set on every request
    // (`Request::set_upstream`), are encoded already.
    match path {
        ["gateway", "upstream"] => return f(b"gateway\0upstream"),
        ["gateway", "hash_key"] => return f(b"gateway\0hash_key"),
        _ => {}
    }
    let len = path.iter().map(|s| s.len()).sum::<usize>() + path.len().saturating_sub(1);
    // Small enough to be zeroed by a few stores (a larger array becomes a
    // bulk fill, which costs more than the copy it saves).
    let mut stack = [0u8; 48];
    let Some(buf) = stack.get_mut(..len) else {
        return f(path.join("\0").as_bytes());
    };
    let mut at = 0;
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            at += 1; // the NUL separator, already zero
        }
        buf[at..at + segment.len()].copy_from_slice(segment.as_bytes());
        at += segment.len();
    }
    f(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_with_nul_separators_known_or_not() {
        for path in [
            &["gateway", "upstream"][..],
            &["gateway", "hash_key"],
            &["source", "address"],
            &[
                "request",
                "headers",
                "x-long-name-past-the-stack-buffer-of-forty-eight",
            ],
        ] {
            assert_eq!(
                with_encoded_path(path, <[u8]>::to_vec),
                path.join("\0").into_bytes(),
                "{path:?}"
            );
        }
    }

    #[test]
    fn map_round_trips() {
        let pairs = vec![
            (":path".to_string(), "/ping".to_string()),
            ("x-empty".to_string(), String::new()),
        ];
        assert_eq!(decode_map(&encode_map(&pairs)), pairs);
    }

    #[test]
    fn paths_are_segments_joined_by_nul_short_or_long() {
        assert_eq!(
            with_encoded_path(&["gateway", "upstream"], <[u8]>::to_vec),
            b"gateway\0upstream"
        );
        assert_eq!(with_encoded_path(&["one"], <[u8]>::to_vec), b"one");
        assert_eq!(with_encoded_path(&[], <[u8]>::to_vec), b"");
        let long = "x".repeat(100);
        let expected = format!("{long}\0{long}");
        assert_eq!(
            with_encoded_path(&[&long, &long], <[u8]>::to_vec),
            expected.as_bytes()
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        assert_eq!(lossy(b"ok"), "ok");
        assert_eq!(lossy(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(lossy_owned(b"ok".to_vec()), "ok");
        assert_eq!(lossy_owned(b"a\xffb".to_vec()), "a\u{fffd}b");
    }

    #[test]
    fn truncated_map_does_not_panic() {
        let bytes = encode_map(&[("a".into(), "b".into())]);
        for cut in 0..bytes.len() {
            let _ = decode_map(&bytes[..cut]);
        }
    }
}
