//! `scripts/setup-toolchain.sh` on simulated machines: one with only
//! rustup, one with the pinned toolchain but not the wasm target, one with
//! both. A stand-in `rustup` records what the script asks of it.

use std::path::PathBuf;
use std::process::{Command, Output};

const TARGET: &str = "wasm32-unknown-unknown";

/// A stand-in for rustup that keeps its installed toolchains and targets
/// in files and logs every call.
const FAKE_RUSTUP: &str = r#"#!/bin/sh
state=$FAKE_RUSTUP_STATE
echo "$*" >>"$state/calls"
case "$1 $2" in
"toolchain list") cat "$state/toolchains" 2>/dev/null ;;
"toolchain install")
    echo "$3-x86_64-unknown-linux-gnu" >>"$state/toolchains"
    shift 3
    while [ $# -gt 0 ]; do
        [ "$1" = --target ] && echo "$2" >>"$state/targets"
        shift
    done ;;
"target list") cat "$state/targets" 2>/dev/null ;;
"target add") echo "$3" >>"$state/targets" ;;
*) echo "unexpected: $*" >&2; exit 3 ;;
esac
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn pinned_channel() -> String {
    let text = std::fs::read_to_string(root().join("rust-toolchain.toml")).expect("toolchain file");
    let line = text
        .lines()
        .find(|l| l.starts_with("channel"))
        .expect("a channel line");
    line.split('"').nth(1).expect("quoted channel").to_string()
}

struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new(toolchains: &[&str], targets: &[&str]) -> Machine {
        let dir = tempfile::tempdir().expect("temp dir");
        let rustup = dir.path().join("rustup");
        std::fs::write(&rustup, FAKE_RUSTUP).expect("write rustup");
        let mut perms = std::fs::metadata(&rustup).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&rustup, perms).expect("chmod");
        let lines = |items: &[&str]| items.iter().map(|i| format!("{i}\n")).collect::<String>();
        std::fs::write(dir.path().join("toolchains"), lines(toolchains)).expect("write");
        std::fs::write(dir.path().join("targets"), lines(targets)).expect("write");
        Machine { dir }
    }

    fn setup(&self, args: &[&str]) -> Output {
        Command::new(root().join("scripts/setup-toolchain.sh"))
            .args(args)
            .env("RUSTUP", self.dir.path().join("rustup"))
            .env("FAKE_RUSTUP_STATE", self.dir.path())
            .output()
            .expect("run scripts/setup-toolchain.sh")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn installs(&self) -> Vec<String> {
        self.read("calls")
            .lines()
            .filter(|c| c.starts_with("toolchain install") || c.starts_with("target add"))
            .map(str::to_string)
            .collect()
    }
}

fn ok(output: &Output) -> bool {
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

#[test]
fn a_machine_with_only_rustup_gets_the_toolchain_and_the_target() {
    let channel = pinned_channel();
    let machine = Machine::new(&[], &[]);
    assert!(
        !machine.setup(&["--check"]).status.success(),
        "--check must fail"
    );
    assert!(machine.installs().is_empty(), "--check installs nothing");
    assert!(ok(&machine.setup(&[])));
    assert_eq!(
        machine.installs(),
        vec![format!(
            "toolchain install {channel} --profile minimal --target {TARGET}"
        )]
    );
    assert_eq!(machine.read("targets").trim(), TARGET);
    assert!(
        ok(&machine.setup(&["--check"])),
        "after setup, --check passes"
    );
}

#[test]
fn a_toolchain_without_the_wasm_target_gets_the_target_added() {
    let channel = pinned_channel();
    let installed = format!("{channel}-x86_64-unknown-linux-gnu");
    let machine = Machine::new(&[&installed], &["x86_64-unknown-linux-gnu"]);
    let check = machine.setup(&["--check"]);
    assert!(
        !check.status.success(),
        "--check must fail without the target"
    );
    assert!(String::from_utf8_lossy(&check.stderr).contains(&format!("target {TARGET}: missing")));
    assert!(ok(&machine.setup(&[])));
    assert_eq!(
        machine.installs(),
        vec![format!("target add {TARGET} --toolchain {channel}")],
        "only the target is added; the toolchain is not reinstalled"
    );
}

#[test]
fn a_complete_machine_is_left_alone() {
    let channel = pinned_channel();
    let installed = format!("{channel}-x86_64-unknown-linux-gnu (default)");
    let machine = Machine::new(&[&installed], &["x86_64-unknown-linux-gnu", TARGET]);
    assert!(ok(&machine.setup(&[])));
    assert!(machine.installs().is_empty(), "{:?}", machine.installs());
}

/// Other toolchains (stable, another version) do not count as the pinned one.
#[test]
fn another_toolchain_is_not_the_pinned_one() {
    let channel = pinned_channel();
    let machine = Machine::new(&["stable-x86_64-unknown-linux-gnu (default)"], &[TARGET]);
    assert!(ok(&machine.setup(&[])));
    assert!(
        machine
            .installs()
            .iter()
            .any(|c| c.starts_with(&format!("toolchain install {channel} "))),
        "{:?}",
        machine.installs()
    );
}
