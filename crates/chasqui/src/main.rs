//! `chasqui`: one binary for the server, its maintenance commands, the standalone sandbox
//! and the benchmarks.

use clap::Parser;

/// mimalloc: the server allocates many short-lived buffers per request (JSON, HTTP); it
/// measured faster than glibc's allocator on the ingest benchmark (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chasqui::install_crypto_provider();
    let cli = chasqui::cli::Cli::parse();
    cli.init_logging();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
