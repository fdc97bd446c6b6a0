//! The store, on both engines.

use kenar_chat::{
    db::{Db, broadcasts, conversations, outbox, spent_links},
    domain::{SessionInit, entry_link::Click, status::Outcome},
};

use crate::helpers::*;

async fn store(engine: Engine) -> (Db, TestDb) {
    let test_db = test_db(engine).await;
    let db = Db::connect(&test_db.url).await.unwrap();
    db.migrate().await.unwrap();
    (db, test_db)
}

/// A click as the add-on stores it: its conversation at session initialization, the click
/// itself when its one-time link is spent.
async fn record(db: &Db, init: &SessionInit) -> anyhow::Result<String> {
    conversations::record_click(db, init, now_ms()).await?;
    let click = Click::new(init, i64::MAX);
    Ok(spent_links::spend(db, &click, now_ms())
        .await?
        .expect("a fresh link is spent once"))
}

fn init(json: &str) -> SessionInit {
    SessionInit::parse(json.as_bytes(), None).unwrap()
}

async fn migrations_are_idempotent(engine: Engine) {
    let (db, _guard) = store(engine).await;
    db.migrate().await.unwrap();
    db.ping().await.unwrap();
}
crate::both_engines!(migrate_twice, migrations_are_idempotent);

async fn later_clicks_complete_a_conversation_without_erasing_it(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let first = init(
        r#"{"source":"CHAT","post_token":"gZd7omnS","conversation_id":"c-1","user_side":"Demand","user_id":"buyer"}"#,
    );
    let second = init(
        r#"{"source":"CHAT","conversation_id":"c-1","user_side":"Supply","user_id":"seller"}"#,
    );
    let a = record(&db, &first).await.unwrap();
    let b = record(&db, &second).await.unwrap();
    assert_ne!(a, b);
    let stored = conversations::find(&db, &conversation_id("c-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.post_token.as_deref(),
        Some("gZd7omnS"),
        "a click without a post token keeps it"
    );
    assert_eq!(stored.buyer_user_id.as_deref(), Some("buyer"));
    assert_eq!(stored.seller_user_id.as_deref(), Some("seller"));
    assert!(stored.updated_at >= stored.created_at);

    let click = conversations::find_session_init(&db, &b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(click.user_side, Some(kenar::UserSide::Seller));
    assert_eq!(click.conversation_id.as_deref(), Some("c-1"));
    assert!(
        conversations::find(&db, &conversation_id("c-2"))
            .await
            .unwrap()
            .is_none()
    );
}
crate::both_engines!(
    conversation_upsert,
    later_clicks_complete_a_conversation_without_erasing_it
);

async fn a_post_lists_its_conversations(engine: Engine) {
    let (db, _guard) = store(engine).await;
    for (conv, post) in [("c-1", "P1"), ("c-2", "P1"), ("c-3", "P2")] {
        let body =
            format!(r#"{{"source":"CHAT","post_token":"{post}","conversation_id":"{conv}"}}"#);
        record(&db, &init(&body)).await.unwrap();
    }
    // A click from a post add-on has no conversation; it is still recorded.
    let id = record(&db, &init(r#"{"source":"POST_ADDON","post_token":"P1"}"#))
        .await
        .unwrap();
    assert!(
        conversations::find_session_init(&db, &id)
            .await
            .unwrap()
            .unwrap()
            .conversation_id
            .is_none()
    );
    let mut ids: Vec<_> = conversations::list_for_post(&db, &post_token("P1"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["c-1", "c-2"]);
    assert!(
        conversations::list_for_post(&db, &post_token("P9"))
            .await
            .unwrap()
            .is_empty()
    );
}
crate::both_engines!(post_conversations, a_post_lists_its_conversations);

/// Ids are read back through the same checks they passed on the way in: a row whose id no
/// longer parses (written by hand, or by a future version) is an error, not a string passed on.
async fn a_stored_id_that_does_not_parse_is_refused_on_read(engine: Engine) {
    let (db, _guard) = store(engine).await;
    record(
        &db,
        &init(r#"{"source":"CHAT","post_token":"P1","conversation_id":"c-1"}"#),
    )
    .await
    .unwrap();
    let list = conversations::list_for_post(&db, &post_token("P1"))
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].conversation_id, "c-1");
    sqlx::query(
        "insert into conversations (conversation_id, post_token, seller_user_id, buyer_user_id, created_at, updated_at)
         values ('has a space', 'P1', null, null, 1, 1)",
    )
        .execute(db.pool())
        .await
        .unwrap();
    let error = conversations::list_for_post(&db, &post_token("P1"))
        .await
        .expect_err("an id with a space is not a conversation id");
    assert!(
        format!("{error:#}").contains("printable ASCII"),
        "{error:#}"
    );
}
crate::both_engines!(
    stored_ids_checked,
    a_stored_id_that_does_not_parse_is_refused_on_read
);

async fn original_payload_text_survives_a_round_trip(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let original = init(
        r#"{"extra_data":{"provider_data":{"note":"سلام 'quoted' \"x\""}},"callback_url":"https://divar.ir/x",
            "post_token":"P1","user_id":"b","peer_id":"s","supplier":{"id":"s"},"demand":{"id":"b"},"conversation_id":"c-9"}"#,
    );
    let id = record(&db, &original).await.unwrap();
    let click = conversations::find_session_init(&db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(click.revision, "original");
    let data: serde_json::Value = serde_json::from_str(&click.extra_data).unwrap();
    assert_eq!(data["note"], "سلام 'quoted' \"x\"");
}
crate::both_engines!(
    original_round_trip,
    original_payload_text_survives_a_round_trip
);

fn conversation_ids(n: usize) -> Vec<kenar::ConversationId> {
    (0..n).map(|i| conversation_id(&format!("c-{i}"))).collect()
}

async fn new_broadcast(db: &Db, conversations: &[kenar::ConversationId]) -> String {
    match broadcasts::create(
        db,
        &uuid::Uuid::new_v4().to_string(),
        &uuid::Uuid::new_v4().to_string(),
        &post_token("P1"),
        &user_id("seller"),
        r#"{"type":"TEXT","message":"x"}"#,
        conversations,
        now_ms(),
    )
    .await
    .unwrap()
    {
        broadcasts::Created::New(id) => id,
        broadcasts::Created::Existing(_) => panic!("expected a new broadcast"),
    }
}

/// Claims every due row as `worker` and records `status` for all of them.
async fn finish_all(db: &Db, worker: &str, status: &'static str) -> usize {
    let mut total = 0;
    loop {
        let rows = outbox::claim_batch(db, worker, 30_000, 100, outbox::Lanes::All, now_ms())
            .await
            .unwrap();
        if rows.is_empty() {
            return total;
        }
        total += rows.len();
        let done: Vec<_> = rows
            .iter()
            .map(|r| outbox::Finished {
                outbox_id: r.outbox_id.clone(),
                message_id: None,
                status: Outcome::try_from(status.to_string()).unwrap(),
                failure: None,
            })
            .collect();
        assert!(
            outbox::finish_many(db, worker, &done, now_ms())
                .await
                .unwrap()
        );
    }
}

async fn a_large_broadcast_is_written_whole_with_distinct_keys(engine: Engine) {
    let (db, _guard) = store(engine).await;
    // More than two insert chunks, the last one partial.
    let conversations = conversation_ids(1234);
    let id = new_broadcast(&db, &conversations).await;
    assert_eq!(broadcasts::progress(&db, &id).await.unwrap().pending, 1234);
    let mut keys = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let rows = outbox::claim_batch(&db, "w", 30_000, 500, outbox::Lanes::All, now_ms())
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        for row in rows {
            assert_eq!(row.source, outbox::Source::Broadcast(id.clone()));
            assert_eq!(row.attempts, 1);
            assert!(keys.insert(row.idempotency_key), "idempotency keys differ");
            assert!(seen.insert(row.conversation_id), "one row per conversation");
        }
    }
    assert_eq!(seen.len(), 1234);
    assert!(seen.contains("c-0") && seen.contains("c-1233"));
}
crate::both_engines!(
    large_broadcast_insert,
    a_large_broadcast_is_written_whole_with_distinct_keys
);

async fn broadcasts_are_done_only_when_nothing_is_pending(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let first = new_broadcast(&db, &conversation_ids(30)).await;
    assert_eq!(
        outbox::complete_finished(&db, now_ms())
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(finish_all(&db, "w", "sent").await, 30);
    // A second broadcast still waiting keeps running while the first is marked done.
    let second = new_broadcast(&db, &conversation_ids(3)).await;
    assert_eq!(
        outbox::complete_finished(&db, now_ms()).await.unwrap(),
        std::slice::from_ref(&first)
    );
    let status = |id: String| {
        let db = db.clone();
        async move {
            broadcasts::find(&db, &id)
                .await
                .unwrap()
                .unwrap()
                .status
                .as_str()
        }
    };
    assert_eq!(status(first.clone()).await, "done");
    assert_eq!(status(second.clone()).await, "running");
    assert_eq!(
        outbox::complete_finished(&db, now_ms())
            .await
            .unwrap()
            .len(),
        0
    );

    // Paused with nothing left (its rows ended while it was paused): resuming finishes it.
    broadcasts::pause_for_grant(
        &db,
        &post_token("P1"),
        &user_id("seller"),
        "reconsent",
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(status(second.clone()).await, "paused");
    assert!(
        outbox::claim_batch(&db, "w", 30_000, 100, outbox::Lanes::All, now_ms())
            .await
            .unwrap()
            .is_empty(),
        "a paused broadcast's rows are not claimed"
    );
    broadcasts::resume_for_grant(&db, &post_token("P1"), &user_id("seller"), now_ms())
        .await
        .unwrap();
    assert_eq!(
        status(second.clone()).await,
        "running",
        "rows still pending"
    );
    assert_eq!(finish_all(&db, "w", "failed").await, 3);
    broadcasts::pause_for_grant(
        &db,
        &post_token("P1"),
        &user_id("seller"),
        "reconsent",
        now_ms(),
    )
    .await
    .unwrap();
    broadcasts::resume_for_grant(&db, &post_token("P1"), &user_id("seller"), now_ms())
        .await
        .unwrap();
    assert_eq!(status(second).await, "done");
    assert_eq!(status(first).await, "done");
}
crate::both_engines!(
    broadcast_completion,
    broadcasts_are_done_only_when_nothing_is_pending
);

/// A failed message whose outbox row the purge already deleted (finished rows may be kept
/// shorter than message text) is queued again under a new row, with its own idempotency key.
async fn a_failed_message_without_its_outbox_row_is_queued_again(engine: Engine) {
    let (db, _guard) = store(engine).await;
    sqlx::query(
        "insert into messages (message_id, idempotency_key, conversation_id, user_id, body, status,
             failure, attempts, created_at, updated_at)
         values ('m-failed', 'key-m-failed', 'c-1', 'u-1', '{\"type\":\"TEXT\",\"message\":\"x\"}',
             'failed', 'unavailable', 3, 1, 1)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let queued = kenar_chat::db::messages::requeue(
        &db,
        &user_id("u-1"),
        kenar_chat::db::messages::Requeue::One("m-failed"),
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(queued, ["m-failed"]);
    let claimed = outbox::claim_batch(
        &db,
        "w",
        30_000,
        10,
        outbox::Lanes::InteractiveOnly,
        now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].source,
        outbox::Source::Message("m-failed".into())
    );
    assert_eq!(claimed[0].idempotency_key, "key-m-failed");
}
crate::both_engines!(
    requeue_without_row,
    a_failed_message_without_its_outbox_row_is_queued_again
);

/// Rows a worker held when their broadcast was cancelled, and then gave back or left behind,
/// are settled as cancelled once nobody holds them, so the broadcast's counts become final.
async fn rows_left_behind_by_a_cancel_are_settled(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let ids = conversation_ids(3);
    let t = now_ms();
    let broadcasts::Created::New(id) = broadcasts::create(
        &db,
        &uuid::Uuid::new_v4().to_string(),
        "key-1",
        &post_token("p-1"),
        &user_id("u-1"),
        "{}",
        &ids,
        t,
    )
    .await
    .unwrap() else {
        panic!("a new broadcast")
    };
    // A worker holds all three under a lease of 1 ms, and "dies"; the seller cancels while
    // the lease still holds, and the completion check runs once it has run out.
    let held = outbox::claim_batch(&db, "w", 1, 10, outbox::Lanes::All, t)
        .await
        .unwrap();
    assert_eq!(held.len(), 3);
    broadcasts::cancel(&db, &id, t).await.unwrap();
    let progress = broadcasts::progress(&db, &id).await.unwrap();
    assert_eq!(
        progress.pending, 3,
        "held rows are not settled by the cancel"
    );
    outbox::complete_finished(&db, t + 10).await.unwrap();
    let progress = broadcasts::progress(&db, &id).await.unwrap();
    assert_eq!(
        (progress.pending, progress.cancelled),
        (0, 3),
        "{progress:?}"
    );
}
crate::both_engines!(cancel_settles, rows_left_behind_by_a_cancel_are_settled);

/// Status columns refuse values the code does not know, known values go in, and outbox rows
/// belong to a message or a broadcast that exists, and go with it.
async fn status_columns_accept_only_known_values(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let message = |id: &str, status: &str| {
        sqlx::query(
            "insert into messages (message_id, idempotency_key, conversation_id, user_id, body, status,
                 failure, attempts, created_at, updated_at)
             values ($1, $1, 'c-1', 'u-1', '{}', $2, null, 0, 1, 1)",
        )
        .bind(id.to_string())
        .bind(status.to_string())
    };
    message("m-ok", "sending").execute(db.pool()).await.unwrap();
    assert!(message("m-bad", "sendng").execute(db.pool()).await.is_err());
    let broadcast = |id: &str, status: &str| {
        sqlx::query(
            "insert into broadcasts (broadcast_id, idempotency_key, post_token, user_id, body, status,
                 stop_reason, total, created_at, updated_at)
             values ($1, $1, 'p-1', 'u-2', '{}', $2, null, 1, 1, 1)",
        )
        .bind(id.to_string())
        .bind(status.to_string())
    };
    broadcast("b-ok", "paused")
        .execute(db.pool())
        .await
        .unwrap();
    assert!(
        broadcast("b-bad", "stopped")
            .execute(db.pool())
            .await
            .is_err()
    );
    let grant = |id: &str, kind: &str| {
        sqlx::query(
            "insert into grants (grant_id, subject_kind, subject_id, user_id, scope, access_token,
                 refresh_token, access_expires_at, key_version, refresh_lease_until, created_at, updated_at)
             values ($1, $2, 's-1', 'u-1', 'x', 'sealed', null, 1, 1, null, 1, 1)",
        )
        .bind(id.to_string())
        .bind(kind.to_string())
    };
    grant("g-ok", "post").execute(db.pool()).await.unwrap();
    assert!(grant("g-bad", "chat").execute(db.pool()).await.is_err());

    let outbox_row = |id: &str, message_id: &str| {
        sqlx::query(
            "insert into outbox (outbox_id, broadcast_id, message_id, conversation_id, idempotency_key,
                 priority, status, failure, attempts, next_attempt_at, locked_until, locked_by,
                 created_at, updated_at)
             values ($1, null, $2, 'c-1', $1, 0, 'pending', null, 0, 1, null, null, 1, 1)",
        )
        .bind(id.to_string())
        .bind(message_id.to_string())
    };
    outbox_row("o-ok", "m-ok").execute(db.pool()).await.unwrap();
    assert!(
        outbox_row("o-orphan", "m-missing")
            .execute(db.pool())
            .await
            .is_err(),
        "the outbox still references messages"
    );
    let claimed = outbox::claim_batch(&db, "w", 30_000, 10, outbox::Lanes::All, now_ms())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].source, outbox::Source::Message("m-ok".into()));

    let click = |id: &str, side: Option<&str>, revision: &str| {
        sqlx::query(
            "insert into session_inits (session_init_id, conversation_id, post_token, user_id,
                 user_side, source, revision, extra_data, callback_url, created_at, updated_at)
             values ($1, null, null, null, $2, 'CHAT', $3, '{}', null, 1, 1)",
        )
        .bind(id.to_string())
        .bind(side.map(str::to_string))
        .bind(revision.to_string())
    };
    click("s-ok", Some("seller"), "touchpoints")
        .execute(db.pool())
        .await
        .unwrap();
    click("s-anonymous", None, "v2")
        .execute(db.pool())
        .await
        .unwrap();
    assert!(
        click("s-bad-side", Some("Supply"), "v2")
            .execute(db.pool())
            .await
            .is_err()
    );
    assert!(
        click("s-bad-rev", None, "v3")
            .execute(db.pool())
            .await
            .is_err()
    );
    // Erasing a message or a broadcast takes its queue rows.
    sqlx::query("delete from messages where message_id = 'm-ok'")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from outbox where outbox_id = 'o-ok'")
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
        "the outbox row went with its message"
    );
}
crate::both_engines!(status_checks, status_columns_accept_only_known_values);

/// The session store files a session under the visitor its data names, so erasing the person
/// finds it by key; a session of nobody in particular stays.
async fn sessions_are_erased_by_their_visitor(engine: Engine) {
    use kenar_chat::db::sessions::{DbSessionStore, USER_ID_KEY};
    use tower_sessions::{SessionStore, session::Record};
    let (db, _guard) = store(engine).await;
    let sessions = DbSessionStore::new(db.clone(), kenar_chat::clock::SystemClock::shared());
    let record = |user: Option<&str>| {
        let mut data = std::collections::HashMap::new();
        data.insert(
            "visit".to_string(),
            serde_json::json!({ "csrf_token": "t" }),
        );
        if let Some(user) = user {
            data.insert(USER_ID_KEY.to_string(), serde_json::json!(user));
        }
        Record {
            id: Default::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        }
    };
    let mut named = record(None);
    sessions.create(&mut named).await.unwrap();
    // Identified later: the save files it under the user.
    named
        .data
        .insert(USER_ID_KEY.to_string(), serde_json::json!("u-1"));
    sessions.save(&named).await.unwrap();
    let mut other = record(Some("u-2"));
    sessions.create(&mut other).await.unwrap();
    let mut anonymous = record(None);
    sessions.create(&mut anonymous).await.unwrap();

    let tables: Vec<_> = kenar_chat::db::erasure::CORE_TABLES.iter().collect();
    let erased = kenar_chat::db::erasure::erase(&db, &tables, &user_id("u-1"))
        .await
        .unwrap();
    assert!(
        erased.0.contains(&("web_sessions.user_id".to_string(), 1)),
        "{erased:?}"
    );
    assert!(sessions.load(&named.id).await.unwrap().is_none());
    assert!(sessions.load(&other.id).await.unwrap().is_some());
    assert!(sessions.load(&anonymous.id).await.unwrap().is_some());
}
crate::both_engines!(sessions_by_visitor, sessions_are_erased_by_their_visitor);

/// The post page's list: a seller's broadcasts of one post, newest first, each with its counts,
/// from one query; a broadcast with no rows counts zeros, other posts and sellers are left out.
async fn a_post_lists_its_broadcasts_with_their_progress(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let first = new_broadcast(&db, &conversation_ids(4)).await;
    assert_eq!(finish_all(&db, "w", "sent").await, 4);
    let second = new_broadcast(&db, &conversation_ids(3)).await;
    let empty = new_broadcast(&db, &[]).await;
    broadcasts::create(
        &db,
        &uuid::Uuid::new_v4().to_string(),
        "another seller",
        &post_token("P1"),
        &user_id("other"),
        "{}",
        &conversation_ids(2),
        now_ms(),
    )
    .await
    .unwrap();
    sqlx::query("update broadcasts set created_at = created_at + 1 where broadcast_id = $1")
        .bind(&second)
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("update broadcasts set created_at = created_at + 2 where broadcast_id = $1")
        .bind(&empty)
        .execute(db.pool())
        .await
        .unwrap();
    let listed = broadcasts::list_for_post(&db, &post_token("P1"), &user_id("seller"))
        .await
        .unwrap();
    let summary: Vec<_> = listed
        .iter()
        .map(|l| (l.broadcast.broadcast_id.clone(), l.progress.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                empty.clone(),
                kenar_chat::domain::broadcast::Progress::default()
            ),
            (
                second.clone(),
                kenar_chat::domain::broadcast::Progress {
                    pending: 3,
                    ..Default::default()
                }
            ),
            (
                first.clone(),
                kenar_chat::domain::broadcast::Progress {
                    sent: 4,
                    ..Default::default()
                }
            ),
        ]
    );
    for (id, progress) in &summary {
        assert_eq!(&broadcasts::progress(&db, id).await.unwrap(), progress);
    }
}
crate::both_engines!(
    post_broadcasts,
    a_post_lists_its_broadcasts_with_their_progress
);

/// Queues a single send from `user` in `chat`; its message id.
async fn queue_single(db: &Db, user: &str, chat: &str, now: i64) -> String {
    use kenar_chat::db::messages::{MessageRow, insert_queued};
    let row = MessageRow {
        message_id: uuid::Uuid::now_v7().to_string(),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        conversation_id: conversation_id(chat),
        user_id: user_id(user),
        body: r#"{"type":"TEXT","message":"x"}"#.into(),
        status: kenar_chat::domain::status::MessageStatus::Sending,
        failure: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
    };
    insert_queued(db, &row, now).await.unwrap();
    row.message_id
}

/// The messages a claim took, in its order.
fn messages_of(claimed: &[outbox::Claimed]) -> Vec<String> {
    claimed
        .iter()
        .map(|row| match &row.source {
            outbox::Source::Message(id) => id.clone(),
            outbox::Source::Broadcast(_) => panic!("a single-send claim took a broadcast row"),
        })
        .collect()
}

/// Each claimed single send delivered.
fn sent(claimed: &[outbox::Claimed]) -> Vec<outbox::Finished> {
    claimed
        .iter()
        .zip(messages_of(claimed))
        .map(|(row, message_id)| outbox::Finished {
            outbox_id: row.outbox_id.clone(),
            message_id: Some(message_id),
            status: Outcome::Sent,
            failure: None,
        })
        .collect()
}

/// The express lane's claim of up to `limit` single sends at `t`, as worker "w".
async fn claim_singles(db: &Db, limit: i64, t: i64) -> Vec<outbox::Claimed> {
    outbox::claim_batch(db, "w", 30_000, limit, outbox::Lanes::InteractiveOnly, t)
        .await
        .unwrap()
}

/// Records each row of `batch` as sent; every lease is still held.
async fn finish_sent(db: &Db, batch: &[outbox::Claimed], t: i64) {
    assert!(outbox::finish_many(db, "w", &sent(batch), t).await.unwrap());
}

/// `person`'s backlog: one single send in each of `chats` chats of their own; the message ids.
async fn backlog(db: &Db, person: &str, chats: usize, t: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..chats {
        ids.push(queue_single(db, person, &format!("chat-{person}{i}"), t).await);
    }
    ids
}

/// The express lane's claim: people take turns (A's backlog gets one turn a round, B's one
/// message the first round's second); a chat with a row out at a worker gives nothing to
/// another claim until that row is finished; then its next rows come in the order queued.
async fn single_sends_are_claimed_in_turns_and_a_chat_in_order(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let t = now_ms();
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(queue_single(&db, "a", "chat-a", t).await);
    }
    let b = queue_single(&db, "b", "chat-b", t).await;
    let first = claim_singles(&db, 2, t).await;
    assert_eq!(messages_of(&first), [a[0].clone(), b.clone()]);
    assert!(
        claim_singles(&db, 10, t).await.is_empty(),
        "A's chat waits behind its row out at a worker"
    );
    finish_sent(&db, &first, t).await;
    assert_eq!(messages_of(&claim_singles(&db, 10, t).await), a[1..]);
    let status: Vec<String> = sqlx::query_scalar(
        "select status from messages where message_id in ($1, $2) order by message_id",
    )
    .bind(&a[0])
    .bind(&b)
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        status,
        ["sent", "sent"],
        "each message took its row's outcome"
    );
}
crate::both_engines!(
    single_send_turns,
    single_sends_are_claimed_in_turns_and_a_chat_in_order
);

/// Both people of a chat send in it: a claim cut off by its limit still takes the chat's rows
/// in the order queued. The seller's second turn (in chat C) comes before the buyer's first
/// there, so the buyer's later row waits for it instead of going first.
async fn a_chat_with_two_senders_is_claimed_in_its_order(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let t = now_ms();
    let elsewhere = queue_single(&db, "seller", "chat-x", t).await;
    let first_in_c = queue_single(&db, "seller", "chat-c", t).await;
    let second_in_c = queue_single(&db, "buyer", "chat-c", t).await;
    let first = claim_singles(&db, 2, t).await;
    assert_eq!(messages_of(&first), [elsewhere, first_in_c]);
    assert!(
        claim_singles(&db, 10, t).await.is_empty(),
        "chat C waits behind its row out at a worker"
    );
    finish_sent(&db, &first, t).await;
    assert_eq!(messages_of(&claim_singles(&db, 10, t).await), [second_in_c]);
}
crate::both_engines!(
    two_senders_in_a_chat,
    a_chat_with_two_senders_is_claimed_in_its_order
);

/// Someone with nothing waiting comes in at the round the queue has reached: one more of another
/// person's backlog, then theirs, whether that backlog's first rows are still out at a worker or
/// already sent.
async fn a_newcomer_joins_the_round_the_queue_has_reached(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let t = now_ms();
    let a = backlog(&db, "a", 6, t).await;
    let out = claim_singles(&db, 2, t).await;
    assert_eq!(messages_of(&out), a[..2]);
    // A's first two are out at a worker: B's message goes in this claim, with A's third.
    let b = queue_single(&db, "b", "chat-b", t).await;
    let next = claim_singles(&db, 2, t).await;
    assert_eq!(messages_of(&next), [a[2].clone(), b]);
    for batch in [&out, &next] {
        finish_sent(&db, batch, t).await;
    }
    // The same once they are sent: C's message goes with A's fourth and fifth, before A's sixth
    // (a batch sends its rows in the order they were queued).
    let c = queue_single(&db, "c", "chat-c", t).await;
    assert_eq!(
        messages_of(&claim_singles(&db, 3, t).await),
        [a[3].clone(), a[4].clone(), c]
    );
}
crate::both_engines!(
    newcomer_turns,
    a_newcomer_joins_the_round_the_queue_has_reached
);

/// A chat's long backlog goes 16 rows a claim, in order: the worker sends a chat's rows one after
/// another, so a longer chain would hold the whole batch's outcomes back.
async fn a_claim_takes_at_most_16_rows_of_a_chat(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let t = now_ms();
    let mut a = Vec::new();
    for _ in 0..20 {
        a.push(queue_single(&db, "a", "chat-a", t).await);
    }
    let first = claim_singles(&db, 100, t).await;
    assert_eq!(messages_of(&first), a[..16]);
    assert!(claim_singles(&db, 100, t).await.is_empty());
    finish_sent(&db, &first, t).await;
    assert_eq!(messages_of(&claim_singles(&db, 100, t).await), a[16..]);
}
crate::both_engines!(chat_rows_per_claim, a_claim_takes_at_most_16_rows_of_a_chat);

/// One row a claim (a pacer under 240 a minute): a newcomer's message goes next, not after the
/// rest of another person's backlog, whose row out at a worker counts as its turn.
async fn one_row_claims_take_turns(engine: Engine) {
    let (db, _guard) = store(engine).await;
    let t = now_ms();
    let a = backlog(&db, "a", 4, t).await;
    let first = claim_singles(&db, 1, t).await;
    assert_eq!(messages_of(&first), [a[0].clone()]);
    let b = queue_single(&db, "b", "chat-b", t).await;
    let second = claim_singles(&db, 1, t).await;
    assert_eq!(messages_of(&second), [b]);
    assert_eq!(messages_of(&claim_singles(&db, 1, t).await), [a[1].clone()]);
    for batch in [&first, &second] {
        finish_sent(&db, batch, t).await;
    }
    assert_eq!(messages_of(&claim_singles(&db, 1, t).await), [a[2].clone()]);
}
crate::both_engines!(one_row_claims, one_row_claims_take_turns);
