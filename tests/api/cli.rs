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
