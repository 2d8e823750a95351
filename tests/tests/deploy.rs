//! The deployment examples (`examples/deploy/`) and the example configs:
//! what users copy passes `gateway check` with real filters, the
//! Kubernetes manifest embeds the same config, and every grace period
//! covers the gateway's own `shutdown_grace`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gateway_tests::{binary, wasm};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(config: &Path) -> Output {
    Command::new(binary())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run gateway check")
}

fn passes(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the `gateway.toml: |` block of the ConfigMap, unindented.
fn configmap_config(manifest: &str) -> String {
    let mut lines = manifest
        .lines()
        .skip_while(|l| l.trim() != "gateway.toml: |")
        .skip(1);
    let mut out = String::new();
    let mut indent = None;
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let width = line.len() - line.trim_start().len();
        let indent = *indent.get_or_insert(width);
        if width < indent {
            break;
        }
        out.push_str(&line[indent..]);
        out.push('\n');
    }
    assert!(!out.is_empty(), "no gateway.toml block in the manifest");
    out.trim_end().to_string() + "\n"
}

/// The number in the first line of `text` that starts with `key`.
fn number_after(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line"));
    line[key.len()..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number in `{line}`"))
}

/// `text` with its absolute folders moved into `dir` (a test cannot write
/// /var/lib); the folder gets the auth filter and its seed sidecar, as the
/// README's `kubectl create configmap gateway-filters` puts them.
fn localised(text: &str, dir: &Path) -> PathBuf {
    let filters = dir.join("filters");
    std::fs::create_dir_all(&filters).expect("mkdir");
    std::fs::copy(wasm::path("filter-auth"), filters.join("10-auth.wasm")).expect("copy");
    std::fs::copy(
        root().join("examples/seed/10-auth.toml"),
        filters.join("10-auth.toml"),
    )
    .expect("copy");
    let text = text
        .replace("/var/lib/gateway/filters", &filters.display().to_string())
        .replace(
            "/var/cache/gateway",
            &dir.join("cache").display().to_string(),
        );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_manifests_config_is_the_deploy_config_and_passes_check() {
    let config = read("examples/deploy/gateway.toml");
    let embedded = configmap_config(&read("examples/deploy/kubernetes.yaml"));
    assert_eq!(
        embedded, config,
        "kubernetes.yaml embeds examples/deploy/gateway.toml"
    );
    let dir = tempfile::tempdir().expect("dir");
    let stdout = passes(&check(&localised(&embedded, dir.path())));
    assert!(stdout.contains("1 filter(s) start"), "{stdout}");
}

#[test]
fn grace_periods_cover_the_drain_and_probes_use_the_admin_port() {
    let config = read("examples/deploy/gateway.toml");
    let grace = number_after(&config, "shutdown_grace");
    let manifest = read("examples/deploy/kubernetes.yaml");
    let pre_stop = manifest
        .lines()
        .find(|l| l.contains("command: [\"sleep\""))
        .map(|l| number_after(l.trim(), "command"))
        .expect("a preStop sleep");
    assert_eq!(
        number_after(&manifest, "terminationGracePeriodSeconds"),
        pre_stop + grace,
        "the pod's grace is the preStop sleep plus the gateway's drain"
    );
    assert!(
        config.contains("address = \"0.0.0.0:9901\""),
        "admin reachable by the kubelet"
    );
    assert!(manifest.contains("containerPort: 9901"));
    let readiness = manifest
        .split("readinessProbe:")
        .nth(1)
        .expect("a readiness probe");
    assert!(
        readiness
            .trim_start()
            .starts_with("httpGet:\n              path: /ready\n              port: admin"),
        "{readiness}"
    );
    assert!(manifest.contains("runAsNonRoot: true"));

    let unit = read("examples/deploy/gateway.service");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("ExecStart=/usr/local/bin/gateway --config /etc/gateway/gateway.toml"));
    assert!(number_after(&unit, "TimeoutStopSec") > grace);
}

#[test]
fn the_image_runs_as_a_user_with_config_and_filters_as_volumes() {
    let dockerfile = read("examples/deploy/Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert_eq!(stages, 2, "a build stage and a run stage");
    let run_stage = dockerfile.rsplit("\nFROM ").next().unwrap_or("");
    assert!(
        run_stage.contains("\nUSER 10001:10001"),
        "non-root at run time"
    );
    let volumes = run_stage
        .lines()
        .find(|l| l.starts_with("VOLUME "))
        .expect("VOLUME");
    for path in [
        "/etc/gateway",
        "/var/lib/gateway/filters",
        "/var/cache/gateway",
    ] {
        assert!(volumes.contains(path), "{path} not a volume: {volumes}");
    }
    assert!(dockerfile.contains("COPY examples/deploy/gateway.toml /etc/gateway/gateway.toml"));
    assert!(dockerfile.contains("CMD [\"--config\", \"/etc/gateway/gateway.toml\"]"));
    assert!(dockerfile.contains("RUN ./scripts/setup-toolchain.sh"));
}

#[test]
fn the_example_configs_pass_check() {
    let stdout = passes(&check(&root().join("examples/gateway.toml")));
    assert!(stdout.contains("configuration is valid"), "{stdout}");

    // The demo's config with its seed folder holding the real filters.
    let dir = tempfile::tempdir().expect("dir");
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).expect("mkdir");
    for (module, file) in [("filter-auth", "10-auth"), ("filter-router", "20-router")] {
        std::fs::copy(wasm::path(module), seed.join(format!("{file}.wasm"))).expect("copy");
        std::fs::copy(
            root().join(format!("examples/seed/{file}.toml")),
            seed.join(format!("{file}.toml")),
        )
        .expect("copy");
    }
    let demo = dir.path().join("demo.toml");
    std::fs::write(&demo, read("examples/demo.toml")).expect("write");
    let stdout = passes(&check(&demo));
    assert!(stdout.contains("2 filter(s) start"), "{stdout}");
}
