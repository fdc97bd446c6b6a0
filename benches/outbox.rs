//! `cargo bench --bench outbox`: a broadcast of 2,000 conversations through the outbox against
//! the simulated Divar (its rate limit off), compared in the same run with a bare loop of 2,000
//! reqwest calls to the same endpoint. Runs several rounds (each: the bare loop, then a new
//! broadcast to the same conversations) after one untimed warm-up round, and prints every
//! round's rates and ratio, then the median ratio.
//!
//! Options (environment): BENCH_CONVERSATIONS (default 2000), BENCH_ROUNDS (default 5),
//! BENCH_DATABASE_URL (default a temporary SQLite file), BENCH_WORKERS (default 4), BENCH_BATCH
//! (rows per claim, default the server's). BENCH_SHORT=1: one round of 200 conversations, to
//! check that it runs and every message arrives once (what CI does).

mod options;
mod seed;

use std::time::{Duration, Instant};

use kenar::{ConversationId, api::KenarApi, oauth::KenarOAuth};
use kenar_chat::{
    clock::{Clock, SystemClock},
    config::{Settings, TokenKey},
    crypto::TokenCipher,
    db::{self, Db, grants::Subject},
    sandbox::{AddonUrls, AppRegistration, Sandbox, SandboxOptions},
    services::{pacing::Pacer, vault::Vault},
    worker::outbox::{ExecutionOutcome, OutboxSettings, OutboxWorker},
};
use seed::{POST, SELLER, post, seller};
use serde_json::{Value, json};
use url::Url;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = options::option("BENCH_CONVERSATIONS", 2000, 200);
    let workers: usize = options::option("BENCH_WORKERS", 4, 4);
    let rounds: usize = options::option("BENCH_ROUNDS", 5, 1).max(1);
    let dir = tempfile::tempdir()?;
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));

    // The simulated Divar on its own port, with no rate limit.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let sandbox = Sandbox::new(
        AppRegistration::generate(AddonUrls::under(&Url::parse("http://127.0.0.1:9/")?)),
        Url::parse(&format!("{base}/"))?,
        SandboxOptions {
            rate_limit_per_minute: u32::MAX,
            ..SandboxOptions::default()
        },
    );
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = sandbox.app().clone();
    let http = reqwest::Client::new();

    let conversations = seed::add_conversations(&sandbox, count)?;
    let body = json!({ "type": "TEXT", "message": "benchmark" });

    // The add-on's side: settings, database, vault (with the seller's grant, issued without
    // the consent screen) and workers.
    let key = TokenKey::generate();
    let env = |name: &str| -> Option<String> {
        Some(match name {
            "KENAR_APP_SLUG" => app.slug.clone(),
            "KENAR_API_KEY" => app.api_key.clone(),
            "KENAR_OAUTH_SECRET" => app.oauth_secret.clone(),
            "DIVAR_IDENTIFICATION_KEY" => app.identification_key.clone(),
            "APP_BASE_URL" => "http://127.0.0.1:9".into(),
            "TOKEN_ENCRYPTION_KEY" => {
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.expose())
            }
            "DATABASE_URL" => database_url.clone(),
            "KENAR_API_BASE_URL" | "KENAR_OAUTH_BASE_URL" => format!("{base}/sandbox"),
            _ => return None,
        })
    };
    let settings = Settings::from_lookup(env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = Db::connect(&database_url).await?;
    db.migrate().await?;
    let client = kenar::http_client(Duration::from_secs(10), "kenar-chat-bench")?;
    let oauth = KenarOAuth::new(&settings.oauth_credentials(), client.clone())?;
    let vault = Vault::new(
        db.clone(),
        TokenCipher::new(&settings.token_keys),
        oauth,
        SystemClock::shared(),
    );
    let scope = format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST} offline_access");
    let access = seed::grant(&sandbox, &vault, Subject::Post(post()), SELLER, &scope).await?;
    for conversation in &conversations {
        db::conversations::record_seen(&db, conversation, &post(), SystemClock.now_ms()).await?;
    }
    let api = KenarApi::new(
        client,
        settings.kenar_api_base_url.clone(),
        settings.api_key.clone(),
    );
    let outbox_settings = OutboxSettings {
        workers,
        batch: std::env::var("BENCH_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(OutboxSettings::default().batch),
        idle: Duration::from_millis(5),
        ..OutboxSettings::default()
    };
    let worker = OutboxWorker::new(
        db.clone(),
        vault,
        api,
        Pacer::unlimited(SystemClock::shared()),
        outbox_settings,
        SystemClock::shared(),
    );

    println!(
        "conversations: {count}   database: {}   outbox workers: {workers}",
        if database_url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let warm_up = &conversations[..conversations.len().min(100)];
    bare_loop(&http, &base, &app.api_key, &access, warm_up, &body).await?;
    through_outbox(&db, &worker, workers, warm_up, &body).await?;
    let mut ratios = Vec::new();
    let delivered = || sandbox.world().messages.len();
    for round in 1..=rounds {
        let before = delivered();
        let bare = bare_loop(&http, &base, &app.api_key, &access, &conversations, &body).await?;
        let after_bare = delivered();
        let outbox = through_outbox(&db, &worker, workers, &conversations, &body).await?;
        // Both sides must have delivered every message, once, for the rates to compare.
        anyhow::ensure!(
            after_bare - before == count && delivered() - after_bare == count,
            "round {round}: the sandbox received {} (bare loop) and {} (outbox) messages, not {count} each",
            after_bare - before,
            delivered() - after_bare
        );
        let ratio = rate(outbox) / rate(bare);
        println!(
            "round {round}: bare loop {:>7.1} msg/s   outbox {:>7.1} msg/s   ratio {ratio:.2}",
            rate(bare),
            rate(outbox)
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio (outbox / bare loop throughput) over {rounds} rounds: {:.2}   (min {:.2}, max {:.2})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    Ok(())
}

/// The bare loop: one reqwest call after another, each with its own idempotency key.
async fn bare_loop(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    access: &str,
    conversations: &[ConversationId],
    body: &Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for conversation in conversations {
        let response = http
            .post(format!(
                "{base}/sandbox/v2/open-platform/conversations/{conversation}/messages"
            ))
            .header("x-api-key", api_key)
            .bearer_auth(access)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "bare loop: HTTP {}",
            response.status()
        );
    }
    Ok(started.elapsed())
}

/// A broadcast written in one transaction and drained by the worker pool, from the click on
/// "send" to the last recorded outcome.
async fn through_outbox(
    db: &Db,
    worker: &OutboxWorker,
    workers: usize,
    conversations: &[ConversationId],
    body: &Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let db::broadcasts::Created::New(id) = db::broadcasts::create(
        db,
        &uuid::Uuid::new_v4().to_string(),
        &uuid::Uuid::new_v4().to_string(),
        &post(),
        &seller(),
        &body.to_string(),
        conversations,
        SystemClock.now_ms(),
    )
    .await?
    else {
        anyhow::bail!("expected a new broadcast");
    };
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let worker = worker.clone();
        tasks.push(tokio::spawn(async move {
            while worker.try_execute_task().await? == ExecutionOutcome::TaskCompleted {}
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let progress = db::broadcasts::progress(db, &id).await?;
    anyhow::ensure!(
        progress.sent as usize == conversations.len(),
        "outbox sent {} of {}",
        progress.sent,
        conversations.len()
    );
    Ok(elapsed)
}
