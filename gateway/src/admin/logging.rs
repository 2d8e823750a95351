//! The log filter in force, changed at runtime by `POST /logging?level=...`.
//!
//! The binary installs its `EnvFilter` behind a reload layer and hands the
//! handle here; the admin swaps the filter whole. Callsite interest is
//! rebuilt on each change, so disabled levels cost nothing afterwards.

use std::sync::OnceLock;

use tracing_subscriber::{reload, EnvFilter, Registry};

/// The handle of the process's log filter.
pub type FilterHandle = reload::Handle<EnvFilter, Registry>;

static HANDLE: OnceLock<FilterHandle> = OnceLock::new();

/// Makes the process's log filter changeable from the admin.
pub fn install(handle: FilterHandle) {
    let _ = HANDLE.set(handle);
}

/// The filter in force (`RUST_LOG` syntax), when one was installed.
pub(super) fn current() -> Option<String> {
    HANDLE.get()?.with_current(|f| f.to_string()).ok()
}

/// Replaces the filter with `directives` (`debug`, `gateway=debug,info`,
/// ...); returns the filter now in force.
pub(super) fn set(directives: &str) -> Result<String, String> {
    let handle = HANDLE
        .get()
        .ok_or("logging is not reloadable in this process")?;
    let filter = EnvFilter::builder()
        .parse(directives)
        .map_err(|e| format!("bad level `{directives}`: {e}"))?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    tracing::info!(filter = directives, "log filter changed from the admin");
    current().ok_or_else(|| "the log filter is gone".into())
}

/// The `level` parameter of a query string, percent-decoded.
pub(super) fn level_param(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "level")
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_read_from_the_query() {
        assert_eq!(level_param(Some("level=debug")).as_deref(), Some("debug"));
        assert_eq!(
            level_param(Some("x=1&level=gateway%3Ddebug%2Cinfo")).as_deref(),
            Some("gateway=debug,info")
        );
        assert_eq!(
            level_param(Some("level=gateway=debug")).as_deref(),
            Some("gateway=debug")
        );
        assert_eq!(level_param(Some("level=%zz%")).as_deref(), Some("%zz%"));
        assert_eq!(level_param(Some("lvl=debug")), None);
        assert_eq!(level_param(None), None);
    }
}
