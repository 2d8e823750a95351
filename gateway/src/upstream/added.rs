//! Fields the gateway adds to a forwarded request head (X-Forwarded-*),
//! carried beside the client's header map instead of inserted into it.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The most fields a request gets added: X-Forwarded-For, -Proto, -Host.
const MAX_ADDED: usize = 3;

/// Fields the gateway adds on the way to the upstream, each replacing
/// every client field of its name. Inserted into the request's map they
/// would cost a hash and an insert each, and most often a growth of the
/// map; the HTTP/1.1 encoder writes them after the client's fields
/// instead. A head that is copied anyway (an HTTP/2 upstream, an upgrade)
/// gets them put into its copy ([`insert_into`](Self::insert_into)).
#[derive(Debug, Default)]
pub struct AddedFields {
    fields: [Option<(HeaderName, HeaderValue)>; MAX_ADDED],
}

impl AddedFields {
    /// Adds `name` (not yet added) with `value`. Beyond the
    /// [`MAX_ADDED`] fields the gateway itself adds, nothing is kept.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue) {
        debug_assert!(self.get(name.as_str()).is_none(), "{name} added twice");
        if let Some(slot) = self.fields.iter_mut().find(|f| f.is_none()) {
            *slot = Some((name, value));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.fields.iter().flatten().map(|(n, v)| (n, v))
    }

    /// Whether a client field called `name` gives way to an added one.
    pub fn replaces(&self, name: &HeaderName) -> bool {
        self.iter().any(|(n, _)| n == name)
    }

    /// The added value of `name` (any case), if it is one.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Puts the fields into `headers`, replacing the client's.
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.iter() {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
impl AddedFields {
    /// X-Forwarded-For `10.0.0.1, 127.0.0.1` and X-Forwarded-Proto `http`.
    pub(crate) fn sample() -> AddedFields {
        let mut added = AddedFields::default();
        added.push(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("10.0.0.1, 127.0.0.1"),
        );
        added.push(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        );
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_fields_replace_the_clients_of_their_name() {
        let added = AddedFields::sample();
        assert!(added.replaces(&HeaderName::from_static("x-forwarded-for")));
        assert!(!added.replaces(&http::header::HOST));
        assert_eq!(
            added.get("x-forwarded-proto"),
            Some(&HeaderValue::from_static("http"))
        );
        assert_eq!(added.get("x-forwarded-host"), None);

        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        headers.insert(http::header::HOST, HeaderValue::from_static("a"));
        added.insert_into(&mut headers);
        let xff: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["10.0.0.1, 127.0.0.1"]);
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers[http::header::HOST], "a");
        assert_eq!(added.iter().count(), 2);
    }
}
