//! Configuration: one TOML file, typed serde structs, validated whole
//! before anything starts.

pub mod filter;
