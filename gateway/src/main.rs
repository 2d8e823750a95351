//! The `gateway` binary. `gateway --config gateway.toml` runs it;
//! `gateway check --config gateway.toml` validates a configuration.

/// A thread-caching allocator: every request allocates and frees small
/// objects on its worker thread (headers, futures, buffers), which glibc's
/// allocator serves with locks and consolidation passes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
