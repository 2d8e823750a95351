//! `gateway new-filter NAME [--dir PATH]`: writes a filter crate that
//! builds outside this repository: `Cargo.toml` (the SDK as a path
//! dependency relative to the new crate, the small-module release
//! profile), a working `src/lib.rs` with native tests, and a README with
//! the build and drop-in commands.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The crate's name: lowercase letters, digits, `-` and `_`, starting
    /// with a letter.
    name: String,
    /// The folder to create the crate in (default: the current one); the
    /// crate is written to PATH/NAME.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The gateway SDK to depend on (default: the `sdk/` of the checkout
    /// this binary was built from).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.in")),
    ("src/lib.rs", include_str!("template/lib.rs.in")),
    ("README.md", include_str!("template/README.md.in")),
    (".gitignore", include_str!("template/gitignore.in")),
    // The gateway's own pinned toolchain with the wasm32 target, so rustup
    // installs both on the crate's first build.
    (
        "rust-toolchain.toml",
        include_str!("../../../rust-toolchain.toml"),
    ),
];

/// Names the generated code imports, which the filter type must not take.
const TAKEN: &[&str] = &[
    "Config",
    "Decision",
    "Filter",
    "Request",
    "Response",
    "ResponseDecision",
];

pub(super) fn run(args: &Args) -> ExitCode {
    match scaffold(args) {
        Ok(dir) => {
            let shown = dir.display();
            println!("created filter crate `{}` in {shown}", args.name);
            println!("next:");
            println!("  cd {shown}");
            println!("  cargo test");
            println!("  cargo build --release --target wasm32-unknown-unknown");
            println!("  (README.md: inspecting the module and dropping it into a gateway)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn scaffold(args: &Args) -> anyhow::Result<PathBuf> {
    let name = args.name.as_str();
    check_name(name)?;
    let sdk = args
        .sdk
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"));
    let sdk = sdk.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "the gateway SDK is not at {} ({e}); pass --sdk PATH to a checkout's sdk/ folder",
            sdk.display()
        )
    })?;
    anyhow::ensure!(
        sdk.join("Cargo.toml").is_file(),
        "{} holds no Cargo.toml; pass --sdk PATH to a checkout's sdk/ folder",
        sdk.display()
    );
    let parent = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = parent.join(name);
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!("{} already exists and is not empty", dir.display());
    }
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let sdk_path = relative(&dir, &sdk);
    let values = [
        ("{{name}}", name.to_string()),
        ("{{file_stem}}", name.replace('-', "_")),
        ("{{type_name}}", type_name(name)),
        (
            "{{sdk_path}}",
            toml::Value::String(sdk_path.display().to_string()).to_string(),
        ),
    ];
    for (file, template) in TEMPLATES {
        let text = values.iter().fold(template.to_string(), |t, (key, value)| {
            t.replace(key, value)
        });
        let path = dir.join(file);
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let mut bytes = name.bytes();
    let starts_well = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    anyhow::ensure!(
        starts_well && rest_ok && name.len() <= 64,
        "`{name}` is not a crate name for a filter: use lowercase letters, digits, `-` and `_`, starting with a letter"
    );
    Ok(())
}

/// `my-filter` gives `MyFilter`; a name the generated code already uses
/// gets a `Filter` suffix.
fn type_name(name: &str) -> String {
    let camel: String = name
        .split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if TAKEN.contains(&camel.as_str()) {
        format!("{camel}Filter")
    } else {
        camel
    }
}

/// The path from directory `from` to `to`, both absolute.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part.as_os_str());
    }
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_then_descend() {
        let rel = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).display().to_string();
        assert_eq!(
            rel("/tmp/x/my-filter", "/work/gw/sdk"),
            "../../../work/gw/sdk"
        );
        assert_eq!(rel("/work/gw/filters/mine", "/work/gw/sdk"), "../../sdk");
        assert_eq!(rel("/work/gw", "/work/gw/sdk"), "sdk");
        assert_eq!(rel("/work/gw/sdk", "/work/gw/sdk"), ".");
    }

    #[test]
    fn names_become_types_and_bad_names_are_refused() {
        assert_eq!(type_name("my-filter"), "MyFilter");
        assert_eq!(type_name("add_header2"), "AddHeader2");
        assert_eq!(type_name("filter"), "FilterFilter");
        assert!(check_name("my-filter").is_ok());
        for bad in ["", "My", "1abc", "a b", "a/b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
