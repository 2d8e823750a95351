//! The WebAssembly filters under test, built by `tests/build.rs`.

use std::path::PathBuf;

/// The `.wasm` file of filter crate `crate_name` (`filter-auth` gives
/// `filter_auth.wasm`; test filters in `tests/wasm/` likewise).
pub fn path(crate_name: &str) -> PathBuf {
    let file = format!("{}.wasm", crate_name.replace('-', "_"));
    let path = PathBuf::from(env!("GATEWAY_TEST_WASM_DIR")).join(file);
    assert!(path.exists(), "{} was not built; tests/build.rs builds it", path.display());
    path
}

/// The text of a hand-written hostile module in `tests/wasm/hostile/`.
pub fn hostile(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wasm/hostile").join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}
