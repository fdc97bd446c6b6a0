use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = kenar_chat::cli::Cli::load();
    kenar_chat::cli::run(cli).await
}
