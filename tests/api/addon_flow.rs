//! The conversation add-on end to end, driven like Divar and a person would drive it.

use std::time::Duration;

use kenar_chat::sandbox::SandboxOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use url::Url;

use crate::helpers::*;

async fn the_whole_flow_delivers_a_message_with_both_grids(engine: Engine) {
    let app = spawn_connected_buyer(engine).await;
    let conv = conversation(1, 1);

    let compose = app.get("/compose").await;
    assert_eq!(compose.status(), StatusCode::OK);
    assert_eq!(compose.headers()["cache-control"], "no-store, max-age=0");
    assert!(
        compose.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let Queued { key, location, id } = app
        .queue_from_composer(&[
            ("action", "send"),
            ("text", "سلام، فردا ساعت ۵ برای بازدید می‌آیم."),
            ("s00_caption", "مسیر"),
            ("s00_icon", "SEND"),
            ("s00_kind", "link"),
            ("s00_link", "https://example.com/route"),
            ("r00_caption", "تأیید بازدید"),
            ("r00_icon", "CHECKED"),
            ("r00_kind", "server"),
            ("r00_data", "visit=friday"),
        ])
        .await;
    assert_eq!(app.final_status(&id).await["status"], "sent");

    let seen = app.bot_messages(&conv).await;
    assert_eq!(seen["count"], 1);
    let message = &seen["messages"][0];
    assert_eq!(message["sender_side"], "buyer");
    assert_eq!(message["idempotency_key"], key.as_str());
    assert_eq!(
        message["sender_buttons"]["rows"][0]["buttons"][0]["caption"],
        "مسیر"
    );
    let data =
        &message["receiver_buttons"]["rows"][0]["buttons"][0]["action"]["open_server_link"]["data"];
    assert_eq!(data["visit"], "friday");

    // Each side sees its own buttons in the chat.
    let buyer = app
        .get_html(&format!("/sandbox/chats/{conv}?as=buyer"))
        .await;
    assert!(buyer.contains("مسیر") && !buyer.contains("تأیید بازدید"));
    let seller = app
        .get_html(&format!("/sandbox/chats/{conv}?as=seller"))
        .await;
    assert!(seller.contains("تأیید بازدید") && !seller.contains(">مسیر"));

    let status = app.get_html(&location).await;
    assert!(status.contains("فرستاده شد") && status.contains("فردا ساعت ۵"));
    let history = app.get_html("/history").await;
    assert!(history.contains("فرستاده شد") && history.contains("فردا ساعت ۵"));

    // The seller clicks the server-link button: session init routes them to the message page.
    let message_id = data["kc_message"].as_str().unwrap().to_string();
    let (entered, html) = app.tap_first_button(&conv, "seller", 0).await;
    assert_eq!(entered, format!("/messages/{message_id}"));
    assert!(html.contains("فردا ساعت ۵") && html.contains("friday"));
    // The page speaks to the one who tapped (the seller, not the buyer who sent it): it is
    // named after the button, shows the seller's own grid only, and leads on.
    assert!(html.contains("<h1>تأیید بازدید</h1>"), "{html}");
    assert!(html.contains("طرف مقابل این پیام را") && !html.contains("خودتان"));
    assert!(
        !html.contains(">مسیر"),
        "the buyer's own button is not the seller's"
    );
    assert!(html.contains(r#"href="/start">فرستادن پیام با دکمه"#));
}
crate::both_engines!(
    whole_flow,
    the_whole_flow_delivers_a_message_with_both_grids
);

#[tokio::test]
async fn a_connected_user_goes_straight_to_the_composer() {
    let mut app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 2);
    app.connect_conversation(&conv, "buyer", BUYER_2).await;
    assert_eq!(app.enter_from_chat(&conv, "buyer").await, "/compose");
    // The other side of the same chat, in another browser, has its own grant to make.
    app.client = browser();
    assert_eq!(app.enter_from_chat(&conv, "seller").await, "/start");
    // The seller's way to the post-wide feature is a full-size button (a 44 px tap target),
    // not a line of small text.
    let landing = app.get_html("/start").await;
    assert!(
        landing.contains(r#"<a class="btn secondary" href="/post">"#),
        "{landing}"
    );
}

#[tokio::test]
async fn denied_consent_gets_a_friendly_page_with_next_steps() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let callback = app.consent(BUYER_1, "deny").await;
    assert_eq!(callback.status(), StatusCode::OK);
    let html = callback.text().await.unwrap();
    assert!(html.contains("اجازه داده نشد"));
    assert!(html.contains(r#"action="/oauth/start""#) && html.contains(r#"href="/back""#));
    let compose = app.get("/compose").await;
    assert_eq!(assert_redirect(&compose), "/start", "no grant, no composer");
}

/// Divar's OAuth server answers a refusal with `error=access_denied` (and `state`); older docs
/// show `state` alone. Both lead to the same friendly page.
#[tokio::test]
async fn a_refusal_in_either_documented_form_gets_the_denied_page() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let authorize = app.start_consent("/oauth/start").await;
    let state = query_value(&authorize, "state");
    let decided = app.post_decision_on(&authorize, BUYER_1, "deny").await;
    let callback = Url::parse(&assert_redirect(&decided)).unwrap();
    let answer: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    assert!(
        answer.contains(&("error".into(), "access_denied".into())),
        "{answer:?}"
    );
    assert!(answer.iter().any(|(k, _)| k == "error_description"));
    assert!(answer.contains(&("state".into(), state)));
    let page = app.client.get(callback.as_str()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("اجازه داده نشد"));

    // The older form: `state` alone.
    let state = query_value(&app.start_consent("/oauth/start").await, "state");
    let page = app
        .client
        .get(app.url("/oauth/callback"))
        .query(&[("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("اجازه داده نشد"));
}

/// An app that lacks a scope in its Kenar panel (the sending one, or the revocation-notice one
/// asked for by default): Divar refuses the whole request with `invalid_scope`. The person gets a
/// Persian page; the operator an ERROR line naming the requested scopes. Nothing is stored.
#[tokio::test]
async fn a_scope_the_app_lacks_fails_clearly_for_the_person_and_the_operator() {
    let app = spawn_app(Engine::Sqlite).await;
    for (buyer, lacking) in [
        (1, "CONVERSATION_SEND_MESSAGE"),
        (2, "NOTIFICATION_ACCESS_REVOCATION"),
    ] {
        let conv = conversation(2, buyer);
        app.enter_from_chat(&conv, "buyer").await;
        app.control(json!({ "app_lacks_scopes": [lacking] })).await;
        let authorize = app.start_consent("/oauth/start").await;
        let refused = app.client.get(authorize).send().await.unwrap();
        let callback = assert_redirect(&refused);
        assert!(callback.contains("error=invalid_scope"), "{callback}");
        let page = app.client.get(&callback).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::BAD_GATEWAY);
        let html = page.text().await.unwrap();
        assert!(html.contains("اتصال ممکن نشد") && html.contains("دوباره امتحان کنید"));
        assert!(
            !html.contains("invalid_scope") && !html.contains(lacking),
            "no jargon for the person"
        );
    }
    // Said once a minute (anyone can send a browser to the callback with this error): the
    // second refusal within the minute adds no line.
    let requested = format!(
        "CONVERSATION_SEND_MESSAGE.{} USER_ID NOTIFICATION_ACCESS_REVOCATION offline_access",
        conversation(2, 1)
    );
    let told = captured_logs()
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("Kenar panel"))
        .map(|l| l.contains(&requested))
        .collect::<Vec<_>>();
    assert_eq!(
        told,
        [true],
        "the operator is told which scopes to enable, once"
    );
    assert_eq!(count(&app, "grants").await, 0);
}

/// Anyone can send their own browser to the callback with an `error` of their choosing: a flood
/// of them writes at most one line a minute, as a WARN, and never the text they chose as the
/// error's name.
#[tokio::test]
async fn a_flood_of_callback_errors_writes_one_line_a_minute() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 2), "buyer").await;
    for _ in 0..20 {
        let authorize = app.start_consent("/oauth/start").await;
        let state = query_value(&authorize, "state");
        let page = app
            .get(&format!(
                "/oauth/callback?state={state}&error=flood_of_lies&error_description=page+the+operator"
            ))
            .await;
        assert_eq!(page.status(), StatusCode::BAD_GATEWAY);
    }
    let lines: Vec<String> = captured_logs()
        .lines()
        .filter(|l| l.contains("page the operator"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("other"),
        "{lines:#?}"
    );
    assert!(!lines[0].contains("flood_of_lies"), "{lines:#?}");
}

#[tokio::test]
async fn a_tampered_state_or_a_callback_without_a_session_is_refused() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    app.start_consent("/oauth/start").await;
    let tampered = app.get("/oauth/callback?code=abc&state=forged").await;
    assert_eq!(tampered.status(), StatusCode::BAD_REQUEST);
    assert!(tampered.text().await.unwrap().contains("پاسخ نامعتبر"));
    let stranger = app
        .get_as(&browser(), "/oauth/callback?code=abc&state=x")
        .await;
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST);
    assert!(
        stranger
            .text()
            .await
            .unwrap()
            .contains("درخواست اجازه پیدا نشد")
    );
}

#[tokio::test]
async fn a_failed_token_exchange_offers_a_retry() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let state = query_value(&app.start_consent("/oauth/start").await, "state");
    // A code the sandbox never issued: the token endpoint refuses it.
    let callback = app
        .get(&format!("/oauth/callback?code=ory_ac_forged&state={state}"))
        .await;
    assert_eq!(callback.status(), StatusCode::BAD_GATEWAY);
    let html = callback.text().await.unwrap();
    assert!(html.contains("اتصال ناموفق بود") && html.contains(r#"action="/oauth/start""#));
}

#[tokio::test]
async fn expired_and_replayed_links_are_refused() {
    let app = spawn_app_on_manual_clock(Engine::Sqlite, SandboxOptions::default(), |s| {
        s.entry_link_ttl = Duration::from_millis(300);
    })
    .await;
    let link = app
        .open_addon_link(&app.client, &conversation(1, 1), "buyer")
        .await;
    app.advance(Duration::from_millis(300));
    let expired = app.client.get(&link).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(
        expired
            .text()
            .await
            .unwrap()
            .contains("وقت این لینک تمام شده")
    );
    let unknown = app
        .client
        .get(app.url(&format!("/s/{}", "A".repeat(43))))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let no_session = app.get_as(&browser(), "/compose").await;
    assert_eq!(no_session.status(), StatusCode::UNAUTHORIZED);
    assert!(
        no_session
            .text()
            .await
            .unwrap()
            .contains("دوباره از داخل گفت‌وگو")
    );
}

async fn no_issued_token_is_stored_in_plain_text(engine: Engine) {
    let app = spawn_app_with_token_ttl(engine, Duration::from_secs(2)).await;
    let conv = conversation(2, 1);
    app.connect_conversation(&conv, "buyer", "u-sara").await;
    // Past the token's lifetime, on the add-on's clock and Divar's.
    app.advance(Duration::from_millis(2100));
    let queued = app
        .queue_from_composer(&[("text", "بعد از تازه‌سازی")])
        .await;
    assert_eq!(
        app.final_status(&queued.id).await["status"],
        "sent",
        "the send refreshed the tokens"
    );

    let issued = app.inspect("tokens").await;
    let mut secrets: Vec<String> = Vec::new();
    for kind in ["access_tokens", "refresh_tokens"] {
        for token in issued[kind].as_array().unwrap() {
            secrets.push(token["token"].as_str().unwrap().to_string());
        }
    }
    assert!(
        secrets.len() >= 4,
        "the first pair and the refreshed pair: {secrets:?}"
    );
    let mut stored = String::new();
    for (table, columns) in [
        ("grants", "access_token, refresh_token, scope"),
        ("web_sessions", "data"),
        ("messages", "body"),
        ("outbox", "idempotency_key, failure"),
        ("session_inits", "extra_data"),
        ("spent_links", "link_hash"),
    ] {
        let rows = sqlx::query(&format!("select {columns} from {table}"))
            .fetch_all(app.db.pool())
            .await
            .unwrap();
        for row in rows {
            for i in 0..row.len() {
                let value: Option<String> = row.try_get(i).unwrap();
                stored.push_str(&value.unwrap_or_default());
                stored.push('\n');
            }
        }
    }
    assert!(stored.contains("kenar-chat") || !stored.is_empty());
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a token is stored in plain text"
        );
        // Not even its random halves.
        for part in secret
            .trim_start_matches("ory_at_")
            .trim_start_matches("ory_rt_")
            .split('.')
        {
            assert!(!stored.contains(part));
        }
    }
}
crate::both_engines!(tokens_sealed, no_issued_token_is_stored_in_plain_text);

async fn an_expired_token_is_refreshed_once_even_for_twenty_concurrent_sends(engine: Engine) {
    let app = spawn_app_with_token_ttl(engine, Duration::from_secs(2)).await;
    let conv = conversation(1, 3);
    app.connect_conversation(&conv, "buyer", "u-neda").await;
    // Past the token's lifetime, on the add-on's clock and Divar's.
    app.advance(Duration::from_millis(2100));

    app.send_from_composer("یک").await;
    assert_eq!(
        app.inspect("refreshes").await["count"],
        1,
        "a send after expiry refreshes once"
    );

    app.advance(Duration::from_millis(2100));
    let mut sends = tokio::task::JoinSet::new();
    let token = csrf_token_of(&app.client, &app).await;
    for i in 0..20 {
        let client = app.client.clone();
        let url = app.url("/compose");
        let token = token.clone();
        sends.spawn(async move {
            let key = uuid::Uuid::new_v4().to_string();
            let text = format!("پیام {i}");
            client
                .post(url)
                .header("x-csrf-token", token)
                .form(&[("idempotency_key", key.as_str()), ("text", text.as_str())])
                .send()
                .await
                .unwrap()
        });
    }
    while let Some(response) = sends.join_next().await {
        let id = queued_message(&assert_redirect(&response.unwrap()));
        assert_eq!(app.final_status(&id).await["status"], "sent");
    }
    let refreshes = app.inspect("refreshes").await;
    assert_eq!(
        refreshes["count"], 2,
        "twenty concurrent sends after expiry cause one refresh: {refreshes}"
    );
    assert_eq!(app.bot_messages(&conv).await["count"], 21);
}
crate::both_engines!(
    refresh_once,
    an_expired_token_is_refreshed_once_even_for_twenty_concurrent_sends
);

#[tokio::test]
async fn a_recipient_restriction_fails_at_once_with_a_clear_reason() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(3, 1);
    app.connect_conversation(&conv, "buyer", "u-sara").await;
    app.block(&conv, true).await;
    let Queued { location, id, .. } = app.queue_from_composer(&[("text", "سلام")]).await;
    let status = app.final_status(&id).await;
    assert_eq!(status["status"], "failed");
    let page = app.get_html(&location).await;
    assert!(page.contains("نمی‌تواند پیام دریافت کند"));
    assert!(
        !page.contains("/resend"),
        "a blocked chat gets no offer to send again"
    );
    let calls = app.inspect("api-calls?endpoint=send").await;
    assert_eq!(calls["count"], 1, "a 412 is not retried");
    assert_eq!(calls["calls"][0]["status"], 412);

    // Asking anyway changes nothing: still failed, still one call.
    let resent = app.submit(&format!("/messages/{id}/resend")).await;
    assert_eq!(assert_redirect(&resent), format!("/messages/{id}/status"));
    // A resend that was taken would have queued the message again before answering: the outbox
    // would hold it. Nothing is queued, so nothing more can go out.
    assert_eq!(app.outbox_queued().await, 0, "the resend queued nothing");
    assert_eq!(app.final_status(&id).await["status"], "failed");
    assert_eq!(app.inspect("api-calls?endpoint=send").await["count"], 1);
}

/// Divar answers the first sends with `statuses`: the send is retried (on a manual clock, moved
/// to each retry) until it is delivered once; Divar's log of the calls.
async fn retried_after(statuses: Value) -> Value {
    let app = spawn_app_on_manual_clock(Engine::Sqlite, SandboxOptions::default(), |_| {}).await;
    let conv = conversation(2, 2);
    app.connect_conversation(&conv, "buyer", BUYER_2).await;
    app.control(json!({ "fail_next": statuses })).await;
    let queued = app.queue_from_composer(&[("text", "دوباره")]).await;
    app.drain_outbox_with_retries().await;
    assert_eq!(app.final_status(&queued.id).await["status"], "sent");
    assert_eq!(app.bot_messages(&conv).await["count"], 1);
    app.inspect("api-calls?endpoint=send").await
}

#[tokio::test]
async fn a_429_then_success_is_retried_and_delivered_once() {
    let calls = retried_after(json!([429])).await;
    let statuses: Vec<_> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(429), json!(200)]);
}

#[tokio::test]
async fn a_5xx_then_success_is_retried_and_delivered_once() {
    let calls = retried_after(json!([503, 500])).await;
    let statuses: Vec<_> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(503), json!(500), json!(200)]);
}

#[tokio::test]
async fn persistent_unavailability_fails_after_the_attempts_with_a_resend_button() {
    let app = spawn_app_on_manual_clock(Engine::Sqlite, SandboxOptions::default(), |_| {}).await;
    let conv = conversation(2, 3);
    app.connect_conversation(&conv, "buyer", "u-neda").await;
    app.control(json!({ "fail_next": [503, 503, 503, 503] }))
        .await;
    let Queued { key, location, id } = app.queue_from_composer(&[("text", "x")]).await;
    app.drain_outbox_with_retries().await;
    assert_eq!(app.final_status(&id).await["status"], "failed");
    assert_eq!(app.inspect("api-calls?endpoint=send").await["count"], 4);
    let page = app.get_html(&location).await;
    assert!(page.contains("ارسال دوباره") && page.contains("در دسترس نبود"));

    // Divar is back: "send again" delivers it once, under the form's key.
    let resent = app.submit(&format!("/messages/{id}/resend")).await;
    assert_eq!(assert_redirect(&resent), format!("/messages/{id}/status"));
    app.drain_outbox().await;
    assert_eq!(app.final_status(&id).await["status"], "sent");
    let seen = app.bot_messages(&conv).await;
    assert_eq!(seen["count"], 1);
    assert_eq!(seen["messages"][0]["idempotency_key"], key.as_str());
}

/// Access withdrawn in Divar without the add-on being told (no revocation notice asked for, or
/// the notice lost): the first send meets a 401 and leads back to consent.
#[tokio::test]
async fn a_revoked_token_leads_back_to_consent() {
    let app = spawn_app_customized(Engine::Sqlite, SandboxOptions::default(), |s| {
        s.consent.revocation_notice = false;
    })
    .await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    app.revoke_in_divar(BUYER_1).await;
    let Queued { location, id, .. } = app.queue_from_composer(&[("text", "x")]).await;
    assert_eq!(app.final_status(&id).await["status"], "failed");
    let page = app.get_html(&location).await;
    assert!(
        page.contains("/start?reconnect=1"),
        "the page offers to reconnect"
    );
    let landing = app.get_html("/start?reconnect=1").await;
    assert!(
        landing.contains("ادامه با حساب دیوار"),
        "the grant was dropped, so consent is asked again"
    );
    let callback = app.consent(BUYER_1, "approve").await;
    assert_eq!(assert_redirect(&callback), "/compose");
    // The message that waited for consent goes out by itself, once.
    assert_eq!(app.final_status(&id).await["status"], "sent");
    assert_eq!(app.bot_messages(&conv).await["count"], 1);
}

async fn a_double_submitted_form_delivers_one_message(engine: Engine, slow_ms: u64) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 2);
    app.connect_conversation(&conv, "buyer", BUYER_2).await;
    app.control(json!({ "slow_percent": 100, "slow_ms": slow_ms }))
        .await;
    let key = app.idempotency_key().await;
    let fields = [("idempotency_key", key.as_str()), ("text", "فقط یک بار")];
    let (first, second) = tokio::join!(app.post_compose(&fields), app.post_compose(&fields));
    let mut locations = [assert_redirect(&first), assert_redirect(&second)];
    locations.sort();
    let id = queued_message(&locations[0]);
    assert_eq!(locations[0], format!("/messages/{id}/status"));
    assert_eq!(
        locations[1],
        format!("/messages/{id}/status?again=1"),
        "the second answer shows the first message"
    );
    if slow_ms > 0 {
        // Divar has not answered yet: the second answer tells the live status, not "sent".
        let again = app.get_html(&locations[1]).await;
        assert!(again.contains("در حال ارسال است"), "{again}");
        assert!(
            again.contains(r#"<noscript><meta http-equiv="refresh""#),
            "without JavaScript the page refreshes itself while sending"
        );
        assert!(!again.contains("قبلاً فرستاده شده بود"));
    }
    assert_eq!(app.final_status(&id).await["status"], "sent");
    let again = app.get_html(&locations[1]).await;
    assert!(
        again.contains("قبلاً فرستاده شده بود"),
        "said once Divar took it"
    );
    assert_eq!(app.bot_messages(&conv).await["count"], 1);
    assert_eq!(app.inspect("api-calls?endpoint=send").await["count"], 1);
}

async fn a_double_submitted_form_delivers_one_message_with_a_fast_divar(engine: Engine) {
    a_double_submitted_form_delivers_one_message(engine, 0).await;
}
crate::both_engines!(
    double_submit_fast,
    a_double_submitted_form_delivers_one_message_with_a_fast_divar
);

async fn a_double_submitted_form_delivers_one_message_with_a_slow_divar(engine: Engine) {
    a_double_submitted_form_delivers_one_message(engine, 2000).await;
}
crate::both_engines!(
    double_submit_slow,
    a_double_submitted_form_delivers_one_message_with_a_slow_divar
);

/// The phone gives up half a second after tapping send (Divar takes three): the message is
/// still delivered, once, and its status says so.
async fn a_send_whose_client_went_away_is_still_delivered_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(2, 2);
    app.connect_conversation(&conv, "buyer", BUYER_2).await;
    app.control(json!({ "slow_percent": 100, "slow_ms": 3000 }))
        .await;
    let key = app.idempotency_key().await;
    let started = std::time::Instant::now();
    let gave_up = app
        .page_post("/compose")
        .await
        .timeout(Duration::from_millis(500))
        .form(&[("idempotency_key", key.as_str()), ("text", "تلفن قطع شد")])
        .send()
        .await;
    // Usually the 303 arrives first; either way the client is gone now.
    drop(gave_up);
    let seen = eventually("the message is delivered", async || {
        let seen = app.bot_messages(&conv).await;
        (seen["count"] != 0).then_some(seen)
    })
    .await;
    assert_eq!(seen["count"], 1, "{seen}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "delivered within 10 s"
    );
    assert_eq!(seen["messages"][0]["idempotency_key"], key.as_str());
    let history = app.get_html("/history").await;
    let marker = "/messages/";
    let start = history.find(marker).expect("the message is listed") + marker.len();
    let id = &history[start..start + 36];
    assert_eq!(app.final_status(id).await["status"], "sent");
    let page = app.get_html(&format!("/messages/{id}/status")).await;
    assert!(page.contains("فرستاده شد"));
    // Another copy could only come from the outbox: once nothing is queued there, none comes.
    app.outbox_settles().await;
    assert_eq!(
        app.bot_messages(&conv).await["count"],
        1,
        "exactly one copy"
    );
}
crate::both_engines!(
    client_went_away,
    a_send_whose_client_went_away_is_still_delivered_once
);

#[tokio::test]
async fn composer_problems_are_shown_in_persian_beside_each_field() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let key = app.idempotency_key().await;
    let response = app
        .post_compose(&[
            ("idempotency_key", &key),
            ("text", ""),
            ("s00_caption", "x"),
            ("s00_icon", "REAL_STATE"),
            ("s00_kind", "link"),
            ("s00_link", "ftp://x"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    for message in [
        "متن پیام را بنویسید",
        "یکی از نمادهای فهرست",
        "این لینک درست نیست",
    ] {
        assert!(html.contains(message), "{message}");
    }
    assert!(
        html.contains(&key),
        "the same form keeps its idempotency key"
    );
    // Each problem sits under its own field, which says so to assistive technology; the first
    // one is focused; the banner counts them.
    assert!(
        html.contains("۳ مورد نیاز به اصلاح دارد"),
        "the banner counts three"
    );
    for (field, message) in [
        ("text", "متن پیام را بنویسید"),
        ("s00_icon", "یکی از نمادهای فهرست"),
        ("s00_link", "این لینک درست نیست"),
    ] {
        let opening = html
            .split(&format!(r#"id="{field}""#))
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or_default();
        assert!(
            opening.contains(r#"aria-invalid="true""#)
                && opening.contains(&format!(r#"aria-describedby="{field}-error""#)),
            "{field}: {opening}"
        );
        let note = html
            .split(&format!(r#"id="{field}-error">"#))
            .nth(1)
            .unwrap_or_default();
        assert!(
            note.split("</p>")
                .next()
                .unwrap_or_default()
                .contains(message),
            "{field}'s note is beside it"
        );
    }
    let text_tag = html.split(r#"id="text""#).nth(1).unwrap_or_default();
    assert!(
        text_tag
            .split('>')
            .next()
            .unwrap_or_default()
            .contains("autofocus"),
        "the first problem is focused"
    );
    assert_eq!(html.matches(" autofocus").count(), 1);
    assert!(
        !html.contains(
            r#"id="s00_caption" name="s00_caption" value="x" maxlength="30" aria-invalid"#
        )
    );
    assert_eq!(app.inspect("api-calls?endpoint=send").await["count"], 0);
    let preview = app
        .post_compose(&[
            ("idempotency_key", &key),
            ("action", "preview"),
            ("text", "پیش‌نمایش من"),
            ("r10_caption", "دکمه"),
            ("r10_icon", "SEND"),
            ("r10_kind", "server"),
        ])
        .await;
    let html = preview.text().await.unwrap();
    assert!(html.contains("آنچه طرف مقابل می‌بیند") && html.contains("پیش‌نمایش من"));
    assert_eq!(
        app.inspect("api-calls?endpoint=send").await["count"],
        0,
        "a preview sends nothing"
    );
}

#[tokio::test]
async fn templates_are_saved_used_and_deleted_per_user() {
    let mut app = spawn_connected_buyer(Engine::Sqlite).await;
    let key = app.idempotency_key().await;
    let saved = app
        .post_compose(&[
            ("idempotency_key", &key),
            ("action", "save_template"),
            ("template_name", "قیمت نهایی"),
            ("text", "قیمت نهایی ۴۵۰ است"),
            ("s00_caption", "تماس"),
            ("s00_icon", "CALL"),
            ("s00_kind", "link"),
            ("s00_link", "https://example.com/call"),
        ])
        .await;
    assert_eq!(assert_redirect(&saved), "/compose?notice=template_saved");
    let html = app.get_html("/compose").await;
    let marker = "/compose?template=";
    let start = html.find(marker).unwrap() + marker.len();
    let id = html[start..start + 36].to_string();
    let used = app.get_html(&format!("/compose?template={id}")).await;
    assert!(used.contains("قیمت نهایی ۴۵۰ است") && used.contains("https://example.com/call"));
    // Another user, in another browser, can neither use nor delete it.
    let owner = std::mem::replace(&mut app.client, browser());
    app.connect_conversation(&conversation(1, 1), "seller", SELLER_1)
        .await;
    assert_eq!(
        app.get(&format!("/compose?template={id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.submit(&format!("/templates/{id}/delete"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let deleted = page_post_as(&owner, &app, &format!("/templates/{id}/delete"))
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_redirect(&deleted),
        "/compose?notice=template_deleted"
    );
}

#[tokio::test]
async fn disconnect_deletes_the_tokens() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let done = app.submit("/disconnect").await;
    assert_eq!(assert_redirect(&done), "/start");
    let rows = sqlx::query("select grant_id from grants")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn back_to_divar_follows_an_allowed_callback_url_only() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let back = app.get("/back").await;
    assert_eq!(assert_redirect(&back), app.url("/sandbox/completion"));
    // Divar's completion page (the sandbox's) returns the person to the chat they came from.
    let returned = app.get("/sandbox/completion").await;
    let chat = assert_redirect(&returned);
    assert!(
        chat.ends_with(&format!("/sandbox/chats/{}?as=buyer", conversation(1, 1))),
        "{chat}"
    );
    let page = app.client.get(&chat).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains("گفت‌وگو پیدا نشد"));

    app.control(json!({ "session_init_revision": "original" }))
        .await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let back = app.get("/back").await;
    assert!(
        assert_redirect(&back).contains("/sandbox/chats/"),
        "the original revision's callback_url"
    );

    // A callback URL on another host, or on Divar's host but not over https on the default
    // port, is not followed.
    for callback in [
        "https://evil.example/phish",
        "http://divar.ir/",
        "https://divar.ir:1234/",
    ] {
        let body = json!({ "extra_data": {}, "callback_url": callback, "post_token": POST_1,
            "user_id": BUYER_1, "peer_id": SELLER_1, "supplier": { "id": SELLER_1 }, "demand": { "id": BUYER_1 },
            "conversation_id": conversation(1, 1) });
        let reply: Value = app.session_init(None, &body).await.json().await.unwrap();
        let fresh = browser();
        fresh
            .get(reply["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let back = app.get_as(&fresh, "/back").await;
        assert_eq!(
            assert_redirect(&back),
            app.url("/sandbox/completion"),
            "{callback}"
        );
    }
}

#[tokio::test]
async fn logs_never_contain_a_token_secret_or_key() {
    let app = spawn_app_with_token_ttl(Engine::Sqlite, Duration::from_secs(1)).await;
    let conv = conversation(3, 2);
    app.connect_conversation(&conv, "buyer", BUYER_2).await;
    // Past the token's lifetime: the send refreshes it.
    app.advance(Duration::from_millis(1100));
    app.send_from_composer("ثبت لاگ").await;
    // A send Divar refuses with 429 is logged and retried (later: the clock stands).
    app.control(json!({ "fail_next": [429] })).await;
    app.queue_from_composer(&[("text", "دوم")]).await;
    eventually("Divar refuses the second send", async || {
        app.inspect("api-calls?endpoint=send").await["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|call| call["status"] == 429)
    })
    .await;

    // A one-time entry link, opened once and then replayed.
    let link = app.open_addon_link(&app.client, &conv, "buyer").await;
    let entry_token = link.rsplit('/').next().unwrap().to_string();
    assert!(entry_token.len() >= 40, "{link}");
    for _ in 0..2 {
        app.client.get(&link).send().await.unwrap();
    }
    let form_token = csrf_token_of(&app.client, &app).await;
    assert!(!form_token.is_empty());

    let logs = captured_logs();
    assert!(
        logs.contains("access token refreshed"),
        "the run was logged"
    );
    assert!(logs.contains("/s/{token}"), "requests are logged by route");
    let registration = app.sandbox.app();
    let mut secrets = vec![
        entry_token,
        form_token,
        registration.api_key.clone(),
        registration.oauth_secret.clone(),
        registration.identification_key.clone(),
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            app.settings.token_keys.current().expose(),
        ),
    ];
    let issued = app.inspect("tokens").await;
    for kind in ["access_tokens", "refresh_tokens"] {
        for token in issued[kind].as_array().unwrap() {
            secrets.push(token["token"].as_str().unwrap().to_string());
        }
    }
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret was logged");
    }
}

/// A «مشاهدهٔ آگهی» button made in the composer reaches Divar as `open_post_page` with the
/// conversation's post, and opens that post when tapped.
async fn a_post_button_made_in_the_composer_opens_the_post(engine: Engine) {
    let app = spawn_connected_buyer(engine).await;
    let conv = conversation(1, 1);
    app.send_from_composer_with(&[
        ("text", "این آگهی را ببینید"),
        ("r00_caption", "مشاهدهٔ آگهی"),
        ("r00_icon", "SEND"),
        ("r00_kind", "post"),
    ])
    .await;
    let seen = app.bot_messages(&conv).await;
    let message = &seen["messages"][0];
    assert_eq!(
        message["receiver_buttons"]["rows"][0]["buttons"][0]["action"],
        json!({ "open_post_page": { "post_token": POST_1 } })
    );
    let seller = browser();
    let tapped = app
        .click_button(&seller, &conv, "seller", message["id"].as_str().unwrap())
        .await;
    let post_page = assert_redirect(&tapped);
    assert_eq!(post_page, format!("/sandbox/posts/{POST_1}"));
    let page = app.get_as(&seller, &post_page).await;
    assert_eq!(page.status(), StatusCode::OK);
}
crate::both_engines!(
    post_button,
    a_post_button_made_in_the_composer_opens_the_post
);
