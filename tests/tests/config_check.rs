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
    (code, String::from_utf8_lossy(&output.stderr).into_owned(), path.display().to_string())
}

#[test]
fn a_good_config_passes() {
    let (output, _, _dir) = check_config(GOOD);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
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
    let text = GOOD.replace("cluster = \"c\"", "cluster = \"missing\"").replace("127.0.0.1:8080", "no-port");
    let (code, err, _) = stderr_of(&text);
    assert_ne!(code, 0);
    assert!(err.contains("unknown cluster"), "{err}");
    assert!(err.contains("bad endpoint `no-port`"), "{err}");
}
