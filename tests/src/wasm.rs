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

/// The start of a hand-written test module's exports: the ABI version, an
/// allocator that hands out memory from 1024 up and never frees (a
/// `$heap` global), and a `proxy_on_context_create` that does nothing.
/// Goes after the module's imports, memory and data.
pub const WAT_BUMP_HOST_EXPORTS: &str = r#"(global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))"#;

/// Compiles WebAssembly text `text` to `out`.
pub fn wat_to(text: &str, out: &std::path::Path) -> PathBuf {
    let binary = wat::parse_str(text).expect("valid WAT");
    std::fs::write(out, binary).expect("write wasm");
    out.to_path_buf()
}
