//! Builds the WebAssembly filters the integration tests load: the bundled
//! filters of `filters/`, the SDK's recipes of `sdk/recipes/` and the test
//! filters of `tests/wasm/` (written against the official proxy-wasm crate),
//! for `wasm32-unknown-unknown`.
//!
//! The nested cargo uses its own target directory, so it never waits on
//! the lock of the build that runs this script.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root").to_path_buf();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-filters");
    for watched in ["sdk", "filters", "tests/wasm"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    require_wasm_target();

    let mut bundled = crates_in(&root.join("filters"), "filter-");
    bundled.extend(crates_in(&root.join("sdk/recipes"), "recipe-"));
    if !bundled.is_empty() {
        let mut args = vec![
            "--manifest-path".to_string(),
            root.join("Cargo.toml").display().to_string(),
        ];
        for package in &bundled {
            args.push("-p".into());
            args.push(package.clone());
        }
        cargo_wasm(&target_dir, &args);
    }
    let test_filters = root.join("tests/wasm/Cargo.toml");
    if test_filters.exists() {
        cargo_wasm(
            &target_dir,
            &[
                "--manifest-path".to_string(),
                test_filters.display().to_string(),
            ],
        );
    }
    println!(
        "cargo:rustc-env=GATEWAY_TEST_WASM_DIR={}",
        target_dir.join("wasm32-unknown-unknown/release").display()
    );
}

/// The package names of the crates in `dir`: `prefix` + folder name.
fn crates_in(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").exists())
                .map(|e| format!("{prefix}{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// Stops with the fix when the wasm32 target is missing, instead of a
/// nested build failing with "can't find crate for `std`".
fn require_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot {
        let lib = sysroot.join("lib/rustlib/wasm32-unknown-unknown/lib");
        assert!(
            lib.is_dir(),
            "the wasm32-unknown-unknown target is not installed for this toolchain \
             ({} missing): run ./scripts/setup-toolchain.sh (or ./scripts/test.sh)",
            lib.display()
        );
    }
}

fn cargo_wasm(target_dir: &Path, args: &[String]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--target-dir",
        ])
        .arg(target_dir)
        .args(args);
    // Small modules: no debug info in the wasm artefacts.
    command
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    // Flags meant for the host build must not leak into the wasm one.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("run cargo for the wasm filters");
    assert!(
        status.success(),
        "building the wasm filters failed: cargo {}",
        args.join(" ")
    );
}
