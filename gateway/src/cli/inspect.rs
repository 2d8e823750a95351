//! `gateway filter inspect FILE.wasm`: what a user runs before dropping a
//! module into production. Loads it in the real filter host, reports its
//! ABI version, exports, imports (and which are not implemented here),
//! callbacks and memory needs, then starts it with the given
//! configuration. Exit 0 when it would serve, 1 with the reason otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::filter::FilterHostConfig;
use crate::config::FilterConfig;
use crate::filter::FilterReport;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The module (`.wasm`).
    file: PathBuf,
    /// The plugin configuration handed to `proxy_on_configure`: a file
    /// to read, or else the text itself (JSON or TOML, as the filter takes it).
    #[arg(long, short)]
    config: Option<String>,
    /// The VM configuration handed to `proxy_on_vm_start` (file or text).
    #[arg(long)]
    vm_config: Option<String>,
    /// The report as JSON (for CI pipelines).
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &Args) -> ExitCode {
    let mut filter = FilterConfig::new(
        args.file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "filter".into()),
        args.file.clone(),
    );
    filter.config = args.config.as_deref().map(file_or_text);
    filter.vm_config = args.vm_config.as_deref().map(file_or_text);
    // No compile cache: inspecting leaves nothing behind.
    let host_config = FilterHostConfig {
        cache_dir: None,
        max_instances: 4,
        ..FilterHostConfig::default()
    };
    let report = match super::offline::host(&host_config, Vec::new()) {
        Ok(host) => crate::filter::inspect(&host, &filter),
        Err(e) => {
            eprintln!("error: cannot start the filter host: {e:#}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        print!("{}", text(&report));
    }
    match &report.error {
        None => ExitCode::SUCCESS,
        Some(reason) => {
            eprintln!("error: {}: {reason}", report.file);
            ExitCode::from(1)
        }
    }
}

/// The contents of file `arg` if it names one, else `arg` itself.
fn file_or_text(arg: &str) -> String {
    match std::fs::read_to_string(arg) {
        Ok(text) => text,
        Err(_) => arg.to_string(),
    }
}

/// The report for a reader.
fn text(r: &FilterReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "module     {} ({} bytes, sha256 {})",
        r.file, r.size, r.sha256
    );
    let abi = r
        .abi_version
        .as_deref()
        .map_or("none (not a proxy-wasm module)".into(), |v| {
            format!("proxy-wasm {v}")
        });
    let _ = writeln!(out, "abi        {abi}");
    if let Some(m) = &r.memory {
        let max = m
            .max_pages
            .map_or("no maximum".into(), |p| format!("at most {p} pages"));
        let _ = writeln!(
            out,
            "memory     {} pages initially ({} KiB), {max}; this gateway allows {} pages (memory_limit)",
            m.initial_pages,
            m.initial_pages * 64,
            m.limit_pages
        );
    }
    let _ = writeln!(out, "callbacks  {}", r.callbacks.join(", "));
    let missing: Vec<String> = r
        .imports
        .iter()
        .filter(|i| !i.implemented)
        .map(|i| format!("{}.{}", i.module, i.name))
        .collect();
    let _ = writeln!(
        out,
        "imports    {} ({} not implemented here{})",
        r.imports.len(),
        missing.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(": {}; calls to them get UNIMPLEMENTED", missing.join(", "))
        }
    );
    for i in &r.imports {
        let mark = if i.implemented {
            ""
        } else {
            "  (not implemented)"
        };
        let _ = writeln!(out, "  {}.{}{mark}", i.module, i.name);
    }
    let _ = writeln!(out, "exports    {}", r.exports.join(", "));
    let _ = writeln!(out, "vm_start   {}", r.vm_start);
    let _ = writeln!(out, "configure  {}", r.configure);
    for line in &r.log {
        let _ = writeln!(out, "log        [{}] {}", line.level, line.message);
    }
    let verdict = match &r.error {
        None => "ok: the filter starts with this configuration".to_string(),
        Some(reason) => format!("failed: {reason}"),
    };
    let _ = writeln!(out, "result     {verdict}");
    out
}
