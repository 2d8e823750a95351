//! Request paths as routing, filters and the upstream see them: one
//! normal form, so `//admin`, `/%61dmin` and `/a/../admin` cannot reach
//! what `/admin` reaches past the filters meant for it.
//!
//! The rule (RFC 3986 §6.2.2, as nginx applies it): percent-encoded
//! unreserved characters are decoded, other escapes are kept with
//! upper-case hex, runs of `/` become one, and `.` and `..` segments are
//! removed (`..` never climbs above the root). An encoded `/` (`%2F`) or
//! `\` (`%5C`) stays encoded, so it never splits a segment; a raw `\` is
//! refused (some servers read it as `/`). The query is left as it is.

use std::borrow::Cow;

/// Why a path was refused (the client gets 400).
#[derive(Debug, PartialEq, Eq)]
pub enum BadPath {
    Backslash,
    BadEscape,
}

/// The normal form of `path` (no query); borrowed when already normal.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    // One pass: a backslash is an error; a path that is absolute, has no
    // escapes, no empty segment and no dot segment is already normal.
    let bytes = path.as_bytes();
    let mut clean = bytes.first() == Some(&b'/');
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(BadPath::Backslash),
            b'%' => clean = false,
            b'/' if clean => {
                clean = !matches!(
                    &bytes[i + 1..],
                    [b'/', ..] | [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..]
                );
            }
            _ => {}
        }
    }
    if clean {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes escapes of unreserved characters; upper-cases the others.
fn decode_unreserved(path: &str) -> Result<String, BadPath> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(BadPath::BadEscape);
        };
        let byte = hi * 16 + lo;
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
        }
        i += 3;
    }
    Ok(out)
}

/// Merges slashes and removes `.` and `..` segments; the result starts
/// with `/`, and keeps a trailing `/` (or gains one after `.`/`..`).
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let last = path.rsplit('/').next().unwrap_or("");
    let trailing = matches!(last, "" | "." | "..");
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        normalize(p).expect("normal").into_owned()
    }

    #[test]
    fn the_bypasses_of_a_prefix_route_all_normalise_to_it() {
        for p in [
            "//admin/x",
            "/%61dmin/x",
            "/a/../admin/x",
            "/./admin//x",
            "/admin/./x",
        ] {
            assert_eq!(n(p), "/admin/x", "{p}");
        }
        assert_eq!(n("/%70ing"), "/ping");
        assert_eq!(n("/x/../ping"), "/ping");
    }

    #[test]
    fn clean_paths_are_borrowed_and_unchanged() {
        assert!(matches!(normalize("/ping"), Ok(Cow::Borrowed("/ping"))));
        assert!(matches!(normalize("/a/b/"), Ok(Cow::Borrowed("/a/b/"))));
        assert!(matches!(normalize("/a/b.c"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn the_one_pass_check_agrees_with_the_plain_rules_on_every_short_path() {
        // The rules as written, before the one-pass check.
        fn reference(path: &str) -> Result<Cow<'_, str>, BadPath> {
            if path.contains('\\') {
                return Err(BadPath::Backslash);
            }
            let clean = !path.contains('%')
                && !path.contains("//")
                && !path.contains("/./")
                && !path.contains("/../")
                && !path.ends_with("/.")
                && !path.ends_with("/..");
            if clean && path.starts_with('/') {
                return Ok(Cow::Borrowed(path));
            }
            Ok(Cow::Owned(remove_dot_segments(&decode_unreserved(path)?)))
        }
        let alphabet = ['/', '.', 'a', '%', '2', 'e', '\\'];
        let mut paths = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = paths
                .iter()
                .filter(|p| p.len() == paths.last().map_or(0, String::len))
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(longer);
        }
        assert_eq!(paths.len(), (0..=5).map(|n| 7usize.pow(n)).sum::<usize>());
        for p in &paths {
            let (ours, plain) = (normalize(p), reference(p));
            assert_eq!(ours, plain, "{p:?}");
            assert_eq!(
                matches!(ours, Ok(Cow::Borrowed(_))),
                matches!(plain, Ok(Cow::Borrowed(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn dot_segments_never_climb_above_the_root() {
        assert_eq!(n("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(n("/a/.."), "/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("//"), "/");
    }

    #[test]
    fn encoded_separators_stay_encoded_and_bad_escapes_are_refused() {
        assert_eq!(n("/a%2fb"), "/a%2Fb");
        assert_eq!(n("/a%5Cb/%2e%2e/c"), "/c");
        assert_eq!(n("/a%5cb"), "/a%5Cb");
        assert_eq!(normalize("/a\\b"), Err(BadPath::Backslash));
        assert_eq!(normalize("/a%zz"), Err(BadPath::BadEscape));
        assert_eq!(normalize("/a%4"), Err(BadPath::BadEscape));
    }
}
