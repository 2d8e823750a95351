//! The WebAssembly filters under test, built by `tests/build.rs`.

use std::path::PathBuf;

/// The `.wasm` file of filter crate `crate_name` (`filter-auth` gives
/// `filter_auth.wasm`; test filters in `tests/wasm/` likewise).
pub fn path(crate_name: &str) -> PathBuf {
    let file = format!("{}.wasm", crate_name.replace('-', "_"));
    let path = PathBuf::from(env!("GATEWAY_TEST_WASM_DIR")).join(file);
    assert!(
        path.exists(),
        "{} was not built; tests/build.rs builds it",
        path.display()
    );
    path
}

/// Compiles the hand-written module `tests/wasm/hostile/<name>.wat` into
/// `dir/<name>.wasm` and returns that path.
pub fn hostile(name: &str, dir: &std::path::Path) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("wasm/hostile")
        .join(format!("{name}.wat"));
    let text =
        std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    wat_to(&text, &dir.join(format!("{name}.wasm")))
}

/// Compiles WebAssembly text `text` to `out`.
pub fn wat_to(text: &str, out: &std::path::Path) -> PathBuf {
    let binary = wat::parse_str(text).expect("valid WAT");
    std::fs::write(out, binary).expect("write wasm");
    out.to_path_buf()
}
