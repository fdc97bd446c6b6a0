//! What an operator relies on: request ids in logs, answers while the database is away, and
//! starting against a schema a newer release migrated.

use std::{net::SocketAddr, time::Duration};

use kenar_chat::sandbox::SandboxOptions;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// An incoming `X-Request-Id` is echoed and carried by every log line of its request; a request
/// without one gets a fresh id, echoed and logged the same way.
#[tokio::test]
async fn request_ids_are_echoed_and_logged() {
    let app = spawn_app(Engine::Sqlite).await;
    let body = chat_session_init(&conversation(1, 1), BUYER_1);
    let with_id = app
        .session_init_request(Some("2"), &body)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(with_id.status(), StatusCode::OK);
    assert_eq!(with_id.headers()["x-request-id"], "abc-123");
    let without = app.session_init(Some("2"), &body).await;
    let generated = without.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    let logs = captured_logs();
    for id in ["abc-123", generated.as_str()] {
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(&format!("request_id=\"{id}\"")))
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("session initialized")),
            "the handler's line carries {id}: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("answered")
                && l.contains("status=200")
                && l.contains("latency_ms=")),
            "the access line carries {id}: {lines:#?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.contains("route=\"/divar/session-init\"")),
            "{lines:#?}"
        );
    }
    // A forged id that would break the log line is not logged as given.
    let forged = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "a b=c")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    assert!(!captured_logs().contains("request_id=\"a b=c\""));
}

/// A TCP relay to PostgreSQL that can be cut and restored, to play a database that refuses
/// connections.
struct Relay {
    addr: SocketAddr,
    stop: CancellationToken,
}

async fn relay(listen: SocketAddr, upstream: SocketAddr) -> Relay {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let cut = stop.clone();
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = tokio::select! {
                accepted = listener.accept() => accepted.unwrap(),
                () = cut.cancelled() => return,
            };
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    () = cut.cancelled() => {}
                }
            });
        }
    });
    Relay { addr, stop }
}

/// The database refuses connections: pages answer 503 with `Retry-After` and a Persian page,
/// Divar's calls get JSON 503, `/readyz` fails; when it is back, everything works again without
/// a restart.
#[tokio::test]
async fn an_unreachable_database_answers_503_and_recovers() {
    let test_db = test_db(Engine::Postgres).await;
    let mut url = url::Url::parse(&test_db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let first = relay("127.0.0.1:0".parse().unwrap(), upstream).await;
    url.set_port(Some(first.addr.port())).unwrap();
    let database_url = url.to_string();
    let app = spawn_app_customized(Engine::Sqlite, SandboxOptions::default(), move |settings| {
        settings.database_url = database_url.into();
        settings.database_acquire_timeout = Duration::from_secs(1);
    })
    .await;
    // One-time links, made while the database is up: opening one spends it in the database.
    let new_link = async || {
        let made: serde_json::Value = app
            .session_init(Some("2"), &chat_session_init(&conversation(1, 1), BUYER_1))
            .await
            .json()
            .await
            .unwrap();
        url::Url::parse(made["url"].as_str().unwrap())
            .unwrap()
            .path()
            .to_string()
    };
    let (working, probe) = (new_link().await, new_link().await);
    // In a browser of its own: the probes below come from one without a session.
    let opened = browser().get(app.url(&working)).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);

    first.stop.cancel();
    // The relay's connections close as their tasks see the cut; readiness asks the database.
    eventually("the cut reaches the add-on", async || {
        app.get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let page = app.get(&probe).await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.text().await.unwrap().contains("دوباره امتحان کنید"));
    let divar_call = app
        .session_init(Some("2"), &chat_session_init(&conversation(1, 1), BUYER_1))
        .await;
    assert_eq!(divar_call.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(divar_call.headers().contains_key("retry-after"));
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    let back = relay(first.addr, upstream).await;
    // The link the outage could not spend opens now.
    eventually("the pool reconnects by itself", async || {
        app.get(&probe).await.status() == StatusCode::SEE_OTHER
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    back.stop.cancel();
}

/// During a rolling upgrade a newer replica may migrate first: an older binary still starts on
/// that schema (and warns), instead of refusing with "previously applied but missing".
async fn a_release_starts_on_a_schema_a_newer_one_migrated(engine: Engine) {
    let test_db = test_db(engine).await;
    let db = kenar_chat::db::Db::connect(&test_db.url).await.unwrap();
    db.migrate().await.unwrap();
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values (99990101000000, 'a newer release', true, $1, 0)",
    )
    .bind(vec![0u8; 48])
    .execute(db.pool())
    .await
    .unwrap();
    db.close().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let launched = kenar_chat::sandbox::launch(listener, &test_db.url, SandboxOptions::default())
        .await
        .expect("starts on the newer schema");
    assert_eq!(
        launched.app.db().newest_migration().await.unwrap(),
        Some(99990101000000)
    );
    assert!(captured_logs().contains("newer than this release knows"));
}
crate::both_engines!(
    newer_schema,
    a_release_starts_on_a_schema_a_newer_one_migrated
);
