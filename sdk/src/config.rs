//! Plugin configuration parsing.
//!
//! The gateway hands each filter its configuration as bytes (the proxy-wasm
//! "plugin configuration"). The SDK parses them once, in `proxy_on_configure`,
//! into the filter's [`crate::Filter::Config`]:
//!
//! - **JSON** when the first non-blank byte is `{`, or `[` and the text parses
//!   as JSON (a top-level array);
//! - **TOML** otherwise (so a `[section]` header is TOML);
//! - **empty** (or only whitespace): parsed as `{}`, so a config struct whose
//!   fields all have `#[serde(default)]` gets its defaults, and `()` works too.
//!
//! An error rejects the load: `proxy_on_configure` returns false after logging
//! the error at `Error` level.

use serde::de::DeserializeOwned;

/// Parses configuration bytes the way the SDK does at load time. Exposed so a
/// filter's own tests can check sample configurations.
pub fn parse<C: DeserializeOwned>(bytes: &[u8]) -> Result<C, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("configuration is not UTF-8: {e}"))?;
    let trimmed = text.trim_start();
    if trimmed.trim_end().is_empty() {
        // `{}` first (structs with defaults); `null` for `()` and `Option`s.
        // Report the `{}` error: it names the missing field.
        return serde_json::from_str("{}").or_else(|error: serde_json::Error| {
            serde_json::from_str("null")
                .map_err(|_| format!("empty configuration not accepted: {error}"))
        });
    }
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("invalid JSON configuration: {e}"));
    }
    if trimmed.starts_with('[') {
        if let Ok(config) = serde_json::from_str(text) {
            return Ok(config);
        }
    }
    toml::from_str(text).map_err(|e| format!("invalid TOML configuration: {e}"))
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
    }

    #[test]
    fn json_toml_and_empty() {
        let json: Sample = parse(br#"{"name": "a", "limit": 3}"#).unwrap();
        let toml: Sample = parse(b"name = \"a\"\nlimit = 3\n").unwrap();
        assert_eq!(json, toml);
        assert_eq!(parse::<Sample>(b"  \n").unwrap(), Sample::default());
        parse::<()>(b"").unwrap();
    }

    #[test]
    fn errors_name_the_format() {
        assert!(parse::<Sample>(b"{nope").unwrap_err().contains("JSON"));
        assert!(parse::<Sample>(b"limit = ").unwrap_err().contains("TOML"));
    }
}
