//! Filters written with the AssemblyScript proxy-wasm SDK
//! (`@solo-io/proxy-runtime`), built from `tests/assemblyscript/<name>/`
//! with npm and the AssemblyScript compiler pinned in its `package.json`
//! and `package-lock.json`. The result is cached under the test target
//! directory by a digest of the sources, so npm runs once per change.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Builds (or takes from the cache) the filter in
/// `tests/assemblyscript/<name>/` and returns its `.wasm`. Needs `node` and
/// `npm` (`.ci/run` installs them) and the npm registry on first build.
pub fn build(name: &str) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assemblyscript")
        .join(name);
    let files = [
        "package.json",
        "package-lock.json",
        "assembly/index.ts",
        "assembly/tsconfig.json",
    ];
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        let bytes = std::fs::read(source.join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", source.join(file).display()));
        bytes.hash(&mut digest);
    }
    // GATEWAY_TEST_WASM_DIR is <target>/wasm-filters/wasm32-unknown-unknown/release.
    let cache = PathBuf::from(env!("GATEWAY_TEST_WASM_DIR"))
        .ancestors()
        .nth(2)
        .expect("wasm-filters directory")
        .join("assemblyscript")
        .join(name);
    let wasm = cache.join(format!("{name}-{:016x}.wasm", digest.finish()));
    if wasm.exists() {
        return wasm;
    }
    let work = cache.join("work");
    std::fs::create_dir_all(work.join("assembly")).expect("create the build directory");
    for file in files {
        std::fs::copy(source.join(file), work.join(file)).expect("copy the filter sources");
    }
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&work),
        "npm ci",
    );
    let tmp = cache.join(format!("{name}.wasm.tmp"));
    run(
        Command::new("node")
            .arg("node_modules/assemblyscript/bin/asc")
            .args([
                "assembly/index.ts",
                "--use",
                "abort=abort_proc_exit",
                "--optimize",
                "-b",
            ])
            .arg(&tmp)
            .current_dir(&work),
        "asc",
    );
    std::fs::rename(&tmp, &wasm).expect("move the built filter into the cache");
    wasm
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it ({e}); install node and npm"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
