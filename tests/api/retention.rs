//! What the add-on keeps, and for how long: the purge task, the template caps, hashed session ids.

use std::time::Duration;

use kenar_chat::{
    config::Retention,
    db::{
        broadcasts,
        purge::{Cutoffs, purge},
    },
    sandbox::SandboxOptions,
};
use reqwest::StatusCode;
use sqlx::Row;

use crate::helpers::*;

async fn scalar(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query(sql)
        .bind(bind)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn body_of(app: &TestApp, message_id: &str) -> (String, String) {
    let row = sqlx::query("select body, status from messages where message_id = $1")
        .bind(message_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    (row.try_get("body").unwrap(), row.try_get("status").unwrap())
}

/// The purge task, with windows of seconds: the first visit's link and click and the first
/// message's text go; its status stays; the second visit and message, younger than the
/// windows, stay whole. Later the first message's record goes whole, and so does the
/// conversation once nothing was heard of it for its window.
async fn the_purge_task_forgets_what_is_past_its_window(engine: Engine) {
    let app = spawn_app_on_manual_clock(engine, SandboxOptions::default(), |settings| {
        settings.entry_link_ttl = Duration::from_secs(1);
        settings.retention = Retention {
            purge_every: Duration::from_millis(100),
            clicks: Duration::from_secs(3),
            message_bodies: Duration::from_secs(3),
            finished_sends: Duration::from_secs(20),
            conversations: Duration::from_secs(40),
        };
    })
    .await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let first = app.send_from_composer("متن اول که باید فراموش شود").await;
    let clicks_then: Vec<String> = sqlx::query("select session_init_id from session_inits")
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("session_init_id").unwrap())
        .collect();
    assert_eq!(clicks_then.len(), 1);
    app.advance(Duration::from_millis(4500));

    app.enter_from_chat(&conv, "buyer").await;
    let second = app.send_from_composer("متن دوم").await;
    let first_click = &clicks_then[0];
    // The task purges on tokio's timer (every 100 ms here), with the cut-offs of the moved
    // clock: wait for its first pass since.
    eventually("the first click is gone", async || {
        let query = "select count(*) from session_inits where session_init_id = $1";
        scalar(&app, query, first_click).await == 0
    })
    .await;
    assert_eq!(
        scalar(
            &app,
            "select count(*) from session_inits where session_init_id <> $1",
            first_click
        )
        .await,
        1,
        "the second click stays"
    );
    // A spent link is kept only until its link expires (the seal refuses it after that).
    let spent: i64 = sqlx::query("select count(*) from spent_links where expires_at < $1")
        .bind(app.clock.now_ms() - 1000)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(
        spent, 0,
        "no spent link outlives its expiry by a purge interval"
    );
    let (body, status) = body_of(&app, &first).await;
    assert_eq!(
        (body.as_str(), status.as_str()),
        ("{}", "sent"),
        "text gone, status kept"
    );
    let (body, _) = body_of(&app, &second).await;
    assert!(body.contains("متن دوم"), "the young message is whole");
    assert_eq!(
        scalar(
            &app,
            "select count(*) from outbox where message_id = $1",
            &second
        )
        .await,
        1
    );
    // The person's history still has the first message, as sent, without its text.
    let page = app.get(&format!("/messages/{first}/status")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("فرستاده شد") && !html.contains("متن اول"));
    // A cleared message cannot be sent again.
    let resend = app.submit(&format!("/messages/{first}/resend")).await;
    assert_ne!(resend.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_of(&app, &first).await.1, "sent");

    // Past the record window (20 s after it was sent) the first message goes whole, with its
    // outbox row; the second (sent 4.5 s later) stays a little longer.
    app.advance(Duration::from_millis(17_000));
    eventually("the first message's record is gone", async || {
        scalar(
            &app,
            "select count(*) from messages where message_id = $1",
            &first,
        )
        .await
            == 0
    })
    .await;
    let count = "select count(*) from outbox where message_id = $1";
    assert_eq!(scalar(&app, count, &first).await, 0);
    assert_eq!(scalar(&app, count, &second).await, 1);
    assert_eq!(body_of(&app, &second).await.1, "sent");
    // The conversation, last heard of at the second visit, stays until its own window ends.
    let known = "select count(*) from conversations where conversation_id = $1";
    assert_eq!(scalar(&app, known, &conv).await, 1);
    app.advance(Duration::from_secs(25));
    eventually("the conversation is forgotten", async || {
        scalar(&app, known, &conv).await == 0
    })
    .await;
}
crate::both_engines!(purge_task, the_purge_task_forgets_what_is_past_its_window);

/// A grant nobody used for as long as its refresh token lives (30 days, Divar's docs) can never
/// send again: the purge deletes it, and the person is asked to connect again. A grant issued
/// since stays.
async fn a_grant_unused_past_its_refresh_token_is_forgotten(engine: Engine) {
    let app = spawn_app_on_manual_clock(engine, SandboxOptions::default(), |_| {}).await;
    let idle = conversation(1, 1);
    app.connect_conversation(&idle, "buyer", BUYER_1).await;
    let grants = "select count(*) from grants where subject_id = $1";
    let purge = async || {
        kenar_chat::worker::purge::purge_once(&app.db, &app.settings.retention, app.clock.now_ms())
            .await
            .unwrap()
    };
    app.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(
        purge().await.grants,
        0,
        "kept while its refresh token lives"
    );
    let used = conversation(1, 2);
    app.connect_conversation(&used, "buyer", BUYER_2).await;
    app.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(purge().await.grants, 1, "{idle} is past 30 days");
    assert_eq!(scalar(&app, grants, &idle).await, 0);
    assert_eq!(
        scalar(&app, grants, &used).await,
        1,
        "the younger grant stays"
    );
    assert_eq!(app.enter_from_chat(&idle, "buyer").await, "/start");
    let landing = app.get_html("/start").await;
    assert!(
        landing.contains("ادامه با حساب دیوار"),
        "asked to connect again"
    );
}
crate::both_engines!(
    idle_grants,
    a_grant_unused_past_its_refresh_token_is_forgotten
);

/// Broadcasts: finished ones past the window go whole with their outbox rows; a running one,
/// and expired web sessions, are handled as their own rules say. Exact counts, both engines.
async fn a_purge_removes_exactly_the_expired_rows(engine: Engine) {
    let app = spawn_app(engine).await;
    let ids: Vec<_> = (0..3).map(|i| conversation_id(&format!("c-{i}"))).collect();
    let mut broadcasts = Vec::new();
    for key in ["done", "running", "paused"] {
        let broadcasts::Created::New(id) = broadcasts::create(
            &app.db,
            &uuid::Uuid::new_v4().to_string(),
            key,
            &post_token("P1"),
            &user_id("seller"),
            r#"{"type":"TEXT","message":"پیام همگانی"}"#,
            &ids,
            now_ms(),
        )
        .await
        .unwrap() else {
            panic!("a new broadcast")
        };
        broadcasts.push(id);
    }
    let old = now_ms() - 10_000;
    sqlx::query("update outbox set status = 'sent', updated_at = $1 where broadcast_id = $2")
        .bind(old)
        .bind(&broadcasts[0])
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("update broadcasts set status = 'done', updated_at = $1 where broadcast_id = $2")
        .bind(old)
        .bind(&broadcasts[0])
        .execute(app.db.pool())
        .await
        .unwrap();
    // Paused for its seller to reconnect, longer ago than the records' window.
    sqlx::query(
        "update broadcasts set status = 'paused', stop_reason = 'reconsent', updated_at = $1
         where broadcast_id = $2",
    )
    .bind(old)
    .bind(&broadcasts[2])
    .execute(app.db.pool())
    .await
    .unwrap();
    sqlx::query(
        "insert into web_sessions (session_id, data, expires_at, created_at, updated_at)
         values ('expired', '{}', $1, $1, $1), ('alive', '{}', $2, $1, $1)",
    )
    .bind(old)
    .bind(now_ms() + 600_000)
    .execute(app.db.pool())
    .await
    .unwrap();

    let now = now_ms();
    let cutoffs = Cutoffs {
        now,
        clicks_before: now - 5_000,
        bodies_before: now - 5_000,
        finished_before: now - 5_000,
        conversations_before: now - 5_000,
        grants_before: now - 5_000,
    };
    let purged = purge(&app.db, cutoffs).await.unwrap();
    assert_eq!(purged.broadcasts, 1, "{purged:?}");
    assert_eq!(purged.outbox_rows, 3, "{purged:?}");
    assert_eq!(purged.broadcast_bodies, 1, "{purged:?}");
    // The app's own purge worker may have taken the expired session first: what counts is
    // that it is gone and the live one stays.
    assert!(purged.web_sessions <= 1, "{purged:?}");
    let sessions: Vec<String> = sqlx::query_scalar(
        "select session_id from web_sessions where session_id in ('expired', 'alive')",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(sessions, ["alive"], "{purged:?}");
    assert_eq!(purged.paused_broadcasts, 1, "{purged:?}");
    let paused = "select count(*) from outbox where broadcast_id = $1 and status = 'cancelled'";
    assert_eq!(
        scalar(&app, paused, &broadcasts[2]).await,
        3,
        "a broadcast paused too long ends, its rows never sent"
    );
    let status = "select count(*) from broadcasts where broadcast_id = $1 and status = 'cancelled'";
    assert_eq!(scalar(&app, status, &broadcasts[2]).await, 1);
    assert_eq!(
        scalar(
            &app,
            "select count(*) from broadcasts where broadcast_id = $1",
            &broadcasts[1]
        )
        .await,
        1,
        "a running broadcast stays"
    );
    assert_eq!(
        scalar(
            &app,
            "select count(*) from outbox where broadcast_id = $1",
            &broadcasts[1]
        )
        .await,
        3
    );
    assert_eq!(
        scalar(
            &app,
            "select count(*) from web_sessions where session_id = $1",
            "alive"
        )
        .await,
        1
    );
    let again = purge(&app.db, cutoffs).await.unwrap();
    assert_eq!(again.total(), 0, "running it again changes nothing");
}
crate::both_engines!(purge_exact, a_purge_removes_exactly_the_expired_rows);

/// Templates: a person's 51st is refused with a Persian message and nothing saved; fields that
/// are not the composer's are not stored (a 1.9 MB "template" was possible before).
#[tokio::test]
async fn templates_are_capped_per_person() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let save = async |name: &str, extra: &str| {
        let key = app.idempotency_key().await;
        app.post_compose(&[
            ("idempotency_key", &key),
            ("action", "save_template"),
            ("template_name", name),
            ("text", "قیمت نهایی"),
            ("padding", extra),
        ])
        .await
    };
    let saved = save("اول", &"x".repeat(1_900_000)).await;
    assert_eq!(assert_redirect(&saved), "/compose?notice=template_saved");
    let stored: i64 = scalar(
        &app,
        "select max(length(draft)) from templates where user_id = $1",
        BUYER_1,
    )
    .await;
    assert!(
        stored < 200,
        "only the composer's fields are kept: {stored} bytes"
    );
    for i in 1..50 {
        kenar_chat::db::templates::create(
            &app.db,
            &user_id(BUYER_1),
            &format!("قالب {i}"),
            "{}",
            50,
            now_ms(),
        )
        .await
        .unwrap()
        .expect("under the cap");
    }
    let refused = save("یکی بیشتر", "").await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(html.contains("۵۰ قالب ذخیره کرده‌اید"), "a Persian reason");
    assert_eq!(
        scalar(
            &app,
            "select count(*) from templates where user_id = $1",
            BUYER_1
        )
        .await,
        50,
        "nothing more was saved"
    );
}

/// The session table holds hashes: its rows do not reveal the cookies that open them.
#[tokio::test]
async fn session_ids_are_stored_hashed() {
    let app = spawn_app(Engine::Sqlite).await;
    let link = app
        .open_addon_link(&app.client, &conversation(1, 1), "buyer")
        .await;
    let entered = browser().get(&link).send().await.unwrap();
    let cookie = entered
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kenar_session="))
        .expect("a session cookie");
    let id = cookie["kenar_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(id.len() >= 20, "{id}");
    assert_eq!(
        scalar(
            &app,
            "select count(*) from web_sessions where session_id = $1",
            &id
        )
        .await,
        0,
        "the cookie's value is not a row key"
    );
    use sha2::{Digest, Sha256};
    let hashed: String = Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        scalar(
            &app,
            "select count(*) from web_sessions where session_id = $1",
            &hashed
        )
        .await,
        1
    );
}
