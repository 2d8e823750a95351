//! `gateway check`: the configuration validated whole, then every filter
//! it names (configured ones, and each module of each `filters_dir` with
//! its `<stem>.toml` sidecar) started with its configuration, as the
//! gateway would start it: a filter that rejects its configuration fails
//! the check with its own reason. Services (`[[service]]`, `[wasm]
//! services_dir`) are started the same way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::{Config, FilterConfig};
use crate::filter::FilterHost;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

pub(super) fn run(args: &Args) -> ExitCode {
    let Some(config) = super::load(&args.config) else {
        return ExitCode::from(1);
    };
    let clusters = config.clusters.iter().map(|c| c.name.clone()).collect();
    let host = match super::offline::host(&config.wasm, clusters) {
        Ok(host) => host,
        Err(e) => {
            eprintln!("error: cannot start the filter host: {e:#}");
            return ExitCode::from(1);
        }
    };
    let mut check = Check {
        host,
        file: args.config.clone(),
        started: 0,
        failures: 0,
    };
    check.filters(&config);
    check.services(&config);
    if check.failures > 0 {
        eprintln!(
            "{}: {} filter(s) would not serve",
            args.config.display(),
            check.failures
        );
        return ExitCode::from(1);
    }
    println!(
        "{}: configuration is valid; {} filter(s) start with their configuration",
        args.config.display(),
        check.started
    );
    ExitCode::SUCCESS
}

struct Check {
    host: Arc<FilterHost>,
    file: PathBuf,
    started: usize,
    failures: usize,
}

impl Check {
    fn filters(&mut self, config: &Config) {
        for (l, listener) in config.listeners.iter().enumerate() {
            for (f, filter) in listener.filters.iter().enumerate() {
                let key = format!("listener[{l}].filter[{f}]");
                self.configured(&key, filter);
            }
            for (r, route) in listener.routes.iter().enumerate() {
                for (f, filter) in route.filters.iter().enumerate() {
                    let key = format!("listener[{l}].route[{r}].filter[{f}]");
                    self.configured(&key, filter);
                }
            }
            if let Some(dir) = &listener.filters_dir {
                self.folder(dir);
            }
        }
    }

    /// A filter of the main file: errors name that file and the key.
    fn configured(&mut self, key: &str, filter: &FilterConfig) {
        let report = crate::filter::inspect(&self.host, filter);
        match report.error {
            None => self.started(&filter.name, &filter.path),
            Some(reason) => self.failed(&format!(
                "filter `{}` (key `{key}`) at {}: {reason}",
                filter.name,
                self.file.display()
            )),
        }
    }

    /// Every module of a listener's folder: errors name the module, and
    /// the sidecar with the line of its `config` when the filter rejected it.
    fn folder(&mut self, dir: &Path) {
        for (module, config) in crate::filter::folder_modules(dir) {
            let config = match config {
                Ok(config) => config,
                Err(reason) => {
                    self.failed(&format!("{}: {reason}", module.display()));
                    continue;
                }
            };
            let report = crate::filter::inspect(&self.host, &config);
            match report.error {
                None => self.started(&config.name, &module),
                Some(reason) => {
                    let sidecar = module.with_extension("toml");
                    let from = config_line(&sidecar)
                        .map(|line| format!(" (configuration from {}:{line})", sidecar.display()))
                        .unwrap_or_default();
                    self.failed(&format!("{}{from}: {reason}", module.display()));
                }
            }
        }
    }

    /// Every service, configured or from the services folder.
    fn services(&mut self, config: &Config) {
        let configured = config.services.iter().enumerate().map(|(i, s)| {
            (
                format!("key `service[{i}]` at {}", self.file.display()),
                s.clone(),
                Ok(()),
            )
        });
        let folder = config
            .wasm
            .services_dir
            .as_deref()
            .map(crate::service::folder_modules)
            .unwrap_or_default()
            .into_iter()
            .map(|(s, sidecar)| (s.path.display().to_string(), s, sidecar));
        for (place, service, sidecar) in configured.chain(folder).collect::<Vec<_>>() {
            let error = match sidecar {
                Err(reason) => Some(reason),
                Ok(()) => crate::filter::inspect(&self.host, &service.as_filter()).error,
            };
            match error {
                None => {
                    self.started += 1;
                    println!(
                        "ok: service `{}` ({}) starts",
                        service.name,
                        service.path.display()
                    );
                }
                Some(reason) => {
                    self.failed(&format!("service `{}` ({place}): {reason}", service.name))
                }
            }
        }
    }

    fn started(&mut self, name: &str, path: &Path) {
        self.started += 1;
        println!("ok: filter `{name}` ({}) starts", path.display());
    }

    fn failed(&mut self, message: &str) {
        self.failures += 1;
        eprintln!("error: {message}");
    }
}

/// The line of a sidecar's `config` key (or `[config]` table), 1-based.
fn config_line(sidecar: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(sidecar).ok()?;
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with("[config]")
                || line.starts_with("[config.")
                || line
                    .strip_prefix("config")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}
