//! A filter's plugin configuration as written in TOML: a string handed to
//! the filter as is, or a native table (`config = { ... }`, `[config]`)
//! handed to it as JSON.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `config = "..."` or a table (present keys only: an absent key is `None`
/// through `#[serde(default)]`).
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(Written).map(Some)
}

struct Written;

impl<'de> Visitor<'de> for Written {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a table")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_string())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
        let table = toml::Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(to_json(toml::Value::Table(table)).to_string())
    }
}

/// The JSON a filter receives for a TOML value. Dates and times become
/// their RFC 3339 text (JSON has no such type).
pub(crate) fn to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.into_iter().map(to_json).collect()),
        toml::Value::Table(table) => {
            J::Object(table.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::FilterConfig;

    fn parse(text: &str) -> Result<FilterConfig, toml::de::Error> {
        toml::from_str(&format!("name = \"f\"\npath = \"f.wasm\"\n{text}"))
    }

    #[test]
    fn a_string_is_handed_over_as_written() {
        let cfg = parse("config = 'limit = 3'").expect("parses");
        assert_eq!(cfg.config.as_deref(), Some("limit = 3"));
        assert_eq!(parse("").expect("parses").config, None);
    }

    #[test]
    fn a_table_is_handed_over_as_json() {
        let inline =
            parse(r#"config = { limit = 3, names = ["a", "b"], on = true }"#).expect("parses");
        let section =
            parse("[config]\nlimit = 3\nnames = [\"a\", \"b\"]\non = true\n").expect("parses");
        let json: serde_json::Value =
            serde_json::from_str(inline.config.as_deref().expect("config")).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"limit": 3, "names": ["a", "b"], "on": true})
        );
        assert_eq!(inline.config, section.config);
    }

    #[test]
    fn nested_tables_and_dates_convert() {
        let cfg = parse("[[config.routes]]\npath = \"/ping\"\ncluster = \"c\"\n[config.at]\nwhen = 1979-05-27T07:32:00Z\n")
            .expect("parses");
        let json: serde_json::Value =
            serde_json::from_str(cfg.config.as_deref().expect("config")).expect("JSON");
        assert_eq!(json["routes"][0]["cluster"], "c");
        assert_eq!(json["at"]["when"], "1979-05-27T07:32:00Z");
    }

    #[test]
    fn other_types_are_refused_with_what_is_expected() {
        let err = parse("config = 3").expect_err("an integer is no configuration");
        assert!(err.to_string().contains("a string or a table"), "{err}");
    }
}
