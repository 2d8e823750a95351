//! The command line: `gateway --config PATH` runs the gateway; the
//! subcommands validate a configuration, scaffold a filter and inspect a
//! filter module (each in its own module under `cli/`).

mod check;
mod inspect;
mod new_filter;
mod offline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// An HTTP/1.1, HTTP/2 and TCP gateway programmed by proxy-wasm filters.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Once every listener is bound, write their addresses here as JSON
    /// (useful with port 0).
    #[arg(long)]
    address_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and start every filter (configured and
    /// in folders) with its configuration, then exit: 0 when all is
    /// well, 1 with every error found otherwise.
    Check(check::Args),
    /// Write a new filter crate that builds outside this repository.
    NewFilter(new_filter::Args),
    /// Work with filter modules.
    #[command(subcommand)]
    Filter(FilterCommand),
}

#[derive(Debug, Subcommand)]
enum FilterCommand {
    /// Load a module in the filter host, report what it exports, imports
    /// and needs, and start it with a configuration.
    Inspect(inspect::Args),
}

/// Runs the binary; the exit code is the process's.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(args)) => return check::run(&args),
        Some(Command::NewFilter(args)) => return new_filter::run(&args),
        Some(Command::Filter(FilterCommand::Inspect(args))) => return inspect::run(&args),
        None => {}
    }
    let Some(path) = cli.config else {
        eprintln!("error: --config PATH is required");
        return ExitCode::from(2);
    };
    let Some(config) = load(&path) else {
        return ExitCode::from(1);
    };
    init_logging();
    match crate::server::run(config, cli.address_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The configuration at `path`, or `None` after printing every error.
fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(config) => Some(config),
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            None
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`). The
/// filter can be swapped at runtime from the admin
/// (`POST /logging?level=debug`) through a reload handle. It sits on the
/// output layer (a per-layer filter) rather than on the whole stack: that
/// way enabled and disabled callsites stay cached as such, and logging an
/// event takes no lock shared between threads (the reload handle's lock is
/// taken by spans and by a level change only).
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    if tracing_subscriber::registry()
        .with(output)
        .try_init()
        .is_ok()
    {
        crate::admin::logging::install(handle);
    }
}
