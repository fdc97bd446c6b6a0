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
//!
//! BENCH_PEOPLE=N (N > 0): single sends instead of a broadcast, through the express worker's
//! fair claim: N buyers, each connected to their own chat, share the messages (each queues
//! BENCH_CONVERSATIONS / N of them, written before the clock starts); the bare loop sends the
//! same messages with the same tokens. The clock runs from the first claim to the last outcome.

mod options;
mod seed;

use std::time::{Duration, Instant};

use kenar::{ConversationId, UserId, api::KenarApi, oauth::KenarOAuth};
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
    let people: usize = options::option("BENCH_PEOPLE", 0, 0);
    let scope = format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST} offline_access");
    let access = seed::grant(&sandbox, &vault, Subject::Post(post()), SELLER, &scope).await?;
    // Single sends: each person's chat and token, in the order the messages take turns.
    let mut senders = Vec::new();
    for conversation in conversations.iter().take(people) {
        let buyer = seed::buyer_of(&sandbox, conversation)?;
        let scope = format!("CONVERSATION_SEND_MESSAGE.{conversation}");
        let subject = Subject::Conversation(conversation.clone());
        let token = seed::grant(&sandbox, &vault, subject, &buyer, &scope).await?;
        senders.push(Sender {
            conversation: conversation.clone(),
            buyer: UserId::parse(&buyer).map_err(anyhow::Error::msg)?,
            token,
        });
    }
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
        // The broadcast's workers poll the dry queue often, so a round's end is seen at once;
        // single sends keep the server's idle tick (a send wakes the express worker).
        idle: if people > 0 {
            OutboxSettings::default().idle
        } else {
            Duration::from_millis(5)
        },
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

    if people > 0 {
        return single_sends(
            &sandbox,
            &http,
            &base,
            &app.api_key,
            &db,
            &worker,
            &senders,
            count,
            rounds,
            &body,
        )
        .await;
    }
    println!(
        "conversations: {count}   database: {}   outbox workers: {workers}",
        if database_url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
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
        ratios.push(report_round(round, count, bare, outbox));
    }
    report_median(ratios);
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
        bare_send(http, base, api_key, conversation, access, body).await?;
    }
    Ok(started.elapsed())
}

/// One send of the bare loop, with its own idempotency key.
async fn bare_send(
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    conversation: &ConversationId,
    access: &str,
    body: &Value,
) -> anyhow::Result<()> {
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
    Ok(())
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

/// One person of the single-sends mode: their chat, their id and their access token.
struct Sender {
    conversation: ConversationId,
    buyer: UserId,
    token: String,
}

/// The single-sends mode (BENCH_PEOPLE): each round, the bare loop sends `count` messages, the
/// people's in turns, then the same messages are queued as the composer queues them and the
/// express worker (the fair claim) delivers them.
#[allow(clippy::too_many_arguments)]
async fn single_sends(
    sandbox: &Sandbox,
    http: &reqwest::Client,
    base: &str,
    api_key: &str,
    db: &Db,
    worker: &OutboxWorker,
    senders: &[Sender],
    count: usize,
    rounds: usize,
    body: &Value,
) -> anyhow::Result<()> {
    println!(
        "single sends: {count} from {} people (express worker, fair claim)   database: {}",
        senders.len(),
        if matches!(db.backend(), db::Backend::Postgres) {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let express = worker.express();
    let delivered = || sandbox.world().messages.len();
    let mut ratios = Vec::new();
    let mut sent = 0i64;
    for round in 0..=rounds {
        // Round 0 warms up and is not counted.
        let n = if round == 0 { count.min(100) } else { count };
        let before = delivered();
        let started = Instant::now();
        for i in 0..n {
            let sender = &senders[i % senders.len()];
            bare_send(
                http,
                base,
                api_key,
                &sender.conversation,
                &sender.token,
                body,
            )
            .await?;
        }
        let bare = started.elapsed();
        let after_bare = delivered();
        let now = SystemClock.now_ms();
        for i in 0..n {
            let sender = &senders[i % senders.len()];
            let row = db::messages::MessageRow {
                message_id: uuid::Uuid::new_v4().to_string(),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                conversation_id: sender.conversation.clone(),
                user_id: sender.buyer.clone(),
                body: body.to_string(),
                status: kenar_chat::domain::status::MessageStatus::Sending,
                failure: None,
                attempts: 0,
                created_at: now,
                updated_at: now,
            };
            db::messages::insert_queued(db, &row, now).await?;
        }
        // The express worker as the server runs it (overlapping claims), until every message
        // has its outcome recorded.
        let sent_before = sent;
        let started = Instant::now();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(express.clone().run_until_stopped(shutdown.clone()));
        // The worker's own count of recorded outcomes: polling the database instead would
        // compete with the worker for it.
        let recorded_before = express.recorded();
        while express.recorded() < recorded_before + n as u64 {
            // A batch that lost its lease records nothing: fail instead of waiting forever.
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "round {round}: {} of {n} outcomes recorded after 120 s",
                express.recorded() - recorded_before
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let outbox = started.elapsed();
        shutdown.cancel();
        running.await?;
        sent = sqlx::query_scalar::<_, i64>("select count(*) from messages where status = 'sent'")
            .fetch_one(db.pool())
            .await?;
        anyhow::ensure!(
            sent == sent_before + n as i64,
            "round {round}: {} messages recorded as sent, not {n}",
            sent - sent_before
        );
        anyhow::ensure!(
            after_bare - before == n && delivered() - after_bare == n,
            "round {round}: the sandbox received {} (bare loop) and {} (outbox) messages, not {n} each",
            after_bare - before,
            delivered() - after_bare
        );
        if round == 0 {
            continue;
        }
        ratios.push(report_round(round, count, bare, outbox));
    }
    report_median(ratios);
    Ok(())
}

/// Prints a round's rates and returns its ratio (outbox / bare loop).
fn report_round(round: usize, count: usize, bare: Duration, outbox: Duration) -> f64 {
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    let ratio = rate(outbox) / rate(bare);
    println!(
        "round {round}: bare loop {:>7.1} msg/s   outbox {:>7.1} msg/s   ratio {ratio:.2}",
        rate(bare),
        rate(outbox)
    );
    ratio
}

fn report_median(mut ratios: Vec<f64>) {
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio (outbox / bare loop throughput) over {} rounds: {:.2}   (min {:.2}, max {:.2})",
        ratios.len(),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}
