//! The `gateway` binary. `gateway --config gateway.toml` runs it;
//! `gateway check --config gateway.toml` validates a configuration.

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
