//! What one route matches on (path, host, method) and the rule for each,
//! stated once: the route index must answer exactly as these do.

use http::Method;

/// A route's path condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathMatch {
    /// The whole path (without query) equals this.
    Exact(String),
    /// Segment-aware prefix: `/api` matches `/api`, `/api/` and `/api/x`
    /// but not `/apix`; a prefix ending in `/` (`/api/`, `/`) matches every
    /// path that starts with it.
    Prefix(String),
}

/// A route's host condition, in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HostMatch {
    Any,
    /// `example.com`: that host only.
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: any host ending in it with
    /// at least one more character before (`a.example.com`,
    /// `a.b.example.com`), never `example.com` itself. The same rule as
    /// TLS server names.
    Suffix(String),
}

impl PathMatch {
    pub(super) fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => prefix_matches(p, path),
        }
    }
}

/// The segment-aware prefix rule.
pub(super) fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

impl HostMatch {
    /// From a validated config value: `*.example.com` is a suffix match.
    pub(super) fn from_config(host: Option<&str>) -> HostMatch {
        match host.map(str::to_ascii_lowercase) {
            None => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => HostMatch::Suffix(suffix.to_string()),
                _ => HostMatch::Exact(h),
            },
        }
    }

    /// `host` is the request's host without port, in any case.
    pub(super) fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostMatch::Any, _) => true,
            (_, None) => false,
            (HostMatch::Exact(want), Some(h)) => h.eq_ignore_ascii_case(want),
            (HostMatch::Suffix(suffix), Some(h)) => {
                h.len() > suffix.len()
                    && h.as_bytes()[h.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// Whether a route's method condition admits `method`.
pub(super) fn method_matches(want: Option<&Method>, method: &Method) -> bool {
    want.is_none_or(|m| m == method)
}
