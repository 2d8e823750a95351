//! The command line: `gateway --config PATH` runs the gateway,
//! `gateway check --config PATH` validates a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// An HTTP/1.1, HTTP/2 and TCP gateway programmed by proxy-wasm filters.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short, global = true)]
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
    /// Validate the configuration and exit: 0 when valid, 1 with every
    /// error found otherwise.
    Check,
}

/// Runs the binary; the exit code is the process's.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(path) = cli.config else {
        eprintln!("error: --config PATH is required");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            return ExitCode::from(1);
        }
    };
    if let Some(Command::Check) = cli.command {
        println!("{}: configuration is valid", path.display());
        return ExitCode::SUCCESS;
    }
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
