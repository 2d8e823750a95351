//! The fuzz targets: each a name, seed inputs and a function that must
//! never panic, whatever the input.

mod config;
mod guest;
mod pairs;
mod sni;

/// Runs one input; panics are findings.
pub type Run = Box<dyn FnMut(&[u8])>;

pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub max_len: usize,
    pub run: Run,
}

pub fn all() -> Vec<Target> {
    vec![
        config::target(),
        sni::target(),
        pairs::target(),
        guest::target(),
    ]
}
