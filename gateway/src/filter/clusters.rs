//! The cluster names filters see (`gateway.clusters`), and the loud,
//! once-per-filter-and-cluster warning when a filter routes to a cluster
//! that does not exist.

use std::collections::HashSet;

use crate::hash::FastSet;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// Distinct (filter, cluster) pairs warned about; beyond, only counted (a
/// guest choosing random names must not grow the host's memory).
const MAX_WARNED: usize = 1024;

/// The clusters of the configuration being loaded (during `on_configure`)
/// or in force, as filters read them.
#[derive(Default)]
pub struct ClusterNames {
    names: ArcSwap<Names>,
    warned: Mutex<HashSet<(String, String)>>,
}

#[derive(Default)]
struct Names {
    set: FastSet<Arc<str>>,
    /// The property's value: names in config order, joined by NUL.
    encoded: Vec<u8>,
}

impl ClusterNames {
    /// Sets the names; called before a configuration's filters load, so
    /// they can check the clusters they name at configure time.
    pub fn set<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut set = FastSet::default();
        let mut encoded = Vec::new();
        for name in names {
            if set.insert(Arc::from(name)) {
                if !encoded.is_empty() {
                    encoded.push(0);
                }
                encoded.extend_from_slice(name.as_bytes());
            }
        }
        self.names.store(Arc::new(Names { set, encoded }));
    }

    /// The value of `gateway.clusters`.
    pub fn encoded(&self) -> Vec<u8> {
        self.names.load().encoded.clone()
    }

    /// A filter chose `cluster` for a request: the configuration's own
    /// name, shared (no copy per request). When no such cluster exists,
    /// counts it and warns the first time for this filter and cluster (the
    /// request will get 503 "no such cluster"), and the name is copied.
    pub fn choose(&self, filter: &str, cluster: &str) -> Arc<str> {
        if let Some(name) = self.names.load().set.get(cluster) {
            return name.clone();
        }
        crate::metrics::filter_unknown_cluster(filter);
        let first = {
            let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            let key = (filter.to_owned(), cluster.to_owned());
            warned.len() < MAX_WARNED && !warned.contains(&key) && warned.insert(key)
        };
        if first {
            tracing::warn!(
                filter,
                cluster,
                "filter routes requests to cluster `{cluster}`, which is not configured: they get 503 \"no such cluster\" (check the name against the property `gateway.clusters` in on_configure; warned once per filter and cluster)"
            );
        }
        Arc::from(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_in_order_joined_by_nul() {
        let names = ClusterNames::default();
        names.set(["b", "a", "b"]);
        assert_eq!(names.encoded(), b"b\0a");
        assert!(names.names.load().set.contains("a"));
        assert!(!names.names.load().set.contains("c"));
    }

    #[test]
    fn warns_once_per_filter_and_cluster() {
        let names = ClusterNames::default();
        names.set(["real"]);
        let real = names.choose("f", "real");
        assert!(Arc::ptr_eq(&real, &names.choose("f", "real")), "shared");
        assert!(names
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty());
        assert_eq!(&*names.choose("f", "nope"), "nope");
        names.choose("f", "nope");
        names.choose("g", "nope");
        assert_eq!(
            names.warned.lock().unwrap_or_else(|p| p.into_inner()).len(),
            2
        );
    }
}
