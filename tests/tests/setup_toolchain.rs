//! `scripts/setup-toolchain.sh` and the demo's first steps on simulated
//! machines: one with only rustup, one with the pinned toolchain but not the
//! wasm target, one with both. Stand-ins for `rustup` (and `cargo`) record
//! what they are asked; the real toolchain is never touched.

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
"target add")
    [ -e "$state/no-network" ] && { echo "error: could not download" >&2; exit 1; }
    echo "$3" >>"$state/targets" ;;
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

    /// Runs `examples/demo.sh --once` with stand-ins for cargo and curl
    /// that only record their calls (the demo then stops: nothing was built).
    fn demo(&self) -> Output {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for tool in ["cargo", "curl"] {
            let path = bin.join(tool);
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho \"{tool} $*\" >>\"$FAKE_RUSTUP_STATE/calls\"\n"),
            )
            .expect("write");
            let mut perms = std::fs::metadata(&path).expect("meta").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
            std::fs::set_permissions(&path, perms).expect("chmod");
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(root().join("examples/demo.sh"))
            .arg("--once")
            .env("PATH", path)
            .env("RUSTUP", self.dir.path().join("rustup"))
            .env("FAKE_RUSTUP_STATE", self.dir.path())
            .env("CARGO_TARGET_DIR", self.dir.path().join("target"))
            .output()
            .expect("run examples/demo.sh")
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

/// The demo installs the missing wasm target before it builds anything, and
/// builds the (quick) filters before the (long) gateway.
#[test]
fn the_demo_adds_the_target_then_builds_the_filters_before_the_gateway() {
    let channel = pinned_channel();
    let installed = format!("{channel}-x86_64-unknown-linux-gnu");
    let machine = Machine::new(&[&installed], &["x86_64-unknown-linux-gnu"]);
    let output = machine.demo();
    assert!(!output.status.success(), "nothing was really built");
    let calls = machine.read("calls");
    let at = |needle: &str| {
        calls
            .lines()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{calls}"))
    };
    let target = at(&format!("target add {TARGET}"));
    let filters = at(&format!("cargo build --release --target {TARGET}"));
    let gateway = at("cargo build --release -p gateway");
    assert!(target < filters && filters < gateway, "{calls}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("checking the Rust toolchain"), "{said}");
}

/// When the target cannot be installed, the demo stops before any build.
#[test]
fn the_demo_stops_before_building_when_the_target_cannot_be_added() {
    let channel = pinned_channel();
    let installed = format!("{channel}-x86_64-unknown-linux-gnu");
    let machine = Machine::new(&[&installed], &["x86_64-unknown-linux-gnu"]);
    std::fs::write(machine.dir.path().join("no-network"), "").expect("write");
    let output = machine.demo();
    assert_eq!(output.status.code(), Some(1));
    let calls = machine.read("calls");
    assert!(
        !calls.contains("cargo "),
        "no build after a failed setup: {calls}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the toolchain setup failed"), "{stderr}");
}
