//! The binary itself, as an operator runs it.

use std::process::{Command, Stdio};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kenar-chat"));
    // A clean environment in an empty folder, so no `.env` is picked up.
    let dir = tempfile::tempdir().unwrap().keep();
    command.env_clear().current_dir(dir).stdin(Stdio::null());
    command
}

#[test]
fn serve_without_configuration_exits_non_zero_naming_every_missing_variable() {
    let output = binary().arg("serve").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "KENAR_APP_SLUG",
        "KENAR_API_KEY",
        "KENAR_OAUTH_SECRET",
        "DIVAR_IDENTIFICATION_KEY",
        "APP_BASE_URL",
        "TOKEN_ENCRYPTION_KEY",
    ] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}

#[test]
fn serve_reports_malformed_values_without_echoing_secrets() {
    let output = binary()
        .arg("serve")
        .env("KENAR_APP_SLUG", "app")
        .env("KENAR_API_KEY", "super-secret-api-key")
        .env("KENAR_OAUTH_SECRET", "s")
        .env("DIVAR_IDENTIFICATION_KEY", "i")
        .env("APP_BASE_URL", "not a url")
        .env("TOKEN_ENCRYPTION_KEY", "c2hvcnQ=")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("APP_BASE_URL") && stderr.contains("TOKEN_ENCRYPTION_KEY"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("KENAR_API_KEY"),
        "a valid variable is not reported: {stderr}"
    );
    assert!(!stderr.contains("super-secret-api-key"));
}

#[test]
fn help_explains_each_subcommand() {
    let output = binary().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for word in ["serve", "sandbox", "migrate"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn migrate_applies_migrations_to_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub/kenar.db", dir.path().display());
    let output = binary()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("sub/kenar.db").exists());
}

/// Reads the child's stdout until the sandbox prints the URL to open.
fn wait_for_url(
    stdout: std::process::ChildStdout,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Open ").nth(1) {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(url);
            }
            lines.push(line);
        }
        lines
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the sandbox prints the URL to open");
    (url, reader)
}

#[tokio::test]
async fn the_sandbox_command_serves_logs_json_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = binary()
        .args(["sandbox", "--bind", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}/sandbox.db", dir.path().display()))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, reader) = wait_for_url(child.stdout.take().unwrap());
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/sandbox/"),
        "{url}"
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let index = client.get(&url).send().await.unwrap();
    assert_eq!(index.status(), reqwest::StatusCode::OK);
    let opened = client
        .post(format!(
            "{url}chats/c0ffee00-0000-4000-8000-000001000001/open-addon"
        ))
        .form(&[("as", "buyer")])
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), reqwest::StatusCode::SEE_OTHER);
    let entered = client
        .get(opened.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(entered.headers()["location"], "/start");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
    let lines = reader.join().unwrap();
    let logs: Vec<_> = lines.iter().filter(|l| l.starts_with('{')).collect();
    assert!(!logs.is_empty(), "request logs are written: {lines:?}");
    for line in logs {
        let value: serde_json::Value = serde_json::from_str(line).expect("each log line is JSON");
        assert!(value.get("level").is_some(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "{lines:?}"
    );
}
