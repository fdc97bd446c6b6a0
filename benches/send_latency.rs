//! `cargo bench --bench send_latency`: how long a person's message takes from the compose
//! form's POST to its arrival at Divar (the simulated one, in this process), through the whole
//! add-on (HTTP, session, the transaction that records and queues it, the express worker, the
//! pacer, the Kenar API call). Measured one message at a time, idle and while 2,000-row
//! broadcasts of the same app run (a new one starts whenever the last one ends), in several
//! rounds; prints p50/p99 per round and the median of the rounds.
//!
//! With a pacer (BENCH_RATE), idle messages are spaced one pacer period apart; during
//! broadcasts each message is written at a random moment of a period and waits for the next
//! free turn: up to one period (60/rate s), half of it on average.
//!
//! Arrival is seen by polling the simulated Divar's store every 0.2 ms, so figures carry up to
//! that much extra. Options (environment): BENCH_DATABASE_URL (default a temporary SQLite
//! file), BENCH_ROUNDS (default 3), BENCH_SAMPLES (per phase and round, default 200),
//! BENCH_RATE (the add-on's KENAR_RATE_LIMIT_PER_MINUTE, default 0 = unpaced),
//! BENCH_BROADCAST_SIZE (default 2000). BENCH_SHORT=1: one round of 10 messages per phase beside
//! 200-row broadcasts, to check that it runs and every message arrives (what CI does).

mod options;
mod seed;

use std::time::{Duration, Instant};

use kenar::{ConversationId, oauth::KenarOAuth};
use kenar_chat::{
    clock::{Clock, SystemClock},
    crypto::TokenCipher,
    db::{self, Db, grants::Subject},
    sandbox::{Sandbox, SandboxOptions, launch_with},
    services::vault::Vault,
};
use seed::{POST, SELLER, post, seller};
use serde_json::json;

/// A seeded chat of another post, so the single sends never share a conversation with the
/// broadcasts.
const CHAT: &str = "c0ffee00-0000-4000-8000-000002000001";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = options::option("BENCH_ROUNDS", 3, 1).max(1);
    let samples: usize = options::option("BENCH_SAMPLES", 200, 10).max(10);
    let rate: u32 = options::option("BENCH_RATE", 0, 0);
    let broadcast_size: usize = options::option("BENCH_BROADCAST_SIZE", 2000, 200);
    let dir = tempfile::tempdir()?;
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.path().display()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let launched = launch_with(
        listener,
        &database_url,
        SandboxOptions {
            rate_limit_per_minute: u32::MAX,
            ..SandboxOptions::default()
        },
        |settings| {
            settings.rate_limit_per_minute = rate;
            // One person sends every message here: the per-person limits would measure
            // themselves, not the path to Divar.
            settings.limits.submits_per_minute = 10_000_000;
            settings.limits.queued_sends = 1_000_000;
            settings.limits.sends_per_day = 10_000_000;
        },
    )
    .await?;
    let base = launched.base_url.as_str().trim_end_matches('/').to_string();
    let sandbox = launched.sandbox.clone();
    let settings = launched.settings.clone();
    let db = launched.app.db().clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(launched.app.run_until_stopped(shutdown.clone()));

    let oauth = KenarOAuth::new(
        &settings.oauth_credentials(),
        kenar::http_client(Duration::from_secs(10), "kenar-chat-bench")?,
    )?;
    let vault = Vault::new(
        db.clone(),
        TokenCipher::new(&settings.token_keys),
        oauth,
        SystemClock::shared(),
    );
    let buyer = sandbox
        .world()
        .conversation(CHAT)
        .map(|c| c.buyer_id.clone())
        .ok_or_else(|| anyhow::anyhow!("the seeded chat {CHAT} is missing"))?;
    seed::grant(
        &sandbox,
        &vault,
        Subject::Conversation(ConversationId::parse(CHAT).map_err(anyhow::Error::msg)?),
        &buyer,
        &format!("CONVERSATION_SEND_MESSAGE.{CHAT} offline_access"),
    )
    .await?;
    seed::grant(
        &sandbox,
        &vault,
        Subject::Post(post()),
        SELLER,
        &format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST} offline_access"),
    )
    .await?;

    // The broadcasts' conversations.
    let conversations = seed::add_conversations(&sandbox, broadcast_size)?;
    for conversation in &conversations {
        db::conversations::record_seen(&db, conversation, &post(), SystemClock.now_ms()).await?;
    }

    // The buyer opens the add-on from the chat, as Divar would send them.
    let person = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let opened = person
        .post(format!("{base}/sandbox/chats/{CHAT}/open-addon"))
        .form(&[("as", "buyer")])
        .send()
        .await?;
    let link = location(&opened)?;
    let entered = person.get(&link).send().await?;
    anyhow::ensure!(
        location(&entered)? == "/compose",
        "the buyer should land on the composer"
    );
    // The composer's form carries the visit's token against forged posts, as every page does.
    let composer = person
        .get(format!("{base}/compose"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = composer
        .split_once(r#"<meta name="csrf-token" content=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(token, _)| token.to_string())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| anyhow::anyhow!("the composer carries no form token"))?;
    let composer = Composer {
        person: &person,
        base: &base,
        csrf: &csrf,
    };

    println!(
        "send latency: compose POST → arrival at the simulated Divar; {} database, pacer {}; \
         {rounds} rounds × {samples} messages per phase",
        if database_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if rate == 0 {
            "off".to_string()
        } else {
            format!("{rate}/min")
        }
    );
    // One untimed warm-up message.
    send_one(&composer, &sandbox).await?;
    let mut idle_p50 = Vec::new();
    let mut busy_p50 = Vec::new();
    for round in 1..=rounds {
        let mut idle = Vec::with_capacity(samples);
        for _ in 0..samples {
            // Idle means the pacer too: its last turn is over before the next message.
            if rate > 0 {
                tokio::time::sleep(Duration::from_secs_f64(60.0 / f64::from(rate))).await;
            }
            idle.push(send_one(&composer, &sandbox).await?);
        }
        let mut busy = Vec::with_capacity(samples);
        let mut broadcasts = 0;
        let mut running: Option<String> = None;
        while busy.len() < samples {
            let done = match &running {
                Some(id) => db::broadcasts::progress(&db, id).await?.pending == 0,
                None => true,
            };
            if done {
                running = Some(start_broadcast(&db, &conversations).await?);
                broadcasts += 1;
                // Let the workers get going.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // A person writes at any moment, not right after the last turn: wait a random
            // part of a pacer period first.
            if rate > 0 {
                let period = 60.0 / f64::from(rate);
                tokio::time::sleep(Duration::from_secs_f64(period * rand::random::<f64>())).await;
            }
            let latency = send_one(&composer, &sandbox).await?;
            // Count it only if the broadcast was still running when it arrived.
            let id = running.as_deref().unwrap_or_default();
            if db::broadcasts::progress(&db, id).await?.pending > 0 {
                busy.push(latency);
            }
        }
        // The next round starts idle: cancel what still runs and let it settle.
        if let Some(id) = &running {
            db::broadcasts::cancel(&db, id, SystemClock.now_ms()).await?;
            while db::broadcasts::progress(&db, id).await?.pending > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let (i50, i99) = percentiles(&mut idle);
        let (b50, b99) = percentiles(&mut busy);
        println!(
            "round {round}: idle p50 {i50:.1} ms, p99 {i99:.1} ms | during broadcasts \
             ({broadcasts} of {broadcast_size} rows) p50 {b50:.1} ms, p99 {b99:.1} ms"
        );
        idle_p50.push(i50);
        busy_p50.push(b50);
    }
    println!(
        "median of rounds: idle p50 {:.1} ms; during broadcasts p50 {:.1} ms",
        median(&mut idle_p50),
        median(&mut busy_p50)
    );
    shutdown.cancel();
    Ok(())
}

async fn start_broadcast(db: &Db, conversations: &[ConversationId]) -> anyhow::Result<String> {
    let body = json!({ "type": "TEXT", "message": "benchmark broadcast" }).to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let now = SystemClock.now_ms();
    match db::broadcasts::create(
        db,
        &uuid::Uuid::new_v4().to_string(),
        &key,
        &post(),
        &seller(),
        &body,
        conversations,
        now,
    )
    .await?
    {
        db::broadcasts::Created::New(id) | db::broadcasts::Created::Existing(id) => Ok(id),
    }
}

/// The buyer's visit to the composer: its client (with the session cookie) and form token.
struct Composer<'a> {
    person: &'a reqwest::Client,
    base: &'a str,
    csrf: &'a str,
}

/// Posts one message from the composer and waits until Divar has it; milliseconds.
async fn send_one(composer: &Composer<'_>, sandbox: &Sandbox) -> anyhow::Result<f64> {
    // Only messages stored after this point are looked at, so a poll costs little however
    // many broadcast messages the store holds.
    let mut cursor = sandbox.world().messages.len();
    let key = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let answer = composer
        .person
        .post(format!("{}/compose", composer.base))
        .form(&[
            ("csrf_token", composer.csrf),
            ("idempotency_key", key.as_str()),
            ("action", "send"),
            ("text", "جمعه برای بازدید آزاد است"),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        location(&answer)?.ends_with("/status"),
        "the compose form should lead to the message's status"
    );
    loop {
        {
            let world = sandbox.world();
            let arrived = world.messages[cursor..]
                .iter()
                .any(|m| m.idempotency_key.as_deref() == Some(key.as_str()));
            if arrived {
                return Ok(started.elapsed().as_secs_f64() * 1000.0);
            }
            cursor = world.messages.len();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "a message was not delivered within 30 s"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or_else(|| anyhow::anyhow!("expected a redirect, got {}", response.status()))?
        .to_str()?
        .to_string())
}

fn percentiles(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |p: usize| values[(values.len() * p / 100).min(values.len() - 1)];
    (at(50), at(99))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
