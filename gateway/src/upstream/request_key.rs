//! The key a `ring_hash` cluster hashes a request on: what a filter set
//! in the property `gateway.hash_key`, else the header `hash_header`, else
//! the cookie `hash_cookie`.

use http::HeaderMap;

use super::ring::hash_key;
use super::AddedFields;
use crate::config::{BalancePolicy, ClusterConfig};

/// The property path a filter sets (`["gateway", "hash_key"]`, segments
/// joined by NUL as the ABI passes them).
pub const HASH_KEY_PROPERTY: &[u8] = b"gateway\0hash_key";

/// The hash of the request's key for `cluster`, if it balances by ring
/// hash and the request has a key. A key header the gateway adds
/// (`added`, X-Forwarded-For say) is read as the upstream will get it.
/// `from_filter` is only asked when needed (it reads the filters' state).
pub fn request_key(
    cluster: &ClusterConfig,
    headers: &HeaderMap,
    added: &AddedFields,
    from_filter: impl FnOnce() -> Option<Vec<u8>>,
) -> Option<u64> {
    if cluster.balance != BalancePolicy::RingHash {
        return None;
    }
    if let Some(key) = from_filter().filter(|k| !k.is_empty()) {
        return Some(hash_key(&key));
    }
    if let Some(name) = &cluster.hash_header {
        if let Some(value) = added
            .get(name.as_str())
            .or_else(|| headers.get(name.as_str()))
        {
            return Some(hash_key(value.as_bytes()));
        }
    }
    let cookie = cluster.hash_cookie.as_deref()?;
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie)
        .map(|(_, value)| hash_key(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: &str) -> ClusterConfig {
        toml::from_str(&format!("name = \"c\"\nbalance = \"ring_hash\"\n{extra}"))
            .expect("as the test set it up")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    v.parse().expect("as the test set it up"),
                )
            })
            .collect()
    }

    #[test]
    fn the_filter_key_comes_first_then_the_header_then_the_cookie() {
        let c = cluster("hash_header = \"x-user\"\nhash_cookie = \"sid\"");
        let h = headers(&[("x-user", "ann"), ("cookie", "a=1; sid=s42")]);
        let none = AddedFields::default();
        let by_filter = request_key(&c, &h, &none, || Some(b"tenant-7".to_vec()));
        assert_eq!(by_filter, Some(hash_key(b"tenant-7")));
        assert_eq!(request_key(&c, &h, &none, || None), Some(hash_key(b"ann")));
        let cookie_only = headers(&[("cookie", "a=1; sid=s42")]);
        assert_eq!(
            request_key(&c, &cookie_only, &none, || None),
            Some(hash_key(b"s42"))
        );
        assert_eq!(request_key(&c, &HeaderMap::new(), &none, || None), None);
    }

    #[test]
    fn other_policies_have_no_key() {
        let mut c = cluster("hash_header = \"x-user\"");
        c.balance = BalancePolicy::RoundRobin;
        let h = headers(&[("x-user", "ann")]);
        let none = AddedFields::default();
        assert_eq!(request_key(&c, &h, &none, || panic!("not asked")), None);
    }

    #[test]
    fn a_key_header_the_gateway_adds_is_read_as_the_upstream_gets_it() {
        let c = cluster("hash_header = \"X-Forwarded-For\"");
        let h = headers(&[("x-forwarded-for", "10.0.0.1")]);
        let mut added = AddedFields::default();
        added.push(
            http::HeaderName::from_static("x-forwarded-for"),
            http::HeaderValue::from_static("10.0.0.1, 127.0.0.1"),
        );
        assert_eq!(
            request_key(&c, &h, &added, || None),
            Some(hash_key(b"10.0.0.1, 127.0.0.1"))
        );
        let none = AddedFields::default();
        assert_eq!(
            request_key(&c, &h, &none, || None),
            Some(hash_key(b"10.0.0.1"))
        );
    }
}
