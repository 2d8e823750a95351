//! Maps looked up on the request path (route index, clusters, metric
//! series, filter signals). They hash with foldhash, a fraction of the
//! default SipHash's cost on short keys, seeded per process; their keys
//! come from the configuration or the gateway, so a client can look
//! names up but never choose what is stored.

pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
