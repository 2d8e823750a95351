//! A header map as filters see it: ordered pairs whose names and values
//! share the request's own `http` storage, so presenting a message to a
//! filter copies no header. A request's fields are lent to its filters
//! as they are, and copied into pairs only when a filter changes them or
//! reads the whole map.

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue};

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
    /// The map's pairs, unless its request's fields are lent and not yet
    /// copied (then empty): read [`Headers::get`], [`Headers::iter`] and
    /// [`Headers::len`], which see both.
    pub pairs: Vec<(Name, HeaderValue)>,
    /// Set by any write, so untouched maps are not rebuilt.
    pub dirty: bool,
    /// A request's own fields while its filters run ([`Headers::lend`]).
    lent: Option<RequestFields>,
    /// `pairs` holds the lent fields (a write or a whole-map read copied
    /// them), so reads go to `pairs`.
    copied: bool,
}

/// The fields of a request, lent to its filters for its request phase:
/// the header map moved out of the request, and its method and URI.
#[derive(Debug, Clone)]
struct RequestFields {
    map: HeaderMap,
    method: http::Method,
    uri: http::Uri,
    scheme: &'static str,
    /// The pairs they make (`Host` values are left out).
    len: usize,
}

impl RequestFields {
    fn path(&self) -> &[u8] {
        self.uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes()
    }

    /// The request-target's authority, else the `Host` field.
    fn authority(&self) -> &[u8] {
        match self.uri.authority() {
            Some(a) => a.as_str().as_bytes(),
            None => self.map.get(HOST).map_or(&b""[..], HeaderValue::as_bytes),
        }
    }

    /// What [`fill_request_pairs`] would give for `name`, without a copy.
    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        if let Some(pseudo) = name.strip_prefix(b":") {
            let is = |p: &str| pseudo.eq_ignore_ascii_case(p.as_bytes());
            return if is("method") {
                Some(self.method.as_str().as_bytes())
            } else if is("path") {
                Some(self.path())
            } else if is("authority") {
                Some(self.authority())
            } else if is("scheme") {
                Some(self.scheme.as_bytes())
            } else {
                None
            };
        }
        // `Host` is presented as `:authority`.
        if name.eq_ignore_ascii_case(b"host") {
            return None;
        }
        // Names are matched case-insensitively, as the pairs are. A
        // request's few fields are walked: cheaper than parsing the name
        // to hash it.
        if self.map.len() <= 16 {
            return self
                .map
                .iter()
                .find(|(k, _)| k.as_str().as_bytes().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes());
        }
        let name = std::str::from_utf8(name).ok()?;
        self.map.get(name).map(HeaderValue::as_bytes)
    }

    /// These fields as pairs ([`fill_request_pairs`]).
    fn fill(&self, pairs: &mut Vec<(Name, HeaderValue)>) {
        fill_request_pairs(pairs, &self.method, &self.uri, &self.map, self.scheme);
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let pseudo = [
            (&b":method"[..], self.method.as_str().as_bytes()),
            (b":path", self.path()),
            (b":authority", self.authority()),
            (b":scheme", self.scheme.as_bytes()),
        ];
        pseudo.into_iter().chain(
            self.map
                .iter()
                .filter(|(k, _)| **k != HOST)
                .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
        )
    }
}

/// A request's fields as pairs: `:method`, `:path`, `:authority` and
/// `:scheme` first, then its fields but `Host` (it is `:authority`), as
/// Envoy presents them. `pairs` is emptied first, its room kept.
pub(crate) fn fill_request_pairs(
    pairs: &mut Vec<(Name, HeaderValue)>,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    scheme: &'static str,
) {
    pairs.clear();
    pairs.reserve(headers.len() + 4);
    let authority = uri
        .authority()
        .and_then(|a| HeaderValue::from_bytes(a.as_str().as_bytes()).ok())
        .or_else(|| headers.get(HOST).cloned())
        .unwrap_or(HeaderValue::from_static(""));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    pairs.push((Name::Pseudo(":method"), method_value(method)));
    pairs.push((
        Name::Pseudo(":path"),
        // Bytes, not `from_str`: a path may carry non-ASCII (obs-text).
        HeaderValue::from_bytes(path.as_bytes()).unwrap_or(HeaderValue::from_static("/")),
    ));
    pairs.push((Name::Pseudo(":authority"), authority));
    pairs.push((
        Name::Pseudo(":scheme"),
        // The listener's scheme: a client cannot claim `https` over
        // cleartext by writing it into the request-target.
        HeaderValue::from_static(scheme),
    ));
    for (k, v) in headers.iter().filter(|(k, _)| *k != HOST) {
        pairs.push((Name::Header(k.clone()), v.clone()));
    }
}

/// The method's name, without a copy for the common ones.
fn method_value(m: &http::Method) -> HeaderValue {
    use http::Method as M;
    let known = match *m {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => return HeaderValue::from_str(m.as_str()).unwrap_or(HeaderValue::from_static("")),
    };
    HeaderValue::from_static(known)
}

impl Headers {
    /// A map of these pairs, changed by no one yet.
    pub fn of_pairs(pairs: Vec<(Name, HeaderValue)>) -> Headers {
        Headers {
            pairs,
            ..Headers::default()
        }
    }

    /// Lends `req`'s fields to the filters: its header map and URI move
    /// here (the request keeps an empty map and `/`) until
    /// [`Headers::give_back`]. Reads look fields up where they are;
    /// nothing is copied unless a filter changes the map or reads all of
    /// it.
    pub fn lend<B>(&mut self, req: &mut http::Request<B>, scheme: &'static str) {
        self.clear();
        let map = std::mem::take(req.headers_mut());
        self.lent = Some(RequestFields {
            len: 4 + map.len() - map.get_all(HOST).iter().count(),
            map,
            method: req.method().clone(),
            uri: std::mem::take(req.uri_mut()),
            scheme,
        });
    }

    /// Puts the lent header map and URI back into `req`, as they were
    /// lent. With `keep`, the pairs hold the fields from here on (for
    /// filters that read them later: bodies, the response, the log);
    /// without it a map no filter changed or read whole is left empty.
    pub fn give_back<B>(&mut self, req: &mut http::Request<B>, keep: bool) {
        let Some(fields) = self.lent.take() else {
            return;
        };
        if keep && !self.copied {
            fields.fill(&mut self.pairs);
        }
        self.copied = false;
        *req.headers_mut() = fields.map;
        *req.uri_mut() = fields.uri;
    }

    /// The lent fields, while reads should see them rather than `pairs`.
    fn lent(&self) -> Option<&RequestFields> {
        self.lent.as_ref().filter(|_| !self.copied)
    }

    /// From here on `pairs` holds the map (a lent request's fields are
    /// copied into it), so it can change.
    fn own(&mut self) {
        if let (Some(fields), false) = (&self.lent, self.copied) {
            fields.fill(&mut self.pairs);
            self.copied = true;
        }
    }

    /// Empties the map, its room kept.
    pub fn clear(&mut self) {
        self.pairs.clear();
        self.dirty = false;
        self.lent = None;
        self.copied = false;
    }

    pub fn len(&self) -> usize {
        self.lent().map_or(self.pairs.len(), |f| f.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first value of `name` (any case): a `&str` or the bytes a
    /// guest passed, which need not be checked as UTF-8 to be looked up.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        if let Some(fields) = self.lent() {
            return fields.get(name);
        }
        self.pairs
            .iter()
            .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
    pub fn remove(&mut self, name: &str) {
        self.own();
        self.pairs
            .retain(|(k, _)| !k.as_bytes().eq_ignore_ascii_case(name.as_bytes()));
        self.dirty = true;
    }
    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.own();
        self.pairs.push((Name::of(name), value_of(value)));
        self.dirty = true;
    }
    pub fn replace(&mut self, name: &str, value: &[u8]) {
        self.own();
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
        self.own();
        self.pairs = pairs
            .into_iter()
            .map(|(k, v)| (Name::of(&k), value_of(&v)))
            .collect();
        self.dirty = true;
    }

    /// Pairs as byte slices, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        // When the fields are lent, `pairs` is empty.
        self.pairs
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .chain(self.lent().into_iter().flat_map(RequestFields::iter))
    }
}

#[cfg(test)]
mod tests {
    use super::Headers;

    fn request() -> http::Request<()> {
        http::Request::post("/a/b?x=1")
            .header("host", "example.com")
            .header("X-Trace", "t1")
            .header("accept", "a")
            .header("accept", "b")
            .header("x-obs", &b"caf\xc3\xa9"[..])
            .body(())
            .expect("request")
    }

    #[test]
    fn lent_fields_read_as_their_copy_does_and_go_back_untouched() {
        let copy = crate::filter::convert::request_headers(&request(), "https");
        let mut req = request();
        let mut lent = Headers::default();
        lent.lend(&mut req, "https");
        assert!(req.headers().is_empty(), "the map is lent, not copied");
        assert_eq!(req.uri(), "/");
        assert!(lent.pairs.is_empty());
        for name in [
            ":method",
            ":PATH",
            ":authority",
            ":scheme",
            ":status",
            "host",
            "Host",
            "x-trace",
            "X-TRACE",
            "accept",
            "x-obs",
            "missing",
            "bad name",
        ] {
            assert_eq!(lent.get(name), copy.get(name), "{name}");
        }
        assert_eq!(lent.len(), copy.len());
        assert_eq!(
            lent.iter().collect::<Vec<_>>(),
            copy.iter().collect::<Vec<_>>()
        );
        lent.give_back(&mut req, false);
        assert_eq!(req.headers(), request().headers());
        assert_eq!(req.uri(), request().uri());
        assert!(lent.is_empty() && !lent.dirty);

        // Kept for later callbacks: the pairs hold the same fields.
        lent.lend(&mut req, "https");
        lent.give_back(&mut req, true);
        assert_eq!(
            lent.iter().collect::<Vec<_>>(),
            copy.iter().collect::<Vec<_>>()
        );
        assert_eq!(req.headers(), request().headers());
    }

    #[test]
    fn many_lent_fields_read_as_their_copy_does() {
        let mut builder = http::Request::get("http://example.com:8080/p");
        for i in 0..24 {
            builder = builder.header(format!("x-field-{i}"), format!("v{i}"));
        }
        let mut req = builder
            .header("x-field-3", "again")
            .body(())
            .expect("request");
        let copy = crate::filter::convert::request_headers(&req, "http");
        let mut lent = Headers::default();
        lent.lend(&mut req, "http");
        for name in [
            ":authority",
            "X-Field-0",
            "x-field-3",
            "x-field-23",
            "x-field-24",
        ] {
            assert_eq!(lent.get(name), copy.get(name), "{name}");
        }
        assert_eq!(lent.get(":authority"), Some(&b"example.com:8080"[..]));
        assert_eq!(lent.len(), copy.len());
        assert_eq!(
            lent.iter().collect::<Vec<_>>(),
            copy.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_change_to_lent_fields_is_made_to_their_copy() {
        let mut req = request();
        let mut lent = Headers::default();
        lent.lend(&mut req, "http");
        lent.replace("x-trace", b"t2");
        assert!(lent.dirty);
        assert_eq!(lent.get("x-trace"), Some(&b"t2"[..]));
        assert_eq!(lent.get(":path"), Some(&b"/a/b?x=1"[..]));
        assert_eq!(lent.get("accept"), Some(&b"a"[..]));
        assert_eq!(lent.len(), 8);
        // The map goes back as it was lent; the change is the pairs' to apply.
        lent.give_back(&mut req, false);
        assert_eq!(req.headers(), request().headers());
        assert_eq!(lent.get("x-trace"), Some(&b"t2"[..]));
        crate::filter::convert::apply_request(&lent, &mut req);
        assert_eq!(req.headers()["x-trace"], "t2");
        assert_eq!(req.headers()["host"], "example.com");
    }

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
