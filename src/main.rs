use std::process::ExitCode;

/// See Cargo.toml: jemalloc where it is measured and safe, the system's allocator elsewhere.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = kenar_chat::cli::Cli::load();
    kenar_chat::cli::run(cli).await
}
