//! One person cannot use up everyone's sends (issue 24): the express lane takes single sends in
//! turns across the people who sent them, and a chat's in the order they were sent.

use std::time::Duration;

use kenar_chat::{sandbox::SandboxOptions, worker::outbox::ExecutionOutcome};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;

use crate::helpers::*;

/// How many sends person A queues before B sends one.
const BACKLOG: usize = 600;

/// An app on a manual clock, its workers running, paced at 300 sends a minute, with A (the buyer
/// of chat (1, 1)) and B (the buyer of chat (1, 2)) connected; the browsers of A and B.
async fn two_people(engine: Engine) -> (TestApp, reqwest::Client, reqwest::Client) {
    let mut app =
        spawn_app_on_manual_clock_with_workers(engine, SandboxOptions::default(), |settings| {
            settings.rate_limit_per_minute = 300;
            // The backlog is queued as fast as the test can post; the submit rate is tested below.
            settings.limits.submits_per_minute = 1_000_000;
            settings.limits.form_posts_per_minute = 1_000_000;
            settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        })
        .await;
    let (a, b) = connect_a_and_b(&mut app).await;
    (app, a, b)
}

/// Connects A (the buyer of chat (1, 1)) and B (the buyer of chat (1, 2)), each in a browser of
/// their own; the two browsers.
async fn connect_a_and_b(app: &mut TestApp) -> (reqwest::Client, reqwest::Client) {
    app.connect_conversation(&conversation(1, 1), "buyer", BUYER_1)
        .await;
    let a = app.client.clone();
    app.client = browser();
    app.connect_conversation(&conversation(1, 2), "buyer", BUYER_2)
        .await;
    let b = app.client.clone();
    (a, b)
}

/// Queues `text` from `person`'s composer; the message's id.
async fn queue(app: &mut TestApp, person: &reqwest::Client, text: &str) -> String {
    app.client = person.clone();
    let key = uuid::Uuid::new_v4().to_string();
    let answer = app
        .post_compose(&[("idempotency_key", &key), ("text", text)])
        .await;
    queued_message(&assert_redirect(&answer))
}

/// The texts Divar received in `conv`, in the order it received them.
async fn received(app: &TestApp, conv: &str) -> Vec<String> {
    app.bot_messages(conv).await["messages"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|m| m["text"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Moves the clock turn by turn until B's `text` reached Divar; how far the clock moved.
async fn time_until_delivered(app: &TestApp, text: &str) -> Duration {
    let started = app.clock.now_ms();
    let conv = conversation(1, 2);
    app.pace_until("B's message reaches Divar", async || {
        received(app, &conv).await.iter().any(|t| t == text)
    })
    .await;
    Duration::from_millis((app.clock.now_ms() - started) as u64)
}

/// A queues 600 single sends on a 300/min pacer, then B sends one: B's reaches Divar within 2 s
/// of the app's clock. A's all go, in the order A sent them, none lost or doubled. The same
/// after a restart in the middle of A's backlog.
async fn one_persons_backlog_does_not_hold_up_another(engine: Engine) {
    let (mut app, a, b) = two_people(engine).await;
    let mut texts: Vec<String> = (0..BACKLOG).map(|i| format!("پیام {i}")).collect();
    for text in &texts {
        queue(&mut app, &a, text).await;
    }
    // A's queue is full at 600 waiting (the pacer's first turn may have taken one already):
    // the next send is refused with a page that says so, and counted; nothing queued is lost.
    let hits_before = limit_hits(&app, "queued_sends").await;
    let refused = loop {
        let text = format!("پیام {}", texts.len());
        app.client = a.clone();
        let key = uuid::Uuid::new_v4().to_string();
        let answer = app
            .post_compose(&[("idempotency_key", &key), ("text", &text)])
            .await;
        if answer.status().is_redirection() {
            texts.push(text);
            assert!(texts.len() <= BACKLOG + 1, "the limit never came");
            continue;
        }
        break answer;
    };
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("۶۰۰ پیام شما هنوز در صف ارسال است") && page.contains("نگه داشته شده"),
        "{page}"
    );
    assert_eq!(queued_of(&app, BUYER_1).await, 600);
    assert!(limit_hits(&app, "queued_sends").await > hits_before);
    queue(&mut app, &b, "پیام ب").await;
    let waited = time_until_delivered(&app, "پیام ب").await;
    eprintln!("B waited {waited:?} behind A's {BACKLOG}");
    assert!(waited <= Duration::from_secs(2), "B waited {waited:?}");

    // Part of A's backlog goes, then the app restarts, and B sends again.
    let conv_a = conversation(1, 1);
    app.pace_until("100 of A's are sent", async || {
        received(&app, &conv_a).await.len() >= 100
    })
    .await;
    app.restart(|_| {}).await;
    queue(&mut app, &b, "پیام دوم ب").await;
    let waited = time_until_delivered(&app, "پیام دوم ب").await;
    eprintln!("after the restart, B waited {waited:?}");
    assert!(waited <= Duration::from_secs(2), "B waited {waited:?}");

    app.pace_until("all of A's are sent", async || {
        received(&app, &conv_a).await.len() >= texts.len()
    })
    .await;
    let got = received(&app, &conv_a).await;
    let first_out_of_place = got.iter().zip(&texts).position(|(g, t)| g != t);
    assert!(
        got.len() == texts.len() && first_out_of_place.is_none(),
        "in order, each once: {} received, first out of place at {first_out_of_place:?}: {:?}",
        got.len(),
        first_out_of_place.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())])
    );
    let duplicated: Value = app.bot_messages(&conv_a).await["duplicated_idempotency_keys"].clone();
    assert!(
        duplicated.as_array().is_none_or(Vec::is_empty),
        "{duplicated}"
    );
}
crate::both_engines!(backlog, one_persons_backlog_does_not_hold_up_another);

/// A chat's messages reach Divar in the order they were sent, even when the first must wait for
/// a retry: one claim takes all three, and each goes only after the one before it; the others
/// are given back behind it, their attempts not counted, and no claim takes them before the
/// first's retry is due.
async fn a_chats_messages_keep_their_order_through_a_retry(engine: Engine) {
    let app = spawn_app_on_manual_clock(engine, SandboxOptions::default(), |settings| {
        // Unpaced: one claim takes the whole queue.
        settings.rate_limit_per_minute = 0;
    })
    .await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let texts = ["یکم", "دوم", "سوم"];
    for text in texts {
        app.queue_from_composer(&[("text", text)]).await;
    }
    app.control(serde_json::json!({ "fail_next": [503] })).await;
    let express = app.express_worker();
    assert_eq!(
        express.try_execute_task().await.unwrap(),
        ExecutionOutcome::TaskCompleted
    );
    assert_eq!(
        app.inspect("api-calls?endpoint=send").await["count"],
        1,
        "the second and third were not tried after the first's 503"
    );
    let attempts: Vec<i64> = sqlx::query_scalar(
        "select attempts from outbox where status = 'pending' order by outbox_id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(attempts, [1, 0, 0]);
    // Due again, all three of them, but the first's retry is not: nothing is claimed.
    assert_eq!(
        express.try_execute_task().await.unwrap(),
        ExecutionOutcome::EmptyQueue
    );
    app.advance(Duration::from_secs(60));
    while express.try_execute_task().await.unwrap() == ExecutionOutcome::TaskCompleted {}
    assert_eq!(received(&app, &conv).await, texts);
    assert_eq!(app.inspect("api-calls?endpoint=send").await["count"], 4);
}
crate::both_engines!(
    chat_order,
    a_chats_messages_keep_their_order_through_a_retry
);

/// The app's count of sends refused for `limit` (a process-wide counter: other tests add to it
/// too, so a test compares before and after).
pub async fn limit_hits(app: &TestApp, limit: &str) -> f64 {
    let url = format!(
        "http://{}/metrics",
        app.metrics.expect("METRICS_ADDR is served")
    );
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let series = format!("kenar_limit_hits_total{{limit=\"{limit}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// `user`'s single sends still waiting in the queue.
async fn queued_of(app: &TestApp, user: &str) -> i64 {
    sqlx::query("select count(*) from messages where user_id = $1 and status = 'sending'")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0)
}

/// A person's submits come at most 60 a minute after a burst of 20, and their sends at most
/// `KENAR_MAX_SENDS_PER_DAY` in 24 hours: each refusal is a Persian page that says when to try
/// again, nothing is recorded, and the metric counts it; the clock moving on lets them send.
async fn a_persons_submit_rate_and_daily_sends_are_bounded(engine: Engine) {
    let mut app = spawn_app_on_manual_clock(engine, SandboxOptions::default(), |settings| {
        settings.limits.sends_per_day = 25;
        settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.connect_conversation(&conversation(1, 1), "buyer", BUYER_1)
        .await;
    let a = app.client.clone();
    let before = limit_hits(&app, "submits_per_minute").await;
    for i in 0..20 {
        queue(&mut app, &a, &format!("پشت سر هم {i}")).await;
    }
    let key = uuid::Uuid::new_v4().to_string();
    let too_fast = app
        .post_compose(&[("idempotency_key", &key), ("text", "یکی دیگر")])
        .await;
    assert_eq!(too_fast.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(too_fast.headers()["retry-after"], "1");
    let page = too_fast.text().await.unwrap();
    assert!(page.contains("۱ ثانیهٔ دیگر دوباره بفرستید"), "{page}");
    assert!(limit_hits(&app, "submits_per_minute").await > before);
    assert_eq!(queued_of(&app, BUYER_1).await, 20, "nothing recorded");

    // A minute on, the rate allows more; the 26th send of the day is refused until the first
    // of the day is 24 hours old.
    let before = limit_hits(&app, "sends_per_day").await;
    app.advance(Duration::from_secs(60));
    for i in 20..25 {
        queue(&mut app, &a, &format!("پشت سر هم {i}")).await;
    }
    app.advance(Duration::from_secs(60));
    let key = uuid::Uuid::new_v4().to_string();
    let over = app
        .post_compose(&[("idempotency_key", &key), ("text", "بیست و ششم")])
        .await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = over.text().await.unwrap();
    assert!(
        page.contains("به سقف ۲۵ پیام رسیده‌اید") && page.contains("به وقت تهران دوباره"),
        "{page}"
    );
    assert!(limit_hits(&app, "sends_per_day").await > before);
    // A day on (the webview session long over: opened again from the chat), sends go again.
    app.advance(Duration::from_secs(24 * 3600));
    app.client = a.clone();
    assert_eq!(
        app.enter_from_chat(&conversation(1, 1), "buyer").await,
        "/compose"
    );
    queue(&mut app, &a, "فردا").await;
}
crate::both_engines!(
    rate_and_day,
    a_persons_submit_rate_and_daily_sends_are_bounded
);

/// One browser session's form posts are bounded before any of their work, even those that
/// send nothing (a wrong form is rendered again each time): after a burst of 40, the next is
/// a 429 page, counted; another person's session is not held up, and a minute later the first
/// may post again.
async fn a_sessions_form_posts_are_bounded(engine: Engine) {
    let mut app = spawn_app_on_manual_clock(engine, SandboxOptions::default(), |settings| {
        settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (a, b) = connect_a_and_b(&mut app).await;
    app.client = a.clone();
    let key = app.idempotency_key().await;
    let empty = [("idempotency_key", key.as_str()), ("text", "")];
    for _ in 0..40 {
        let again = app.post_compose(&empty).await;
        assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let before = limit_hits(&app, "form_posts_per_minute").await;
    let refused = app.post_compose(&empty).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let page = refused.text().await.unwrap();
    assert!(page.contains("دوباره"), "{page}");
    assert!(limit_hits(&app, "form_posts_per_minute").await > before);

    queue(&mut app, &b, "از نشستی دیگر").await;
    app.advance(Duration::from_secs(60));
    queue(&mut app, &a, "یک دقیقه بعد").await;
}
crate::both_engines!(form_posts, a_sessions_form_posts_are_bounded);

/// A committed send wakes the worker that takes single sends, not a broadcast-only one (which
/// would take the wake-up and do nothing): with a 30 s idle tick, each of three sends still
/// reaches Divar within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_wakes_the_worker_that_takes_it() {
    let app = spawn_app_customized(Engine::Sqlite, SandboxOptions::default(), |settings| {
        settings.outbox.idle = Duration::from_secs(30);
    })
    .await;
    app.connect_conversation(&conversation(1, 1), "buyer", BUYER_1)
        .await;
    for i in 0..3 {
        let id = app
            .queue_from_composer(&[("text", &format!("بیدار {i}"))])
            .await
            .id;
        eventually_within(
            Duration::from_secs(5),
            "sent well before the idle tick",
            async || app.message_progress(&id).await["status"] == "sent",
        )
        .await;
    }
}
