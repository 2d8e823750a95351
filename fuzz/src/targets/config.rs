//! The configuration parser and validator: any text is either a config or
//! errors naming file, line and key, never a panic.

use std::path::Path;

use super::Target;

const SEED: &str = r#"
[runtime]
workers = 1
shutdown_grace = "15s"

[wasm]
epoch_tick = "5ms"
failure_backoff = "1s"

[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:0"
header_read_timeout = "10s"

[[listener.filter]]
name = "auth"
path = "auth.wasm"
deadline = "100ms"
max_callout_timeout = "30s"
config = '{"a": 1}'

[[listener.route]]
path_prefix = "/"
cluster = "c"
timeout = "2s"

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:8080", "localhost:8181"]
balance = "round_robin"
connect_timeout = "250ms"
"#;

pub fn target() -> Target {
    let mut seeds = vec![SEED.as_bytes().to_vec()];
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    if let Ok(dir) = std::fs::read_dir(examples) {
        for entry in dir.filter_map(Result::ok) {
            if entry.path().extension().is_some_and(|e| e == "toml") {
                if let Ok(text) = std::fs::read(entry.path()) {
                    seeds.push(text);
                }
            }
        }
    }
    Target {
        name: "config",
        seeds,
        max_len: 16 << 10,
        run: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let _ = gateway::config::Config::parse(Path::new("fuzz.toml"), &text);
        }),
    }
}
