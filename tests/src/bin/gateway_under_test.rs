//! The gateway binary, built inside the test crate so that `cargo test`
//! builds it before the integration tests start it.

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
