//! Properties (`proxy_get_property` / `proxy_set_property`): paths are
//! NUL-separated segments, e.g. `request\0path`. Integers are 8-byte
//! little-endian, as Envoy serializes them; maps use the header-map format.

use std::borrow::Cow;

use super::abi::encode_pairs;
use super::state::{HostState, StreamState};

/// Why a property could not be read or written.
#[derive(Debug, PartialEq, Eq)]
pub enum PropertyError {
    NotFound,
    /// Known, but not writable (or the value is not acceptable).
    BadArgument,
}

/// Most properties filters may set on one request, and their bytes.
pub const MAX_CUSTOM_PROPERTIES: usize = 64;
pub const MAX_CUSTOM_PROPERTY_BYTES: usize = 64 << 10;

fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// More segments than any path the gateway answers itself has.
const MAX_SEGMENTS: usize = 4;

/// Splits a path into its segments (a trailing NUL is tolerated), in
/// `buf`; none when there are more than it holds (no such path is the
/// gateway's own).
fn segments<'p, 'b>(path: &'p [u8], buf: &'b mut [&'p [u8]; MAX_SEGMENTS]) -> &'b [&'p [u8]] {
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    let mut n = 0;
    for seg in path.split(|b| *b == 0) {
        let Some(slot) = buf.get_mut(n) else {
            return &[];
        };
        *slot = seg;
        n += 1;
    }
    &buf[..n]
}

/// The value of the property at `path`, borrowed from the request where
/// it can be.
pub fn get<'s>(state: &'s HostState, path: &[u8]) -> Result<Cow<'s, [u8]>, PropertyError> {
    let mut buf = [&[][..]; MAX_SEGMENTS];
    let segs = segments(path, &mut buf);
    let f = &state.filter;
    match segs {
        [b"plugin_name"] => return Ok(Cow::Borrowed(f.config.name.as_bytes())),
        [b"plugin_root_id"] => return Ok(Cow::Borrowed(f.root_id.as_bytes())),
        [b"plugin_vm_id"] => return Ok(Cow::Borrowed(f.vm_id.as_bytes())),
        // Readable from the root context too, so `on_configure` can check
        // the cluster names in its configuration.
        [b"gateway", b"clusters"] => return Ok(Cow::Owned(state.host.clusters.encoded())),
        _ => {}
    }
    // The rest belong to a request, visible from its own context only.
    let stream = match state.stream.as_deref() {
        Some(s) if state.effective == state.current => s,
        _ => return Err(PropertyError::NotFound),
    };
    if let Some(value) = stream_property(stream, segs) {
        return Ok(value);
    }
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    stream
        .properties
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| Cow::Borrowed(&v[..]))
        .ok_or(PropertyError::NotFound)
}

fn stream_property<'s>(s: &'s StreamState, segs: &[&[u8]]) -> Option<Cow<'s, [u8]>> {
    let header = |name: &str| s.request_headers.get(name);
    Some(Cow::Owned(match segs {
        [b"request", b"path"] => return header(":path").map(Cow::Borrowed),
        [b"request", b"url_path"] => {
            let path = header(":path")?;
            let end = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
            return Some(Cow::Borrowed(&path[..end]));
        }
        [b"request", b"query"] => {
            let path = header(":path")?;
            let start = path
                .iter()
                .position(|b| *b == b'?')
                .map_or(path.len(), |q| q + 1);
            return Some(Cow::Borrowed(&path[start..]));
        }
        [b"request", b"useragent"] => return header("user-agent").map(Cow::Borrowed),
        [b"request", b"referer"] => return header("referer").map(Cow::Borrowed),
        [b"request", b"host"] => return header(":authority").map(Cow::Borrowed),
        [b"request", b"scheme"] => return header(":scheme").map(Cow::Borrowed),
        [b"request", b"method"] => return header(":method").map(Cow::Borrowed),
        [b"request", b"headers"] => encode_pairs(
            s.request_headers
                .iter()
                .filter(|(k, _)| !k.starts_with(b":")),
        ),
        [b"request", b"headers", name] => {
            return s
                .request_headers
                .get(std::str::from_utf8(name).ok()?)
                .map(Cow::Borrowed)
        }
        [b"request", b"protocol"] => protocol(s.protocol).as_bytes().to_vec(),
        [b"request", b"id"] => s.meta.id.as_bytes().to_vec(),
        [b"source", b"address"] => s.meta.source.to_string().into_bytes(),
        [b"source", b"port"] => int(i64::from(s.meta.source.port())),
        [b"destination", b"address"] => s.meta.destination.to_string().into_bytes(),
        [b"destination", b"port"] => int(i64::from(s.meta.destination.port())),
        // As Envoy: TLS details exist on TLS connections only, the
        // version spelled as OpenSSL does (`TLSv1.3`).
        [b"connection", b"tls_version"] => {
            s.meta.tls_version.as_ref()?.replace('_', ".").into_bytes()
        }
        [b"connection", b"mtls"] => vec![u8::from(s.meta.mtls)],
        [b"connection", b"subject_peer_certificate"] => {
            s.meta.tls_version.as_ref()?;
            s.meta.peer_subject.clone().unwrap_or_default().into_bytes()
        }
        [b"connection", b"requested_server_name"] => {
            s.meta.sni.clone().unwrap_or_default().into_bytes()
        }
        [b"response", b"code"] => {
            let code = s.response_code.or_else(|| {
                std::str::from_utf8(s.response_headers.get(":status")?)
                    .ok()?
                    .parse()
                    .ok()
            })?;
            int(i64::from(code))
        }
        [b"response", b"headers"] => encode_pairs(
            s.response_headers
                .iter()
                .filter(|(k, _)| !k.starts_with(b":")),
        ),
        [b"gateway", b"upstream"] => return Some(Cow::Borrowed(s.upstream.as_deref()?.as_bytes())),
        _ => return None,
    }))
}

pub fn set(state: &mut HostState, path: &[u8], value: &[u8]) -> Result<(), PropertyError> {
    let own = state.effective == state.current;
    let stream = match state.stream.as_deref_mut() {
        Some(s) if own => s,
        _ => return Err(PropertyError::NotFound),
    };
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    if path == b"gateway\0upstream" {
        let name = std::str::from_utf8(value).map_err(|_| PropertyError::BadArgument)?;
        // An empty value clears the choice.
        stream.upstream =
            (!name.is_empty()).then(|| state.host.clusters.choose(&state.filter.config.name, name));
        return Ok(());
    }
    // Anything else is the request's own data, as Envoy's filter
    // state: readable back by every filter of the chain, bounded.
    // (A path the gateway answers itself is stored too, and OK as
    // in Envoy, but reads keep giving the gateway's value.)
    let props = &mut stream.properties;
    let others: usize = props
        .iter()
        .filter(|(p, _)| p != path)
        .map(|(p, v)| p.len() + v.len())
        .sum();
    let exists = props.iter().any(|(p, _)| p == path);
    if others + path.len() + value.len() > MAX_CUSTOM_PROPERTY_BYTES
        || (!exists && props.len() >= MAX_CUSTOM_PROPERTIES)
    {
        return Err(PropertyError::BadArgument);
    }
    props.retain(|(p, _)| p != path);
    props.push((path.to_vec(), value.to_vec()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_splits_into_its_segments_or_none_past_the_known_depth() {
        let mut buf = [&[][..]; MAX_SEGMENTS];
        assert_eq!(
            segments(b"request\0headers\0x-a\0", &mut buf),
            [&b"request"[..], b"headers", b"x-a"]
        );
        assert_eq!(segments(b"plugin_name", &mut buf), [&b"plugin_name"[..]]);
        assert_eq!(segments(b"a\0b\0c\0d", &mut buf).len(), 4);
        // Deeper than any path the gateway answers: a filter's own, looked
        // up whole by `get`.
        assert!(segments(b"a\0b\0c\0d\0e", &mut buf).is_empty());
    }
}
