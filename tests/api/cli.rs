//! The binary itself, as an operator runs it.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Command, Stdio},
};

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

/// Values that parse but are unsafe: each alone stops `serve` with its variable named, and with
/// all of them set at once every one is named. A sound set is not refused.
#[test]
fn serve_refuses_weak_configuration_naming_each_reason() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let random_key = b64(&(0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect::<Vec<_>>());
    let sound = [
        ("KENAR_APP_SLUG", "my-real-app".to_string()),
        ("KENAR_API_KEY", "k3y-from-the-panel-0123456789".to_string()),
        (
            "KENAR_OAUTH_SECRET",
            "s3cret-from-the-panel-0123456789".to_string(),
        ),
        (
            "DIVAR_IDENTIFICATION_KEY",
            "id3nt-from-the-panel-0123456789".to_string(),
        ),
        ("APP_BASE_URL", "https://addon.kenar-chat.ir".to_string()),
        ("TOKEN_ENCRYPTION_KEY", random_key),
        ("KENAR_OPERATOR_NAME", "فروشگاه نمونه".to_string()),
        ("KENAR_PRIVACY_CONTACT", "privacy@kenar-chat.ir".to_string()),
        // Not a database it can open: a sound configuration gets past the checks to this
        // (and gives up on it after the shortest wait).
        (
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none".to_string(),
        ),
        ("DATABASE_ACQUIRE_TIMEOUT", "1".to_string()),
    ];
    let run = |changes: &[(&str, String)]| {
        let mut command = binary();
        command.arg("serve");
        for (name, value) in sound.iter().chain(changes) {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_ne!(
        code,
        Some(2),
        "a sound configuration passes the checks: {stderr}"
    );
    assert!(!stderr.contains("invalid configuration"), "{stderr}");
    // ...and stops at the database, named without its credentials, with the cause.
    assert!(
        stderr.contains("cannot reach the database at postgres://127.0.0.1:1/none"),
        "{stderr}"
    );
    assert!(!stderr.contains("nobody@"), "{stderr}");

    let weak: [(&str, String); 10] = [
        ("KENAR_APP_SLUG", "my-fake-app-slug".into()),
        ("KENAR_API_KEY", "fake-api-key-replace-me".into()),
        ("KENAR_OAUTH_SECRET", "fake-oauth-secret-replace-me".into()),
        ("DIVAR_IDENTIFICATION_KEY", "short-key".into()),
        ("TOKEN_ENCRYPTION_KEY", b64(&[0u8; 32])),
        ("TOKEN_ENCRYPTION_KEY", b64(&[7u8; 32])),
        ("APP_BASE_URL", "https://kenar-chat.example.com".into()),
        ("APP_BASE_URL", "http://203.0.113.7:8080".into()),
        (
            "KENAR_OPERATOR_NAME",
            "replace-me-with-your-name-or-company".into(),
        ),
        (
            "KENAR_PRIVACY_CONTACT",
            "replace-me-with-an-email-or-phone".into(),
        ),
    ];
    for (name, value) in &weak {
        let (code, stderr) = run(&[(name, value.clone())]);
        assert_eq!(code, Some(2), "{name}={value} is refused: {stderr}");
        assert!(stderr.contains(name), "{name} is named: {stderr}");
        assert!(
            !stderr.contains(value.as_str()),
            "the value is not echoed: {stderr}"
        );
    }
    // Every reason at once.
    let (_, stderr) = run(&[
        ("KENAR_API_KEY", "fake-api-key-replace-me".into()),
        ("DIVAR_IDENTIFICATION_KEY", "short-key".into()),
        ("TOKEN_ENCRYPTION_KEY", b64(&[0u8; 32])),
        ("APP_BASE_URL", "http://203.0.113.7:8080".into()),
    ]);
    assert!(stderr.contains("4 problems"), "{stderr}");
    // A public https address needs the privacy page's operator and contact (a blank variable is
    // unset), named with the other problems.
    let unnamed = [
        ("KENAR_OPERATOR_NAME", String::new()),
        ("KENAR_PRIVACY_CONTACT", String::new()),
        ("DIVAR_IDENTIFICATION_KEY", "short-key".into()),
    ];
    let (code, stderr) = run(&unnamed);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("3 problems"), "{stderr}");
    for name in ["KENAR_OPERATOR_NAME", "KENAR_PRIVACY_CONTACT"] {
        assert!(stderr.contains(name), "{name} is named: {stderr}");
    }
    // On loopback (development) the page may go unnamed.
    let (code, stderr) = run(&[
        ("KENAR_OPERATOR_NAME", String::new()),
        ("KENAR_PRIVACY_CONTACT", String::new()),
        ("APP_BASE_URL", "http://127.0.0.1:8080".into()),
    ]);
    assert_ne!(code, Some(2), "{stderr}");
    // Plain http on loopback, or when the operator says a trusted network stands between, is taken.
    for changes in [
        vec![("APP_BASE_URL", "http://127.0.0.1:8080".to_string())],
        vec![
            ("APP_BASE_URL", "http://203.0.113.7:8080".to_string()),
            ("KENAR_ALLOW_INSECURE_HTTP", "1".to_string()),
        ],
    ] {
        let (code, stderr) = run(&changes);
        assert_ne!(code, Some(2), "{changes:?}: {stderr}");
    }
}

/// The sandbox shows its fake tokens to anyone who reaches it: a public bind needs a flag.
#[test]
fn the_sandbox_refuses_a_public_address_unless_told() {
    let output = binary()
        .args(["sandbox", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

/// A line of `.env` dotenvy cannot read is reported by number, not by content (it may hold a
/// secret), instead of silently dropping it and every line after it.
#[test]
fn a_broken_env_file_line_is_named_by_number() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "KENAR_APP_SLUG=app\nKENAR_API_KEY=abc\nKENAR_OAUTH_SECRET=top secret'\nAPP_BASE_URL=https://x.ir\n",
    )
    .unwrap();
    let output = binary()
        .arg("serve")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(".env") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(!stderr.contains("top secret"), "{stderr}");
}

#[test]
fn help_explains_each_subcommand() {
    let output = binary().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for word in ["serve", "sandbox", "migrate", "rekey"] {
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The newest migration is the highest number under migrations/.
    let newest = std::fs::read_dir(format!("{}/migrations", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.split('_').next()?.parse::<u32>().ok()
        })
        .max()
        .unwrap();
    assert!(
        stdout.contains("kenar.db")
            && stdout.contains("0001 ")
            && stdout.contains(&format!("schema now at {newest})")),
        "names what it applied: {stdout}"
    );
    let again = binary()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains(&format!("schema up to date at {newest}; nothing to apply")),
        "{stdout}"
    );
}

/// A forgotten DATABASE_URL is an error, not a fresh SQLite file in the working folder.
#[test]
fn migrate_without_a_database_url_refuses_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .arg("migrate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
    assert!(!dir.path().join("data").exists(), "nothing was created");
    let told = binary()
        .args(["migrate", "--default-database"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        told.status.success(),
        "{}",
        String::from_utf8_lossy(&told.stderr)
    );
    assert!(dir.path().join("data/kenar.db").exists());
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

    // `healthcheck` against the running instance: 0; against a port nobody serves: 1.
    let readyz = url.replace("/sandbox/", "/readyz");
    let healthy = binary()
        .args(["healthcheck", "--url", &readyz])
        .output()
        .unwrap();
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}/readyz", closed.local_addr().unwrap());
    drop(closed);
    let unhealthy = binary()
        .args(["healthcheck", "--url", &nobody])
        .output()
        .unwrap();
    assert_eq!(unhealthy.status.code(), Some(1));

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

/// Every setting `serve` declares, with its default (if it has one).
fn declared_settings() -> BTreeMap<String, Option<String>> {
    use clap::CommandFactory;
    let command = kenar_chat::cli::Cli::command();
    let serve = command.find_subcommand("serve").expect("a serve command");
    serve
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg.get_default_values().first();
            Some((env, default.map(|d| d.to_string_lossy().into_owned())))
        })
        .collect()
}

/// Names `documented` and `declared` do not share, for a readable failure.
fn differences(
    documented: &BTreeSet<String>,
    declared: &BTreeMap<String, Option<String>>,
) -> String {
    let declared: BTreeSet<_> = declared.keys().cloned().collect();
    let undocumented: Vec<_> = declared.difference(documented).collect();
    let undeclared: Vec<_> = documented.difference(&declared).collect();
    format!(
        "declared but not documented: {undocumented:?}; documented but not declared: {undeclared:?}"
    )
}

/// `.env.example` and the settings table of docs/configuration.md name exactly the settings the
/// code declares, and the table's defaults are the declared ones. (`POSTGRES_PASSWORD` is docker compose's, not ours.)
#[test]
fn env_example_and_readme_name_exactly_the_declared_settings() {
    let declared = declared_settings();
    let read =
        |file: &str| std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")));
    let example = read(".env.example").unwrap();
    let variable = |line: &str| {
        let (name, _) = line.trim_start_matches('#').trim().split_once('=')?;
        let is_name = name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        (is_name && !name.is_empty()).then(|| name.to_string())
    };
    // Compose's own variables (docker-compose.yml reads them) close the file.
    let (app_part, compose_part) = example
        .split_once("\n# --- docker compose only")
        .expect(".env.example has a docker compose section");
    let (compose_part, rest) = compose_part
        .split_once("\n# --- ")
        .unwrap_or((compose_part, ""));
    let compose_names: BTreeSet<_> = compose_part.lines().filter_map(variable).collect();
    let in_example: BTreeSet<_> = app_part
        .lines()
        .chain(rest.lines())
        .filter_map(variable)
        .collect();
    let compose = read("docker-compose.yml").unwrap();
    let used_by_compose: BTreeSet<_> = compose
        .split("${")
        .skip(1)
        .filter_map(|tail| tail.split([':', '}', '-']).next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        used_by_compose, compose_names,
        "the variables docker-compose.yml reads are the ones in .env.example's compose section"
    );
    // README and the operator's guide name no variable .env.example lacks.
    let known: BTreeSet<_> = in_example.union(&compose_names).cloned().collect();
    for doc in ["README.md", "docs/operations.md"] {
        let text = read(doc).unwrap();
        let named: BTreeSet<String> = text
            .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .filter(|word| {
                word == &"RUST_LOG"
                    || [
                        "KENAR_",
                        "DIVAR_",
                        "APP_",
                        "DATABASE_",
                        "TOKEN_",
                        "POSTGRES_",
                        "BIND_",
                        "LOG_",
                        "METRICS_",
                    ]
                    .iter()
                    .any(|prefix| word.starts_with(prefix))
            })
            .map(str::to_string)
            .collect();
        let unknown: Vec<_> = named.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{doc} names {unknown:?}, which .env.example does not"
        );
    }
    let problem = differences(&in_example, &declared);
    assert!(
        in_example.iter().eq(declared.keys()),
        ".env.example: {problem}"
    );

    let readme = read("docs/configuration.md").unwrap();
    let section = readme
        .split("\n## Settings\n")
        .nth(1)
        .expect("a Settings section");
    let section = section.split("\n## ").next().unwrap();
    let rows: BTreeMap<String, String> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<_> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(3)?.to_string()))
        })
        .collect();
    let in_readme = rows.keys().cloned().collect();
    let problem = differences(&in_readme, &declared);
    assert!(
        in_readme.iter().eq(declared.keys()),
        "docs/configuration.md's settings table: {problem}"
    );
    for (name, default) in &declared {
        if let Some(default) = default {
            let cell = &rows[name];
            assert!(
                cell.contains(&format!("`{default}`")),
                "docs/configuration.md gives {name} the default {cell:?}, the code {default:?}"
            );
        }
    }
}

/// `serve --help` names each setting's variable and default, and never shows a secret's value
/// (clap would print the current value of a variable next to its name).
#[test]
fn serve_help_lists_every_setting_and_shows_no_secret() {
    let secrets = [
        ("KENAR_API_KEY", "k3y-from-the-panel-0123456789"),
        ("KENAR_OAUTH_SECRET", "s3cret-from-the-panel-0123456789"),
        (
            "DIVAR_IDENTIFICATION_KEY",
            "id3nt-from-the-panel-0123456789",
        ),
        (
            "TOKEN_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        (
            "TOKEN_ENCRYPTION_KEYS",
            "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("DATABASE_URL", "postgres://kenar:pa55word@db:5432/kenar"),
    ];
    let output = binary()
        .args(["serve", "--help"])
        .envs(secrets)
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (name, default) in declared_settings() {
        assert!(help.contains(&format!("[env: {name}")), "{name} in: {help}");
        if let Some(default) = default {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{name}'s default in: {help}"
            );
        }
    }
    for (name, value) in secrets {
        assert!(!help.contains(value), "{name}'s value is shown: {help}");
    }
}
