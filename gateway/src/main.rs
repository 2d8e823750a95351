//! The `gateway` binary. `gateway --config gateway.toml` runs it;
//! `gateway check --config gateway.toml` validates a configuration.

mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
