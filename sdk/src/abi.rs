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
    ResponseHeaders = 2,
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
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
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
    out
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
        pairs.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    pairs
}

/// Property paths travel as their segments joined by NUL bytes.
pub(crate) fn encode_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trips() {
        let pairs = vec![
            (":path".to_string(), "/ping".to_string()),
            ("x-empty".to_string(), String::new()),
        ];
        assert_eq!(decode_map(&encode_map(&pairs)), pairs);
    }

    #[test]
    fn truncated_map_does_not_panic() {
        let bytes = encode_map(&[("a".into(), "b".into())]);
        for cut in 0..bytes.len() {
            let _ = decode_map(&bytes[..cut]);
        }
    }
}
