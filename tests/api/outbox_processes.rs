//! The outbox across real processes: the test runs the simulated Divar and spawns
//! `kenar-chat serve` against it, kills it mid-broadcast, and runs two at once.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use kenar_chat::{
    config::{Settings, TokenKey},
    db::{self, Db, grants::Subject},
    sandbox::Sandbox,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::helpers::*;

pub(crate) struct Divar {
    base: String,
    pub(crate) sandbox: Sandbox,
}

/// The simulated Divar alone, on its own port, for add-on processes to call.
pub(crate) async fn divar() -> Divar {
    // The add-on processes are never called back in these tests.
    let (base, sandbox) = serve_sandbox(&Url::parse("http://127.0.0.1:9/").unwrap()).await;
    Divar { base, sandbox }
}

/// A simulated Divar that answers every send after `slow_ms`, a fresh database of `engine`, and
/// the environment `serve` processes get for the two.
async fn setup(engine: Engine, slow_ms: u64) -> (Divar, TestDb, HashMap<&'static str, String>) {
    let divar = divar().await;
    if slow_ms > 0 {
        let mut world = divar.sandbox.world();
        world.knobs.slow_percent = 100;
        world.knobs.slow_ms = slow_ms;
    }
    let test_db = test_db(engine).await;
    let env = env(&divar, &TokenKey::generate(), &test_db.url);
    (divar, test_db, env)
}

/// The environment a `kenar-chat serve` process gets.
pub(crate) fn env(
    divar: &Divar,
    key: &TokenKey,
    database_url: &str,
) -> HashMap<&'static str, String> {
    let app = divar.sandbox.app();
    HashMap::from([
        ("KENAR_APP_SLUG", app.slug.clone()),
        ("KENAR_API_KEY", app.api_key.clone()),
        ("KENAR_OAUTH_SECRET", app.oauth_secret.clone()),
        ("DIVAR_IDENTIFICATION_KEY", app.identification_key.clone()),
        ("APP_BASE_URL", "http://127.0.0.1:9".to_string()),
        ("TOKEN_ENCRYPTION_KEY", B64.encode(key.expose())),
        ("DATABASE_URL", database_url.to_string()),
        ("KENAR_API_BASE_URL", format!("{}/sandbox", divar.base)),
        ("KENAR_OAUTH_BASE_URL", format!("{}/sandbox", divar.base)),
        ("BIND_ADDR", "127.0.0.1:0".to_string()),
        ("KENAR_RATE_LIMIT_PER_MINUTE", "0".to_string()),
        ("KENAR_OUTBOX_WORKERS", "4".to_string()),
        ("KENAR_OUTBOX_LEASE_SECS", "2".to_string()),
        ("LOG_FORMAT", "json".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ])
}

/// `kenar-chat serve` with exactly `env`, in a directory of its own, its logs on the test's
/// stderr; `stdout` says where its standard output goes.
fn spawn_serve_with(env: &HashMap<&'static str, String>, stdout: Stdio) -> Child {
    let dir = tempfile::tempdir().unwrap().keep();
    Command::new(env!("CARGO_BIN_EXE_kenar-chat"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning kenar-chat serve")
}

fn spawn_serve(env: &HashMap<&'static str, String>) -> Child {
    spawn_serve_with(env, Stdio::null())
}

/// A seller's real tokens from the simulated Divar, sealed into the database the processes
/// share, `count` conversations known, and a broadcast to them written to the outbox.
pub(crate) async fn seeded_broadcast(
    divar: &Divar,
    env: &HashMap<&'static str, String>,
    count: usize,
) -> (Db, String, Vec<String>) {
    let scope = format!(
        "CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1} CHAT_POST_CONVERSATIONS_READ.{POST_1} offline_access"
    );
    let db = shared_db(env).await;
    store_grant(
        &db,
        &settings_of(env),
        &divar.sandbox,
        Subject::Post(post_token(POST_1)),
        SELLER_1,
        &scope,
    )
    .await;

    let conversations: Vec<String> = divar
        .sandbox
        .world()
        .add_conversations(POST_1, count)
        .unwrap()
        .into_iter()
        .map(|(conversation, _)| conversation.id)
        .collect();
    for conversation in &conversations {
        db::conversations::record_seen(
            &db,
            &conversation_id(conversation),
            &post_token(POST_1),
            now_ms(),
        )
        .await
        .unwrap();
    }
    let body = json!({ "type": "TEXT", "message": "این آگهی فروخته شد" }).to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let recipients: Vec<_> = conversations.iter().map(|c| conversation_id(c)).collect();
    let db::broadcasts::Created::New(id) = db::broadcasts::create(
        &db,
        &uuid::Uuid::new_v4().to_string(),
        &key,
        &post_token(POST_1),
        &user_id(SELLER_1),
        &body,
        &recipients,
        now_ms(),
    )
    .await
    .unwrap() else {
        panic!("a new broadcast")
    };
    (db, id, conversations)
}

fn delivered_to(sandbox: &Sandbox, conversations: &[String]) -> HashMap<String, usize> {
    let world = sandbox.world();
    let mut per_conversation = HashMap::new();
    for message in world.messages.iter().filter(|m| m.sender_type == "BOT") {
        if conversations.contains(&message.conversation_id) {
            *per_conversation
                .entry(message.conversation_id.clone())
                .or_insert(0) += 1;
        }
    }
    per_conversation
}

async fn wait_for_done(db: &Db, id: &str) {
    let done = wait_until(PATIENCE, async || {
        let broadcast = db::broadcasts::find(db, id).await.unwrap().unwrap();
        broadcast.status.as_str() == "done"
    })
    .await;
    if done.is_none() {
        panic!(
            "the broadcast did not finish in {PATIENCE:?}: {:?}",
            db::broadcasts::progress(db, id).await.unwrap()
        );
    }
}

async fn a_killed_server_finishes_the_broadcast_after_restart_without_duplicates(engine: Engine) {
    let (divar, _db, env) = setup(engine, 25).await;
    let (db, id, conversations) = seeded_broadcast(&divar, &env, 300).await;

    let mut first = spawn_serve(&env);
    eventually("the first process delivers 100", async || {
        delivered_to(&divar.sandbox, &conversations).len() >= 100
    })
    .await;
    first.kill().unwrap(); // SIGKILL: no cleanup, leases left behind.
    first.wait().unwrap();
    let before_restart = delivered_to(&divar.sandbox, &conversations).len();
    assert!(before_restart < 300, "killed mid-broadcast");

    let mut second = spawn_serve(&env);
    wait_for_done(&db, &id).await;
    second.kill().unwrap();
    second.wait().unwrap();

    let delivered = delivered_to(&divar.sandbox, &conversations);
    assert_eq!(delivered.len(), 300, "no loss");
    assert!(
        delivered.values().all(|n| *n == 1),
        "no conversation got the message twice"
    );
    let progress = db::broadcasts::progress(&db, &id).await.unwrap();
    assert_eq!(
        (progress.sent, progress.pending, progress.failed),
        (300, 0, 0)
    );
}
crate::both_engines!(
    crash,
    a_killed_server_finishes_the_broadcast_after_restart_without_duplicates
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_a_broadcast_without_duplicates() {
    let (divar, _db, env) = setup(Engine::Postgres, 10).await;
    let (db, id, conversations) = seeded_broadcast(&divar, &env, 300).await;
    let mut a = spawn_serve(&env);
    let mut b = spawn_serve(&env);
    wait_for_done(&db, &id).await;
    for child in [&mut a, &mut b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let delivered = delivered_to(&divar.sandbox, &conversations);
    assert_eq!(delivered.len(), 300);
    assert!(delivered.values().all(|n| *n == 1));
    let world = divar.sandbox.world();
    let accepted_twice = world.api_calls.iter().filter(|c| c.duplicate).count();
    assert_eq!(accepted_twice, 0, "no row was sent by both servers");
    let per_worker: std::collections::HashSet<_> = world
        .api_calls
        .iter()
        .filter_map(|c| c.idempotency_key.clone())
        .collect();
    assert_eq!(per_worker.len(), 300);
}

/// Starts `serve` and returns it with its base URL, read from its "serving" log line.
pub(crate) fn spawn_serve_at(env: &HashMap<&'static str, String>) -> (Child, String) {
    let (child, base, _) = spawn_serve_logged(env);
    (child, base)
}

/// A `serve` process's log, each JSON line with when the test read it.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<(Instant, Value)>>>);

impl Logs {
    pub(crate) fn all(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The lines read between `from` and `to`.
    pub(crate) fn between(&self, from: Instant, to: Instant) -> Vec<Value> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The first line whose message starts with `message`.
    pub(crate) fn find(&self, message: &str) -> Option<Value> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .map(|(_, v)| v)
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .cloned()
    }
}

/// [`spawn_serve_at`] that also keeps every log line (`RUST_LOG` as `env` says, else the
/// add-on's at INFO).
pub(crate) fn spawn_serve_logged(env: &HashMap<&'static str, String>) -> (Child, String, Logs) {
    use std::io::BufRead;
    let mut env = env.clone();
    if env.get("RUST_LOG").is_none_or(|filter| filter == "warn") {
        env.insert("RUST_LOG", "warn,kenar_chat=info".into());
    }
    let mut child = spawn_serve_with(&env, Stdio::piped());
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let logs = Logs::default();
    let keep = |logs: &Logs, line: &str| {
        let entry: Value = serde_json::from_str(line).unwrap_or(Value::String(line.into()));
        logs.0.lock().unwrap().push((Instant::now(), entry.clone()));
        entry
    };
    let addr = loop {
        let line = lines.next().expect("serve exited before serving").unwrap();
        let entry = keep(&logs, &line);
        if entry["message"] == "kenar-chat is serving" {
            break entry["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep reading, so a full pipe never blocks the process.
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            keep(&kept, &line);
        }
    });
    (child, format!("http://{addr}"), logs)
}

/// The settings a `serve` process with `env` reads.
fn settings_of(env: &HashMap<&'static str, String>) -> Settings {
    Settings::from_lookup(|name| env.get(name).cloned()).unwrap()
}

/// The database the processes share, migrated.
async fn shared_db(env: &HashMap<&'static str, String>) -> Db {
    let db = Db::connect(&env["DATABASE_URL"]).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// Opens the add-on in `base` as Divar would (session initialization, then the one-time link)
/// and posts the composer's form; returns the answer to the post.
async fn compose_through(
    client: &reqwest::Client,
    base: &str,
    identification_key: &str,
    conversation: &str,
    user: &str,
    text: &str,
) -> reqwest::Response {
    let init: Value = client
        .post(format!("{base}/divar/session-init"))
        .header("authorization", identification_key)
        .header("API-Version", "2")
        .json(&chat_session_init(conversation, user))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The link names APP_BASE_URL; the process listens elsewhere in this test.
    let link = Url::parse(init["url"].as_str().unwrap()).unwrap();
    let entered = client
        .get(format!("{base}{}", link.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_redirect(&entered), "/compose", "the grant is there");
    let key = uuid::Uuid::new_v4().to_string();
    let token = csrf_token_at(client, &format!("{base}/compose")).await;
    client
        .post(format!("{base}/compose"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("idempotency_key", key.as_str()),
            ("action", "send"),
            ("text", text),
        ])
        .send()
        .await
        .unwrap()
}

async fn a_send_answered_then_killed_is_delivered_once_after_restart(engine: Engine) {
    // Divar answers slowly: the process dies with the send under way.
    let (divar, _db, env) = setup(engine, 1500).await;
    let conv = conversation(1, 1);
    let db = shared_db(&env).await;
    store_grant(
        &db,
        &settings_of(&env),
        &divar.sandbox,
        Subject::Conversation(conversation_id(&conv)),
        BUYER_1,
        &format!("CONVERSATION_SEND_MESSAGE.{conv} offline_access"),
    )
    .await;

    let (mut first, base) = spawn_serve_at(&env);
    let answered = compose_through(
        &browser(),
        &base,
        &divar.sandbox.app().identification_key,
        &conv,
        BUYER_1,
        "پس از خاموشی هم می‌رسد",
    )
    .await;
    let location = assert_redirect(&answered);
    first.kill().unwrap(); // SIGKILL right after the 303: no cleanup.
    first.wait().unwrap();
    let message_id = location
        .strip_prefix("/messages/")
        .and_then(|rest| rest.strip_suffix("/status"))
        .unwrap()
        .to_string();
    let row = db::messages::find(&db, &message_id).await.unwrap().unwrap();
    assert_eq!(
        row.status.as_str(),
        "sending",
        "not delivered before the kill"
    );

    let (mut second, _) = spawn_serve_at(&env);
    let status = eventually("the restarted process settles the message", async || {
        let status = db::messages::find(&db, &message_id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str()
            .to_string();
        (status != "sending").then_some(status)
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(status, "sent");
    let delivered = delivered_to(&divar.sandbox, std::slice::from_ref(&conv));
    assert_eq!(
        delivered.get(&conv),
        Some(&1),
        "exactly once: {delivered:?}"
    );
}
crate::both_engines!(
    killed_single_send,
    a_send_answered_then_killed_is_delivered_once_after_restart
);

/// SIGTERM: `/readyz` fails at once, a request in flight still gets its answer after the
/// listener closed, a client stalled in its request head does not hold the process, and it exits
/// 0 before the deadline.
async fn sigterm_drains_within_the_deadline(engine: Engine) {
    use std::io::{Read, Write};
    let (divar, _db, mut env) = setup(engine, 0).await;
    env.insert("KENAR_SHUTDOWN_DELAY", "1".into());
    env.insert("KENAR_SHUTDOWN_TIMEOUT", "3".into());
    let (mut child, base, logs) = spawn_serve_logged(&env);
    // The start says what it did: the engine, the migrations, the address, the scopes.
    let database = logs
        .find("database ready")
        .expect("a database line at start");
    let engine_name = match engine {
        Engine::Sqlite => "SQLite",
        Engine::Postgres => "PostgreSQL",
    };
    assert_eq!(database["engine"], engine_name, "{database}");
    assert!(
        database["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        database["migrations"]
            .as_str()
            .is_some_and(|m| m.contains("0001 conversations")),
        "a fresh database: every migration named: {database}"
    );
    let serving = logs.find("kenar-chat is serving").unwrap();
    assert_eq!(serving["base_url"], "http://127.0.0.1:9/", "{serving}");
    assert_eq!(
        serving["extra_scopes"], "USER_ID NOTIFICATION_ACCESS_REVOCATION USER_POSTS_GET",
        "{serving}"
    );
    assert_eq!(serving["message_retention_days"], 7, "{serving}");
    let all = logs.all().iter().map(Value::to_string).collect::<String>();
    for secret in [
        &env["KENAR_API_KEY"],
        &env["TOKEN_ENCRYPTION_KEY"],
        &env["KENAR_OAUTH_SECRET"],
    ] {
        assert!(
            !all.contains(secret.as_str()),
            "no secret in the start lines"
        );
    }
    let client = browser();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let addr = base.trim_start_matches("http://").to_string();

    // A client stalled halfway through its request head (the header timeout is 10 s).
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // A session initialization whose body is still arriving.
    let body = chat_session_init(&conversation(1, 1), BUYER_1).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut in_flight = std::net::TcpStream::connect(&addr).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        in_flight,
        "POST /divar/session-init HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nAPI-Version: 2\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        divar.sandbox.app().identification_key,
        body.len()
    )
    .unwrap();
    // The server has the request in hand once it asks for the body.
    let mut asked = Vec::new();
    while !asked.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        in_flight.read_exact(&mut byte).unwrap();
        asked.push(byte[0]);
    }
    assert!(
        asked.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&asked)
    );
    in_flight.write_all(first).unwrap();

    let signalled = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "readyz kept answering 200"
        );
    }
    let to_503 = signalled.elapsed();
    assert!(
        to_503 < Duration::from_millis(100),
        "/readyz failed after {to_503:?}"
    );

    // The listener closes when the delay (1 s, on the process's own timer) is over, not
    // before; the request in flight is still answered after that. Polled: the test cannot
    // move a child process's clock.
    eventually_within(
        Duration::from_secs(3).saturating_sub(signalled.elapsed()),
        "the listener closes after the delay",
        async || std::net::TcpStream::connect(&addr).is_err(),
    )
    .await;
    let closed = signalled.elapsed();
    assert!(
        closed >= Duration::from_millis(900),
        "the listener closed {closed:?} after the signal, before the delay"
    );
    in_flight.write_all(rest).unwrap();
    let mut answer = String::new();
    let _ = in_flight.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let exited = eventually_within(
        Duration::from_millis(5500).saturating_sub(signalled.elapsed()),
        "the process exits before delay + timeout",
        async || child.try_wait().unwrap(),
    )
    .await;
    assert!(exited.success(), "{exited:?}");
    assert!(
        signalled.elapsed() < Duration::from_millis(5000),
        "exited after {:?}",
        signalled.elapsed()
    );
    drop(stalled);
    // The last line says what the drain did: the session initialization in flight, and the
    // readiness probes answered during the delay, were drained; no send was waiting; the stalled
    // client was cut at the deadline, so not everything finished in time (a clean stop says
    // `in_time: true`: tests/api/outage.rs).
    let stopped = eventually("the stop line is read", async || logs.find("stopped:")).await;
    assert_eq!(
        logs.all().last().unwrap()["message"],
        stopped["message"],
        "it is the last line"
    );
    assert_eq!(stopped["in_time"], false, "{stopped}");
    assert_eq!(stopped["level"], "WARN", "{stopped}");
    assert!(
        stopped["requests_drained"].as_u64().is_some_and(|n| n >= 2),
        "{stopped}"
    );
    assert_eq!(stopped["sends_drained"], 0, "{stopped}");
}
crate::both_engines!(sigterm_drain, sigterm_drains_within_the_deadline);
