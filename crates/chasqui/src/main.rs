//! `chasqui`: one binary for the server, its maintenance commands, the standalone sandbox
//! and the benchmarks.

use clap::Parser;

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
