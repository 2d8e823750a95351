//! `gateway check`: bad configs exit non-zero naming file, line and key.

use gateway_tests::check_config;

const GOOD: &str = r#"
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:0"

[[listener.route]]
path_prefix = "/"
cluster = "c"

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:8080"]
connect_timeout = "250ms"
"#;

fn stderr_of(text: &str) -> (i32, String, String) {
    let (output, path, _dir) = check_config(text);
    let code = output.status.code().unwrap_or(-1);
    (
        code,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn a_good_config_passes() {
    let (output, _, _dir) = check_config(GOOD);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = GOOD.replace("endpoints = [", "clustr = 1\nendpoints = [");
    let (code, err, path) = stderr_of(&text);
    assert_ne!(code, 0);
    assert!(err.contains("unknown field `clustr`"), "{err}");
    assert!(err.contains(&format!("{path}:13:1")), "{err}");
}

#[test]
fn bad_duration_names_line_and_key() {
    let text = GOOD.replace("\"250ms\"", "\"5 parsecs\"");
    let (code, err, path) = stderr_of(&text);
    assert_ne!(code, 0);
    assert!(err.contains("connect_timeout"), "{err}");
    assert!(err.contains(&format!("{path}:14:19")), "{err}");
}

#[test]
fn dangling_cluster_reference_names_line_and_key() {
    let text = GOOD.replace("cluster = \"c\"", "cluster = \"missing\"");
    let (code, err, path) = stderr_of(&text);
    assert_ne!(code, 0);
    assert!(err.contains("unknown cluster `missing`"), "{err}");
    assert!(err.contains("listener[0].route[0].cluster"), "{err}");
    assert!(err.contains(&format!("{path}:9:")), "{err}");
}

#[test]
fn every_semantic_error_is_reported_at_once() {
    let text = GOOD
        .replace("cluster = \"c\"", "cluster = \"missing\"")
        .replace("127.0.0.1:8080", "no-port");
    let (code, err, _) = stderr_of(&text);
    assert_ne!(code, 0);
    assert!(err.contains("unknown cluster"), "{err}");
    assert!(err.contains("bad endpoint `no-port`"), "{err}");
}

#[test]
fn the_example_configs_are_valid() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "Cargo.toml")
        {
            let output = std::process::Command::new(gateway_tests::binary())
                .args(["check", "--config"])
                .arg(&path)
                .output()
                .expect("run gateway check");
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn bad_route_hosts_name_line_and_key() {
    for (host, why) in [
        ("*", "leave `host` out to match every host"),
        ("a.*.com", "only allowed as the whole first label"),
        ("example.*", "only allowed as the whole first label"),
        ("example.com:8080", "takes no port"),
        ("*.", "no name after `*.`"),
        ("a..com", "empty label"),
        ("ex ample.com", "not allowed in a host name"),
    ] {
        let text = GOOD.replace(
            "path_prefix = \"/\"",
            &format!("path_prefix = \"/\"\nhost = \"{host}\""),
        );
        let (code, err, path) = stderr_of(&text);
        assert_ne!(code, 0, "{host}");
        assert!(
            err.contains(why)
                && err.contains("listener[0].route[0].host")
                && err.contains(&format!("{path}:9:8")),
            "{host}: {err}"
        );
    }
}

#[test]
fn wildcard_and_address_route_hosts_pass() {
    for host in ["*.example.com", "API.example.com", "[::1]", "127.0.0.1"] {
        let text = GOOD.replace(
            "path_prefix = \"/\"",
            &format!("path_prefix = \"/\"\nhost = \"{host}\""),
        );
        let (output, _, _dir) = check_config(&text);
        assert!(
            output.status.success(),
            "{host}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
