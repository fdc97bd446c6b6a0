//! A database outage under a running `kenar-chat serve`: a PostgreSQL server of the test's own
//! (`initdb` + `pg_ctl` on a temporary folder) is stopped for 20 s and started again.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use kenar_chat::config::TokenKey;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{helpers::*, outbox_processes};

/// A PostgreSQL server the test starts and stops, on a free port, in a folder of its own.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

/// Where `initdb` and `pg_ctl` are: on PATH, or in Debian's versioned folder (newest first).
fn postgres_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .collect();
    debian.sort();
    debian.reverse();
    on_path
        .chain(debian)
        .find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file())
}

impl Cluster {
    /// `None` (and a visible message) where no PostgreSQL binaries exist.
    fn init() -> Option<Self> {
        Self::init_with(None)
    }

    /// With `password`, the `postgres` user must give it (scram-sha-256), as in compose.
    fn init_with(password: Option<&str>) -> Option<Self> {
        let Some(bin) = postgres_binaries() else {
            eprintln!(
                "SKIPPED: no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql: the outage test needs a server it can stop"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { bin, dir, port };
        if is_root() {
            // PostgreSQL refuses to run as root: its files belong to the `postgres` user.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path()));
        }
        let mut initdb = cluster.command("initdb");
        initdb.args(["-U", "postgres", "--no-sync"]);
        match password {
            None => {
                initdb.args(["-A", "trust"]);
            }
            Some(password) => {
                let file = cluster.dir.path().join("pwfile");
                std::fs::write(&file, password).unwrap();
                if is_root() {
                    run(Command::new("chown").arg("postgres").arg(&file));
                }
                initdb.args(["-A", "scram-sha-256", "--pwfile"]).arg(&file);
            }
        }
        run(initdb.arg("-D").arg(cluster.data()));
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data().display()
        );
        run(self
            .command("pg_ctl")
            .args(["-w", "-o", &options, "-l"])
            .arg(self.data().join("server.log"))
            .arg("-D")
            .arg(self.data())
            .arg("start"));
    }

    fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop"));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn run(command: &mut Command) {
    let out = command.output().expect("running a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kenar_database_up` as the metrics listener reports it.
async fn database_up(client: &reqwest::Client, metrics: &str) -> Option<f64> {
    let page = client.get(metrics).send().await.ok()?.text().await.ok()?;
    page.lines()
        .find_map(|line| line.strip_prefix("kenar_database_up "))
        .and_then(|value| value.trim().parse().ok())
}

async fn readyz(client: &reqwest::Client, base: &str) -> StatusCode {
    client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_quiet_and_loses_no_accepted_send() {
    let Some(cluster) = Cluster::init() else {
        return;
    };
    let divar = outbox_processes::divar().await;
    let mut env = outbox_processes::env(&divar, &TokenKey::generate(), &cluster.url());
    env.insert("KENAR_SHUTDOWN_DELAY", "0".into());
    // As in production: the default filter, every line the operator would see.
    env.insert("RUST_LOG", kenar_chat::config::DEFAULT_LOG_FILTER.into());
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.insert("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"));
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");

    // A send accepted before the outage that cannot go yet: Divar fails it at first.
    divar.sandbox.world().knobs.fail_5xx_percent = 100;
    let (_db, _id, conversations) = outbox_processes::seeded_broadcast(&divar, &env, 1).await;
    let (mut app, base, logs) = outbox_processes::spawn_serve_logged(&env);
    eventually("Divar's failure is noticed", async || {
        logs.find("unreachable; retrying with backoff")
            .filter(|line| line["dependency"] == "divar_api")
    })
    .await;
    let client = browser();
    assert_eq!(readyz(&client, &base).await, StatusCode::OK);
    assert_eq!(database_up(&client, &metrics).await, Some(1.0));

    // The window opens before the stop: a worker may notice it while `pg_ctl` is still waiting.
    let down_at = Instant::now();
    cluster.stop();
    divar.sandbox.world().knobs.fail_5xx_percent = 0;
    let mut readiness = Vec::new();
    let mut gauge = Vec::new();
    while down_at.elapsed() < Duration::from_secs(20) {
        readiness.push(readyz(&client, &base).await);
        gauge.push(database_up(&client, &metrics).await);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let during = logs.between(down_at, Instant::now());
    cluster.start();
    let up_at = Instant::now();

    eprintln!(
        "{} lines in 20 s with the database down: {during:#?}",
        during.len()
    );
    // Quiet: a handful of lines for 20 s, none of them an ERROR.
    assert!(
        during.len() <= 4,
        "{} lines while down: {during:#?}",
        during.len()
    );
    for line in &during {
        assert!(
            matches!(line["level"].as_str(), Some("WARN" | "INFO")),
            "{line}"
        );
    }
    assert!(
        during.iter().any(|line| line["dependency"] == "database"),
        "the outage is said: {during:#?}"
    );
    assert!(
        readiness[2..]
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "/readyz fails while the database is down: {readiness:?}"
    );
    assert!(gauge[2..].iter().all(|g| *g == Some(0.0)), "{gauge:?}");

    // Back: ready within 5 s, one line says so, the gauge reads 1.
    eventually_within(Duration::from_secs(5), "/readyz is 200 again", async || {
        readyz(&client, &base).await == StatusCode::OK
    })
    .await;
    assert!(up_at.elapsed() < Duration::from_secs(5));
    // The line is read from the child's stdout by another thread: it may trail the answer.
    let back = eventually("a line says the database is back", async || {
        logs.find("reachable again")
            .filter(|line| line["dependency"] == "database")
    })
    .await;
    assert_eq!(back["level"], "INFO", "{back}");
    assert!(
        back["down_secs"].as_f64().is_some_and(|s| s >= 20.0),
        "{back}"
    );
    assert_eq!(database_up(&client, &metrics).await, Some(1.0));

    // Nothing accepted was lost: the send queued before the outage goes out, once.
    eventually(
        "the queued send is delivered after the outage",
        async || {
            let world = divar.sandbox.world();
            world
                .messages
                .iter()
                .filter(|m| m.sender_type == "BOT" && conversations.contains(&m.conversation_id))
                .count()
                == 1
        },
    )
    .await;
    // Divar's failures before it were said the same way: once lost, once back.
    // Divar records the message before it answers, and the app logs once it has the answer.
    let divar_lines = eventually("Divar is said back after the delivery", async || {
        let lines: Vec<Value> = logs
            .all()
            .into_iter()
            .filter(|line| line["dependency"] == "divar_api")
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert_eq!(divar_lines.len(), 2, "{divar_lines:#?}");
    assert_eq!(divar_lines[1]["message"], "reachable again");
    let errors: Vec<Value> = logs
        .all()
        .into_iter()
        .filter(|line| line["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "no ERROR line at all: {errors:#?}");

    // A clean stop: everything drained in time, and the last line says so.
    let killed = Command::new("kill")
        .args(["-TERM", &app.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(app.wait().unwrap().success());
    let stopped = eventually("the stop line is read", async || logs.find("stopped:")).await;
    assert_eq!(stopped["in_time"], true, "{stopped}");
    assert_eq!(stopped["level"], "INFO", "{stopped}");
}

/// The compose trap: the volume keeps the first password, `.env` now says another. The app stops
/// at start with an error that says why and how to fix it, and shows neither password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_database_login_says_the_password_is_fixed_at_volume_creation() {
    let Some(cluster) = Cluster::init_with(Some("the-first-password")) else {
        return;
    };
    let url = format!(
        "postgres://postgres:a-changed-password@127.0.0.1:{}/postgres",
        cluster.port
    );
    let divar = outbox_processes::divar().await;
    let env = outbox_processes::env(&divar, &TokenKey::generate(), &url);
    let out = Command::new(env!("CARGO_BIN_EXE_kenar-chat"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(cluster.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the login"), "{stderr}");
    assert!(
        stderr.contains("POSTGRES_PASSWORD takes effect only when"),
        "{stderr}"
    );
    assert!(stderr.contains("ALTER USER kenar PASSWORD"), "{stderr}");
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!all.contains("a-changed-password") && !all.contains("the-first-password"));
}
