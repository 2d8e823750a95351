//! A header map as filters see it: ordered pairs whose names and values
//! share the request's own `http` storage, so presenting a message to a
//! filter copies no header.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// A name in a filter's header map: a pseudo-header, or a header name.
#[derive(Debug, Clone)]
pub enum Name {
    /// `:method`, `:path`, `:authority`, `:scheme`, `:status`.
    Pseudo(&'static str),
    /// A header (a standard name is static; a custom one shares its bytes).
    Header(HeaderName),
    /// Anything else a filter wrote (an unknown pseudo-header), lower case.
    Other(Bytes),
}

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Pseudo(p) => p.as_bytes(),
            Name::Header(h) => h.as_str().as_bytes(),
            Name::Other(b) => b,
        }
    }

    /// A name a filter gave: lower-cased.
    fn of(name: &str) -> Name {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Name::Header(h),
            Err(_) => Name::Other(Bytes::from(name.to_ascii_lowercase())),
        }
    }
}

/// A value: shares the message's bytes; one a filter wrote is copied once.
fn value_of(value: &[u8]) -> HeaderValue {
    // Hostcalls let only valid values through.
    HeaderValue::from_bytes(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A header map as proxy-wasm sees it: ordered pairs, lower-case names,
/// pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`, `:status`) included.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pub pairs: Vec<(Name, HeaderValue)>,
    /// Set by any write, so untouched maps are not rebuilt.
    pub dirty: bool,
}

impl Headers {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_bytes())
    }
    pub fn remove(&mut self, name: &str) {
        self.pairs
            .retain(|(k, _)| !k.as_bytes().eq_ignore_ascii_case(name.as_bytes()));
        self.dirty = true;
    }
    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.pairs.push((Name::of(name), value_of(value)));
        self.dirty = true;
    }
    pub fn replace(&mut self, name: &str, value: &[u8]) {
        let mut found = false;
        self.pairs.retain_mut(|(k, v)| {
            if !k.as_bytes().eq_ignore_ascii_case(name.as_bytes()) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            *v = value_of(value);
            true
        });
        if !found {
            self.pairs.push((Name::of(name), value_of(value)));
        }
        self.dirty = true;
    }

    /// Replaces every pair (`proxy_set_header_map_pairs`).
    pub fn set_all(&mut self, pairs: Vec<(String, Vec<u8>)>) {
        self.pairs = pairs
            .into_iter()
            .map(|(k, v)| (Name::of(&k), value_of(&v)))
            .collect();
        self.dirty = true;
    }

    /// Pairs as byte slices, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_request_is_presented_with_pseudo_headers_and_changed_in_place() {
        let req = http::Request::get("/a/b?x=1")
            .header("host", "example.com")
            .header("X-Trace", "t1")
            .body(())
            .expect("request");
        let mut h = crate::filter::convert::request_headers(&req, "http");
        let pairs: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(
            pairs,
            [
                (&b":method"[..], &b"GET"[..]),
                (b":path", b"/a/b?x=1"),
                (b":authority", b"example.com"),
                (b":scheme", b"http"),
                (b"x-trace", b"t1"),
            ]
        );
        assert!(!h.dirty);
        h.replace("X-TRACE", b"t2");
        h.add("X-New", b"n");
        h.remove(":scheme");
        assert_eq!(h.get("x-trace"), Some(&b"t2"[..]));
        assert_eq!(h.get("x-new"), Some(&b"n"[..]));
        assert_eq!(h.get(":scheme"), None);
        assert!(h.dirty);
        h.set_all(vec![
            (":path".into(), b"/z".to_vec()),
            ("A".into(), b"1".to_vec()),
        ]);
        let pairs: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(pairs, [(&b":path"[..], &b"/z"[..]), (b"a", b"1")]);
    }
}
