//! The route index: the answer of the ordered scan (first match wins) in
//! a few hash lookups, whatever the number of routes. Routes are grouped
//! by host (any, exact, `*.suffix`), then by path (exact paths in a map,
//! prefixes in a trie of path segments); each group keeps, in table order,
//! only the routes that can still win there, and the method is checked
//! last. A request's answer is the lowest table position over the groups
//! its host and path reach.

use crate::hash::FastMap as HashMap;
use std::borrow::Cow;

use http::Method;

use super::matcher::{method_matches, HostMatch, PathMatch};

/// Positions in the route table, indexed for lookup.
#[derive(Clone, Default)]
pub(super) struct RouteIndex {
    any_host: PathIndex,
    exact_hosts: HashMap<Box<str>, PathIndex>,
    /// Keyed by the suffix with its leading dot (`.example.com`).
    suffix_hosts: HashMap<Box<str>, PathIndex>,
    /// The distinct lengths of `suffix_hosts` keys, ascending: a request's
    /// host is looked up once per length, so a long host with many labels
    /// costs no more than the configured wildcards.
    suffix_lengths: Vec<usize>,
}

/// The routes of one host group.
#[derive(Clone, Default)]
struct PathIndex {
    exact: HashMap<Box<str>, Candidates>,
    prefixes: Segment,
}

/// A node of the prefix trie: the path segments from the root lead here.
#[derive(Clone, Default)]
struct Segment {
    children: HashMap<Box<str>, Segment>,
    /// Prefixes that end here without a slash (`/api` at `api`): every
    /// path through this node matches.
    whole: Candidates,
    /// Prefixes that end here with a slash (`/api/` at `api`, `/` at the
    /// root): paths that go on for one more segment, even an empty one.
    slash: Candidates,
}

/// Routes sharing one key, in table order, keeping only those that can
/// still be the first match: after a route for any method, or an earlier
/// one for the same method, a route can never win.
#[derive(Clone, Default)]
struct Candidates(Vec<(u32, Option<Method>)>);

impl Candidates {
    fn push(&mut self, position: u32, method: Option<&Method>) {
        let shadowed = self
            .0
            .iter()
            .any(|(_, m)| m.is_none() || m.as_ref() == method);
        if !shadowed {
            self.0.push((position, method.cloned()));
        }
    }

    fn first(&self, method: &Method) -> Option<u32> {
        self.0
            .iter()
            .find(|(_, m)| method_matches(m.as_ref(), method))
            .map(|(p, _)| *p)
    }
}

impl RouteIndex {
    /// Adds the route at `position`; call in table order.
    pub(super) fn insert(
        &mut self,
        position: u32,
        host: &HostMatch,
        path: &PathMatch,
        method: Option<&Method>,
    ) {
        let group = match host {
            HostMatch::Any => &mut self.any_host,
            HostMatch::Exact(h) => self.exact_hosts.entry(h.as_str().into()).or_default(),
            HostMatch::Suffix(s) => {
                if let Err(at) = self.suffix_lengths.binary_search(&s.len()) {
                    self.suffix_lengths.insert(at, s.len());
                }
                self.suffix_hosts.entry(s.as_str().into()).or_default()
            }
        };
        group.insert(position, path, method);
    }

    /// The table position of the first route matching the request, as the
    /// ordered scan would find it. `host` is without port, in any case.
    pub(super) fn routes_by_host(&self) -> bool {
        !self.exact_hosts.is_empty() || !self.suffix_hosts.is_empty()
    }

    pub(super) fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Option<u32> {
        let mut best = self.any_host.find(method, path);
        let Some(host) = host else {
            return best;
        };
        let host = lower_case(host);
        if let Some(group) = self.exact_hosts.get(host.as_ref()) {
            best = earliest(best, group.find(method, path));
        }
        for &len in &self.suffix_lengths {
            if len >= host.len() {
                break;
            }
            // The byte before a suffix is the end of a label; the suffix
            // starts with `.`, an ASCII byte, so this is a char boundary.
            let start = host.len() - len;
            if host.as_bytes()[start] != b'.' {
                continue;
            }
            if let Some(group) = self.suffix_hosts.get(&host[start..]) {
                best = earliest(best, group.find(method, path));
            }
        }
        best
    }
}

impl PathIndex {
    fn insert(&mut self, position: u32, path: &PathMatch, method: Option<&Method>) {
        match path {
            PathMatch::Exact(p) => self
                .exact
                .entry(p.as_str().into())
                .or_default()
                .push(position, method),
            PathMatch::Prefix(p) => {
                // Validated prefixes start with `/`; the segments follow it.
                let mut segments: Vec<&str> = p.strip_prefix('/').unwrap_or(p).split('/').collect();
                let ends_with_slash = segments.last() == Some(&"");
                if ends_with_slash {
                    segments.pop();
                }
                let mut node = &mut self.prefixes;
                for s in segments {
                    node = node.children.entry(s.into()).or_default();
                }
                let list = if ends_with_slash {
                    &mut node.slash
                } else {
                    &mut node.whole
                };
                list.push(position, method);
            }
        }
    }

    fn find(&self, method: &Method, path: &str) -> Option<u32> {
        let mut best = self.exact.get(path).and_then(|c| c.first(method));
        // Every prefix starts with `/`, so a path that does not (`*`)
        // matches none.
        let Some(rest) = path.strip_prefix('/') else {
            return best;
        };
        let mut segments = rest.split('/');
        let mut node = &self.prefixes;
        loop {
            best = earliest(best, node.whole.first(method));
            let Some(segment) = segments.next() else {
                break;
            };
            best = earliest(best, node.slash.first(method));
            match node.children.get(segment) {
                Some(child) => node = child,
                None => break,
            }
        }
        best
    }
}

fn earliest(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Hosts usually arrive in lower case; only others are copied.
fn lower_case(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}
