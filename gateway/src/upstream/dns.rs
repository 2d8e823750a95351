//! Endpoints given by host name: resolved at start and again on an
//! interval; connects use the last good answer, so a failed resolution
//! (logged and counted) keeps the previous addresses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::Cluster;

type Answers = HashMap<Arc<str>, Arc<[SocketAddr]>>;
/// (good, failed) resolutions by `host:port`.
type Counts = HashMap<Arc<str>, (u64, u64)>;

/// The last good answer for each `host:port`, read by every connect
/// (lock-free) and written by the resolving tasks.
static ANSWERS: LazyLock<ArcSwap<Answers>> = LazyLock::new(ArcSwap::default);

/// Resolutions of each `host:port`: (ok, failed), for the metrics.
static COUNTS: LazyLock<Mutex<Counts>> = LazyLock::new(Mutex::default);

/// Whether `address` names a host rather than an IP address.
pub fn is_host_name(address: &str) -> bool {
    address.parse::<SocketAddr>().is_err()
}

/// The addresses `address` last resolved to, if it is a host name that
/// has resolved at least once.
pub fn resolved(address: &str) -> Option<Arc<[SocketAddr]>> {
    ANSWERS.load().get(address).cloned()
}

/// Every host name's resolution counts: (name, ok, failed).
pub fn counts() -> Vec<(Arc<str>, u64, u64)> {
    let counts = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let mut all: Vec<_> = counts
        .iter()
        .map(|(n, (ok, f))| (n.clone(), *ok, *f))
        .collect();
    all.sort();
    all
}

/// Takes one resolution's outcome: a non-empty answer replaces the last
/// one; a failure or an empty answer keeps it. Returns whether it was good.
fn apply(name: &Arc<str>, outcome: std::io::Result<Vec<SocketAddr>>) -> bool {
    let good = match outcome {
        Ok(addresses) if !addresses.is_empty() => {
            let addresses: Arc<[SocketAddr]> = addresses.into();
            if resolved(name).as_deref() != Some(&addresses[..]) {
                tracing::info!(endpoint = %name, ?addresses, "endpoint resolved");
            }
            ANSWERS.rcu(|answers| {
                let mut answers = Answers::clone(answers);
                answers.insert(name.clone(), addresses.clone());
                answers
            });
            true
        }
        Ok(_) => {
            tracing::warn!(endpoint = %name, "endpoint resolved to no address; keeping the last good one");
            false
        }
        Err(error) => {
            tracing::warn!(endpoint = %name, %error, "cannot resolve endpoint; keeping the last good addresses");
            false
        }
    };
    let mut counts = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let entry = counts.entry(name.clone()).or_default();
    if good {
        entry.0 += 1;
    } else {
        entry.1 += 1;
    }
    good
}

/// Resolves the host-name endpoints of `cluster` now and then every
/// `every` ("0s": once), for as long as the cluster is in use.
pub(super) async fn keep_resolved(cluster: Weak<Cluster>, names: Vec<Arc<str>>, every: Duration) {
    loop {
        for name in &names {
            let outcome = tokio::net::lookup_host(&**name)
                .await
                .map(|found| found.collect::<Vec<_>>());
            apply(name, outcome);
        }
        if every.is_zero() {
            return;
        }
        tokio::time::sleep(every).await;
        if cluster.strong_count() == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_resolution_keeps_the_last_good_answer_and_is_counted() {
        let name: Arc<str> = "backend.test:8080".into();
        let good: Vec<SocketAddr> = vec!["127.0.0.1:8080".parse().expect("as the test set it up")];
        assert!(apply(&name, Ok(good.clone())));
        assert!(!apply(&name, Err(std::io::Error::other("no such host"))));
        assert!(!apply(&name, Ok(Vec::new())));
        assert_eq!(resolved(&name).as_deref(), Some(&good[..]));
        let (_, ok, failed) = counts()
            .into_iter()
            .find(|(n, ..)| *n == name)
            .expect("as the test set it up");
        assert_eq!((ok, failed), (1, 2));
    }

    #[test]
    fn ip_addresses_are_not_host_names() {
        assert!(!is_host_name("127.0.0.1:80"));
        assert!(!is_host_name("[::1]:80"));
        assert!(is_host_name("localhost:80"));
    }
}
