//! Plugin configuration parsing.
//!
//! The gateway hands each filter its configuration as bytes (the proxy-wasm
//! "plugin configuration"). The SDK parses them once, in `proxy_on_configure`,
//! into the filter's [`crate::Filter::Config`]:
//!
//! - **JSON** when the first non-blank byte is `{`, or `[` and the text parses
//!   as JSON (a top-level array) (cargo feature `json`, on by default);
//! - **TOML** otherwise (so a `[section]` header is TOML) (cargo feature
//!   `toml`, on by default);
//! - **empty** (or only whitespace): parsed as `{}`, so a config struct whose
//!   fields all have `#[serde(default)]` gets its defaults, and `()` works too.
//!   This needs no feature: a filter without configuration can turn both
//!   formats off (`default-features = false`) and its module shrinks by the
//!   two parsers.
//!
//! An error rejects the load: `proxy_on_configure` returns false after logging
//! the error at `Error` level. Keys the configuration type does not know
//! (often a misspelled optional key) are logged once at `Warn` and otherwise
//! ignored; add `#[serde(deny_unknown_fields)]` to the type to reject them.

use serde::de::DeserializeOwned;

/// Parses configuration bytes the way the SDK does at load time. Exposed so a
/// filter's own tests can check sample configurations.
pub fn parse<C: DeserializeOwned>(bytes: &[u8]) -> Result<C, String> {
    parse_reporting_unknown(bytes).map(|(config, _)| config)
}

/// Parses like [`parse`], and also returns the keys the type ignored
/// (dotted paths such as `limits.burts`).
pub fn parse_reporting_unknown<C: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(C, Vec<String>), String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("configuration is not UTF-8: {e}"))?;
    let trimmed = text.trim_start();
    if trimmed.trim_end().is_empty() {
        return empty().map(|config| (config, Vec::new()));
    }
    if trimmed.starts_with('{') {
        return json(text);
    }
    if trimmed.starts_with('[') {
        if let Ok(parsed) = json(text) {
            return Ok(parsed);
        }
    }
    toml(text)
}

/// `{}` first (structs with defaults); unit for `()` and `Option`s. The
/// `{}` error is the one reported: it names the missing field.
fn empty<C: DeserializeOwned>() -> Result<C, String> {
    use serde::de::value::{Error, MapDeserializer, UnitDeserializer};
    let map = MapDeserializer::<_, Error>::new(std::iter::empty::<(&str, &str)>());
    C::deserialize(map).or_else(|error| {
        C::deserialize(UnitDeserializer::<Error>::new())
            .map_err(|_| format!("empty configuration not accepted: {error}"))
    })
}

#[cfg(feature = "json")]
fn json<C: DeserializeOwned>(text: &str) -> Result<(C, Vec<String>), String> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let config = serde_ignored::deserialize(&mut de, |path| unknown.push(path.to_string()))
        .and_then(|config| de.end().map(|()| config))
        .map_err(|e| format!("invalid JSON configuration: {e}"))?;
    Ok((config, unknown))
}

#[cfg(not(feature = "json"))]
fn json<C: DeserializeOwned>(_: &str) -> Result<(C, Vec<String>), String> {
    Err(
        "JSON configuration not accepted: the filter was built without the SDK's `json` feature"
            .into(),
    )
}

#[cfg(feature = "toml")]
fn toml<C: DeserializeOwned>(text: &str) -> Result<(C, Vec<String>), String> {
    let mut unknown = Vec::new();
    let de = ::toml::Deserializer::new(text);
    let config = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
        .map_err(|e| format!("invalid TOML configuration: {e}"))?;
    Ok((config, unknown))
}

#[cfg(not(feature = "toml"))]
fn toml<C: DeserializeOwned>(_: &str) -> Result<(C, Vec<String>), String> {
    Err(
        "TOML configuration not accepted: the filter was built without the SDK's `toml` feature"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Sample {
        name: String,
        limit: u32,
        inner: Inner,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Inner {
        burst: u32,
    }

    #[test]
    fn empty_gives_defaults_and_unit() {
        assert_eq!(parse::<Sample>(b"  \n").unwrap(), Sample::default());
        parse::<()>(b"").unwrap();
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Required {
            cluster: String,
        }
        let error = parse::<Required>(b"").unwrap_err();
        assert!(error.contains("cluster"), "{error}");
    }

    #[cfg(not(feature = "json"))]
    #[test]
    fn a_format_left_out_is_rejected_naming_the_feature() {
        let error = parse::<Sample>(br#"{"limit": 1}"#).unwrap_err();
        assert!(error.contains("`json` feature"), "{error}");
    }

    #[cfg(all(feature = "json", feature = "toml"))]
    #[test]
    fn json_toml_and_errors_naming_the_format() {
        let json: Sample = parse(br#"{"name": "a", "limit": 3}"#).unwrap();
        let toml: Sample = parse(b"name = \"a\"\nlimit = 3\n").unwrap();
        assert_eq!(json, toml);
        assert!(parse::<Sample>(b"{nope").unwrap_err().contains("JSON"));
        assert!(parse::<Sample>(b"limit = ").unwrap_err().contains("TOML"));
        assert!(
            parse::<Sample>(br#"{"limit": 1} x"#).is_err(),
            "trailing text"
        );
    }

    #[cfg(all(feature = "json", feature = "toml"))]
    #[test]
    fn unknown_keys_are_reported_with_their_path() {
        use super::parse_reporting_unknown;
        let (config, unknown) =
            parse_reporting_unknown::<Sample>(br#"{"limt": 3, "inner": {"burts": 1}}"#).unwrap();
        assert_eq!(config, Sample::default());
        assert_eq!(unknown, ["limt", "inner.burts"]);
        let (_, unknown) =
            parse_reporting_unknown::<Sample>(b"limit = 1\n[inner]\nburts = 2\n").unwrap();
        assert_eq!(unknown, ["inner.burts"]);
        let (_, unknown) = parse_reporting_unknown::<Sample>(b"limit = 1").unwrap();
        assert!(unknown.is_empty());
    }
}
