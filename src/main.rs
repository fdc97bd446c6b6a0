use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = kenar_chat::cli::Cli::parse();
    kenar_chat::cli::run(cli).await
}
