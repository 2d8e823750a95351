//! Test: `examples/gateway.toml` mentions every key the config types accept.
//!
//! The accepted keys come from the serde types themselves: a probing
//! deserializer walks `Config` one path at a time and records the field names
//! each struct asks for (the names serde matches, renames applied). A field
//! added to any config struct and not to the example fails this test.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Config;

/// What the walk found: for each table (dotted path, "" for the root) the
/// keys its struct accepts.
type Tables = BTreeMap<String, Vec<&'static str>>;

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe stops here")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// Deserializes "the value at `at`", steering toward `target`: structs on
/// the way get a one-key map, the struct at `target` is recorded, anything
/// else (strings, numbers, enums, maps) stops the walk.
struct Probe {
    at: Vec<&'static str>,
    target: Rc<Vec<&'static str>>,
    tables: Rc<RefCell<Tables>>,
}

impl Probe {
    fn child(&self, key: &'static str) -> Probe {
        let mut at = self.at.clone();
        at.push(key);
        Probe {
            at,
            target: self.target.clone(),
            tables: self.tables.clone(),
        }
    }
}

impl<'de> Deserializer<'de> for Probe {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        // `Spanned<T>` and friends are values that serde models as structs.
        if name.starts_with("$__") {
            return Err(Stop);
        }
        if self.at.len() == self.target.len() {
            self.tables
                .borrow_mut()
                .insert(self.at.join("."), fields.to_vec());
            return Err(Stop);
        }
        let next = self.target[self.at.len()];
        if !fields.contains(&next) {
            return Err(Stop);
        }
        visitor.visit_map(OneKey {
            key: Some(next),
            value: Some(self.child(next)),
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    // An array of tables (`[[listener]]`): its element is at the same path.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(OneElement(Some(self)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct map enum
        identifier ignored_any
    }
}

struct OneKey {
    key: Option<&'static str>,
    value: Option<Probe>,
}

impl<'de> MapAccess<'de> for OneKey {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed
                .deserialize(de::value::BorrowedStrDeserializer::<Stop>::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(self.value.take().ok_or(Stop)?)
    }
}

struct OneElement(Option<Probe>);

impl<'de> SeqAccess<'de> for OneElement {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.0.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

/// Every table `Config` accepts, with its keys.
fn accepted_tables() -> Tables {
    let tables = Rc::new(RefCell::new(Tables::new()));
    let mut queue = VecDeque::from([Vec::<&'static str>::new()]);
    let mut tried = BTreeSet::new();
    while let Some(target) = queue.pop_front() {
        // Bounded: config types are finite, and each path is tried once.
        if !tried.insert(target.clone()) || tried.len() > 1000 {
            continue;
        }
        let probe = Probe {
            at: Vec::new(),
            target: Rc::new(target.clone()),
            tables: tables.clone(),
        };
        let _ = <Config as serde::Deserialize>::deserialize(probe);
        if let Some(keys) = tables.borrow().get(&target.join(".")) {
            for key in keys {
                let mut next = target.clone();
                next.push(key);
                queue.push_back(next);
            }
        }
    }
    let tables = tables.borrow().clone();
    tables
}

/// The `(table, key)` pairs and the table headers written in a TOML text,
/// commented-out ones included (`# key = ...`, `# [[listener.filter]]`).
fn documented(text: &str) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let (mut keys, mut headers) = (BTreeSet::new(), BTreeSet::new());
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim_start().trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_start_matches('[');
            if let Some(end) = name.find(']') {
                table = name[..end].trim().to_string();
                headers.insert(table.clone());
            }
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                keys.insert((table.clone(), key.to_string()));
            }
        }
    }
    (keys, headers)
}

#[test]
fn the_walk_finds_nested_tables_and_renamed_keys() {
    let tables = accepted_tables();
    for table in [
        "",
        "runtime",
        "wasm",
        "listener",
        "listener.route.filter",
        "cluster.tls",
    ] {
        assert!(tables.contains_key(table), "{table} not found: {tables:?}");
    }
    assert!(tables["listener"].contains(&"filters_dir"));
    assert!(tables["listener.filter"].contains(&"body_buffer_limit"));
}

#[test]
fn the_example_config_documents_every_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/gateway.toml");
    let text = std::fs::read_to_string(path).expect("examples/gateway.toml");
    let (keys, headers) = documented(&text);
    let tables = accepted_tables();
    let mut missing = Vec::new();
    for (table, fields) in &tables {
        for field in fields {
            let nested = if table.is_empty() {
                field.to_string()
            } else {
                format!("{table}.{field}")
            };
            let present = if tables.contains_key(&nested) {
                headers.contains(&nested)
            } else {
                keys.contains(&(table.clone(), field.to_string()))
            };
            if !present {
                missing.push(nested);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "examples/gateway.toml does not mention: {missing:?}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/gateway.toml"
    ));
    let text = std::fs::read_to_string(path).expect("examples/gateway.toml");
    if let Err(errors) = Config::parse(path, &text) {
        panic!("examples/gateway.toml: {errors}");
    }
}
