//! The simulated open-platform API: who may send where, and every rejection Divar gives.

use std::time::Duration;

use kenar_chat::sandbox::SandboxOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn button(icon: &str, caption: &str) -> Value {
    json!({ "action": { "open_direct_link": "https://example.com/x" }, "icon": icon, "caption": caption })
}

fn full_message() -> Value {
    json!({
        "type": "TEXT",
        "message": "بازدید شما برای شنبه ساعت ۱۰ ثبت شد.",
        "sender_buttons": { "rows": [{ "buttons": [
            button("CAR_INSPECTED", "مشاهدهٔ رزرو"),
            { "action": { "open_server_link": { "data": { "booking_id": "123" } } }, "icon": "SEND", "caption": "مدیریت" }
        ] }] },
        "receiver_buttons": { "rows": [{ "buttons": [
            { "action": { "open_server_link": { "data": { "booking_id": "123", "view": "buyer" } } }, "icon": "REAL_ESTATE", "caption": "جزئیات" }
        ] }] }
    })
}

async fn status_body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_conversation_scope_sends_as_that_party_with_both_grids() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    let response = app
        .client
        .post(app.url(&app.messages_path(&conv)))
        .header("x-api-key", app.api_key())
        .bearer_auth(&tokens.access)
        .header("Idempotency-Key", "key-1")
        .json(&full_message())
        .send()
        .await
        .unwrap();
    let (status, body) = status_body(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], 200);

    let seen = app
        .inspect(&format!("messages?conversation_id={conv}&sender_type=BOT"))
        .await;
    assert_eq!(seen["count"], 1);
    let message = &seen["messages"][0];
    assert_eq!(message["sender_side"], "buyer");
    assert_eq!(message["sender_id"], BUYER_1);
    assert_eq!(message["idempotency_key"], "key-1");
    assert_eq!(message["token_header"], "authorization");
    assert_eq!(message["sender_buttons"], full_message()["sender_buttons"]);
    assert_eq!(
        message["receiver_buttons"],
        full_message()["receiver_buttons"]
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_a_message_with_media_is_refused() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 2);
    let tokens = app.grant_conversation(&conv, SELLER_1).await;
    let send = |scheme: &'static str, body: Value| {
        app.client
            .post(app.url(&app.messages_path(&conv)))
            .header("x-api-key", app.api_key())
            .header("authorization", format!("{scheme} {}", tokens.access))
            .json(&body)
            .send()
    };
    for scheme in ["BEARER", "bearer", "Bearer"] {
        let answer = send(scheme, json!({ "type": "TEXT", "message": scheme }))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{scheme}");
    }
    let both = send("Bearer", json!({ "message": "hi", "media_token": "m-1" }))
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    let error: Value = both.json().await.unwrap();
    assert_eq!(error["code"], 3);
    assert!(error["message"].as_str().unwrap().contains("not both"));
}

#[tokio::test]
async fn bad_credentials_meet_no_fault_and_use_no_quota() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 2);
    let tokens = app.grant_conversation(&conv, SELLER_1).await;
    app.control(json!({ "rate_limit_per_minute": 2, "fail_5xx_percent": 100 }))
        .await;
    for _ in 0..5 {
        let answer = app
            .client
            .post(app.url(&app.messages_path(&conv)))
            .header("x-api-key", "not-the-key")
            .bearer_auth(&tokens.access)
            .json(&json!({ "message": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    app.control(json!({ "fail_5xx_percent": 0 })).await;
    for i in 0..2 {
        let answer = app
            .send_message(&conv, &tokens.access, &json!({ "message": format!("{i}") }))
            .await;
        assert_eq!(answer.status(), StatusCode::OK, "the quota is untouched");
    }
}

#[tokio::test]
async fn an_unknown_api_path_answers_a_json_status() {
    let app = spawn_app(Engine::Sqlite).await;
    for path in [
        "/sandbox/v1/open-platform/nothing-here",
        "/sandbox/v2/open-platform/conversations",
    ] {
        let answer = app
            .client
            .post(app.url(path))
            .header("x-api-key", app.api_key())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        let status: Value = answer.json().await.unwrap();
        assert_eq!(status["code"], 5, "{path}");
    }
}

#[tokio::test]
async fn the_original_revisions_x_access_token_header_and_icon_name_work() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 2);
    let tokens = app.grant_conversation(&conv, SELLER_1).await;
    let body = json!({ "type": "TEXT", "message": "hi", "receiver_buttons": { "rows": [{ "buttons": [
        { "action": { "open_direct_link": "https://example.com" }, "icon_name": "SEND", "caption": "go" }
    ] }] } });
    let response = app
        .client
        .post(app.url(&app.messages_path(&conv)))
        .header("x-api-key", app.api_key())
        .header("x-access-token", &tokens.access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = app
        .inspect(&format!("messages?conversation_id={conv}&sender_type=BOT"))
        .await;
    assert_eq!(seen["messages"][0]["sender_side"], "seller");
    assert_eq!(seen["messages"][0]["token_header"], "x-access-token");
}

/// The OpenAPI: a send to a conversation that does not exist creates it. The sandbox can tell
/// whose it is from the post owner's post-wide scope; a token for one conversation, or another
/// post's scope, cannot create one.
#[tokio::test]
async fn a_send_to_an_unknown_conversation_of_the_senders_post_creates_it() {
    let app = spawn_app(Engine::Sqlite).await;
    let new = "0a0b0c0d-0000-4000-8000-00000000beef";
    let single = app.grant_conversation(&conversation(1, 2), SELLER_1).await;
    let refused = app
        .send_message(new, &single.access, &text_message("x"))
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let post_wide = app
        .grant(
            &format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1}"),
            SELLER_1,
        )
        .await;
    let created = app
        .send_message(new, &post_wide.access, &text_message("سلام"))
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let seen = app
        .inspect(&format!("messages?conversation_id={new}"))
        .await;
    assert_eq!(seen["count"], 1, "{seen}");
    assert_eq!(seen["messages"][0]["sender_side"], "seller");
    let again = app
        .send_message(new, &post_wide.access, &text_message("دوباره"))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the created conversation is kept"
    );
    let screen = app.get(&format!("/sandbox/chats/{new}?as=seller")).await;
    assert_eq!(screen.status(), StatusCode::OK, "the chat screen shows it");
    assert!(screen.text().await.unwrap().contains("دوباره"));
}

#[tokio::test]
async fn a_post_scope_from_the_owner_sends_to_every_conversation_of_that_post_only() {
    let app = spawn_app(Engine::Sqlite).await;
    let tokens = app
        .grant(
            &format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1}"),
            SELLER_1,
        )
        .await;
    for buyer in 1..=3 {
        let response = app
            .send_message(
                &conversation(1, buyer),
                &tokens.access,
                &text_message("فروخته شد"),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "conversation (1, {buyer})"
        );
    }
    let other_post = app
        .send_message(&conversation(2, 1), &tokens.access, &text_message("x"))
        .await;
    assert_eq!(other_post.status(), StatusCode::FORBIDDEN);
    let seen = app.inspect("messages?sender_type=BOT").await;
    assert_eq!(seen["count"], 3);
    assert!(
        seen["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["sender_side"] == "seller")
    );
}

#[tokio::test]
async fn the_supplier_wide_scope_reaches_all_the_owners_posts_only() {
    let app = spawn_app(Engine::Sqlite).await;
    let tokens = app
        .grant("CHAT_SUPPLIER_ALL_CONVERSATIONS_MESSAGE_SEND", SELLER_1)
        .await;
    assert_eq!(
        app.send_message(&conversation(1, 3), &tokens.access, &text_message("x"))
            .await
            .status(),
        StatusCode::OK
    );
    // Post 2 belongs to someone else.
    assert_eq!(
        app.send_message(&conversation(2, 1), &tokens.access, &text_message("x"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Granted by a buyer, the same scope covers nothing.
    let buyer = app
        .grant("CHAT_SUPPLIER_ALL_CONVERSATIONS_MESSAGE_SEND", BUYER_1)
        .await;
    assert_eq!(
        app.send_message(&conversation(1, 1), &buyer.access, &text_message("x"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_post_scope_granted_by_a_buyer_is_refused() {
    let app = spawn_app(Engine::Sqlite).await;
    let tokens = app
        .grant(
            &format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1}"),
            BUYER_1,
        )
        .await;
    let (status, body) = status_body(
        app.send_message(&conversation(1, 1), &tokens.access, &text_message("x"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["code"], 7,
        "google.rpc.Status PERMISSION_DENIED: {body}"
    );
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn requests_without_the_right_key_or_token_are_unauthenticated() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    let url = app.url(&app.messages_path(&conv));

    let wrong_key = app
        .client
        .post(&url)
        .header("x-api-key", "nope")
        .bearer_auth(&tokens.access)
        .json(&text_message("x"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_body(wrong_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 16);

    let no_key = app
        .client
        .post(&url)
        .bearer_auth(&tokens.access)
        .json(&text_message("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);

    let no_token = app
        .client
        .post(&url)
        .header("x-api-key", app.api_key())
        .json(&text_message("x"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_body(no_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("missing access token")
    );

    let made_up = app
        .send_message(&conv, "ory_at_made.up", &text_message("x"))
        .await;
    assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_for_another_conversation_is_forbidden() {
    let app = spawn_app(Engine::Sqlite).await;
    let tokens = app.grant_conversation(&conversation(1, 1), SELLER_1).await;
    let (status, body) = status_body(
        app.send_message(&conversation(1, 2), &tokens.access, &text_message("x"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 7);
}

#[tokio::test]
async fn malformed_bodies_are_invalid_arguments() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    let row = json!({ "buttons": [button("SEND", "a")] });
    let cases = [
        (
            "four rows",
            json!({ "type": "TEXT", "message": "x", "sender_buttons": { "rows": [row, row, row, row] } }),
            "more than 3",
        ),
        (
            "four buttons",
            json!({ "type": "TEXT", "message": "x", "receiver_buttons": { "rows": [{ "buttons": [
            button("SEND", "a"), button("SEND", "b"), button("SEND", "c"), button("SEND", "d")] }] } }),
            "more than 3",
        ),
        (
            "unknown icon",
            json!({ "type": "TEXT", "message": "x", "sender_buttons": { "rows": [{ "buttons": [button("REAL_STATE", "a")] }] } }),
            "REAL_STATE",
        ),
        (
            "empty message",
            json!({ "type": "TEXT", "message": "" }),
            "empty",
        ),
        ("missing message", json!({ "type": "TEXT" }), "message"),
        (
            "not text",
            json!({ "type": "VIDEO", "message": "x" }),
            "VIDEO",
        ),
        (
            "two actions",
            json!({ "message": "x", "sender_buttons": { "rows": [{ "buttons": [
            { "caption": "a", "icon": "SEND", "action": { "open_direct_link": "https://a.example", "open_post_page": { "post_token": POST_1 } } }] }] } }),
            "exactly one",
        ),
    ];
    for (name, body, expected) in cases {
        let (status, reply) =
            status_body(app.send_message(&conv, &tokens.access, &body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(reply["code"], 3, "{name}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            message.len() < 2000,
            "{name}: the 822 icon names are not dumped"
        );
    }
    let not_json = app
        .client
        .post(app.url(&app.messages_path(&conv)))
        .header("x-api-key", app.api_key())
        .bearer_auth(&tokens.access)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let seen = app.inspect("messages?sender_type=BOT").await;
    assert_eq!(seen["count"], 0, "nothing invalid was delivered");
}

#[tokio::test]
async fn a_blocked_conversation_answers_412_with_code_9() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    app.block(&conv, true).await;
    let (status, body) = status_body(
        app.send_message(&conv, &tokens.access, &text_message("x"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["code"], 9);
    assert_eq!(
        body["message"],
        "message delivery failed due to recipient's restriction"
    );
    app.block(&conv, false).await;
    assert_eq!(
        app.send_text(&conv, &tokens.access, "x").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_per_minute_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(
        Engine::Sqlite,
        SandboxOptions {
            rate_limit_per_minute: 3,
            ..SandboxOptions::default()
        },
    )
    .await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    for _ in 0..3 {
        assert_eq!(
            app.send_text(&conv, &tokens.access, "x").await,
            StatusCode::OK
        );
    }
    let limited = app
        .send_message(&conv, &tokens.access, &text_message("x"))
        .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let (_, body) = status_body(limited).await;
    assert_eq!(body["code"], 8);
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    // Divar's clock flows here: it is moved from outside, as any add-on's tests can.
    let options = SandboxOptions {
        access_token_ttl: Duration::from_secs(1),
        ..SandboxOptions::default()
    };
    let app = spawn_app_with(Engine::Sqlite, options).await;
    let conv = conversation(1, 1);
    let tokens = app
        .grant(
            &format!("CONVERSATION_SEND_MESSAGE.{conv} offline_access"),
            BUYER_1,
        )
        .await;
    assert_eq!(tokens.reply["expires_in"], 1);
    assert_eq!(
        app.send_text(&conv, &tokens.access, "x").await,
        StatusCode::OK
    );
    // Past the lifetime on Divar's clock, moved from outside as any add-on's tests can.
    let clock: Value = app
        .post_json("/sandbox/_control/clock", &json!({ "advance_secs": 1 }))
        .await
        .json()
        .await
        .unwrap();
    assert!(clock["ahead_secs"].as_u64() >= Some(1), "{clock}");
    let (status, body) = status_body(
        app.send_message(&conv, &tokens.access, &text_message("x"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("expired"));
    // A refresh brings it back.
    let fresh = tokens_from(
        app.refresh(tokens.refresh.as_deref().unwrap())
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(
        app.send_text(&conv, &fresh.access, "x").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn injected_faults_answer_5xx_and_429() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    app.control(json!({ "fail_5xx_percent": 100 })).await;
    let (status, body) = status_body(
        app.send_message(&conv, &tokens.access, &text_message("x"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], 14);
    app.control(json!({ "fail_5xx_percent": 0, "fail_429_percent": 100 }))
        .await;
    assert_eq!(
        app.send_text(&conv, &tokens.access, "x").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.control(json!({ "fail_429_percent": 0, "slow_percent": 100, "slow_ms": 300 }))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(
        app.send_text(&conv, &tokens.access, "x").await,
        StatusCode::OK
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the slow fault delays the answer"
    );
    let calls = app.inspect("api-calls").await;
    let statuses: Vec<_> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 429, 200]);
    let bad = app
        .post_json(
            "/sandbox/_control/settings",
            &json!({ "fail_5xx_percent": 101 }),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn event_subscriptions_need_the_owners_read_scope() {
    let app = spawn_app(Engine::Sqlite).await;
    let subscribe = |token: String, post: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/sandbox/v1/open-platform/events/subscriptions"))
                .header("x-api-key", app.api_key())
                .bearer_auth(token)
                .json(&json!({ "event_type": "NEW_MESSAGE_ON_POST", "event_resource_id": post, "metadata": { "k": "v" } }))
                .send()
                .await
                .unwrap()
        }
    };
    let owner = app
        .grant(&format!("CHAT_POST_CONVERSATIONS_READ.{POST_1}"), SELLER_1)
        .await;
    let response = subscribe(owner.access.clone(), POST_1).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(
        subscribe(owner.access, POST_2).await.status(),
        StatusCode::FORBIDDEN
    );
    let buyer = app
        .grant(&format!("CHAT_POST_CONVERSATIONS_READ.{POST_1}"), BUYER_1)
        .await;
    assert_eq!(
        subscribe(buyer.access, POST_1).await.status(),
        StatusCode::FORBIDDEN
    );
    let subs = app.inspect("subscriptions").await;
    assert_eq!(subs["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(subs["subscriptions"][0]["event_resource_id"], POST_1);
}

#[tokio::test]
async fn post_update_subscriptions_need_user_posts_get() {
    let app = spawn_app(Engine::Sqlite).await;
    let subscribe = |token: String, body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/sandbox/v1/open-platform/events/subscriptions"))
                .header("x-api-key", app.api_key())
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let owner = app.grant("USER_POSTS_GET", SELLER_1).await;
    let other = app.grant("USER_ID", SELLER_1).await;
    for body in [
        json!({ "event_type": "POST_UPDATE", "event_resource_id": POST_1 }),
        json!({ "event_type": "POST_UPDATE" }),
    ] {
        assert_eq!(
            subscribe(owner.access.clone(), body.clone()).await,
            StatusCode::OK,
            "{body}"
        );
        assert_eq!(
            subscribe(other.access.clone(), body).await,
            StatusCode::FORBIDDEN
        );
    }
    let not_theirs = json!({ "event_type": "POST_UPDATE", "event_resource_id": POST_2 });
    assert_eq!(
        subscribe(owner.access.clone(), not_theirs).await,
        StatusCode::FORBIDDEN
    );
    let unknown = json!({ "event_type": "SOMETHING_ELSE" });
    assert_eq!(
        subscribe(owner.access, unknown).await,
        StatusCode::BAD_REQUEST
    );
}

/// `GET /v1/open-platform/users` as documented (`oauth/get_user.md`): `user_id` only with
/// `USER_ID`, `phone_number` only with `USER_PHONE`; POST (shown in the OAuth overview) too.
#[tokio::test]
async fn the_users_endpoint_tells_who_granted_a_token_by_its_scopes() {
    let app = spawn_app(Engine::Sqlite).await;
    let who = |token: String, method: reqwest::Method| {
        let request = app
            .client
            .request(method, app.url("/sandbox/v1/open-platform/users"))
            .header("x-api-key", app.api_key())
            .header("authorization", format!("BEARER {token}"));
        async move { status_body(request.send().await.unwrap()).await }
    };
    let conv = conversation(1, 1);
    let with_id = app
        .grant(
            &format!("CONVERSATION_SEND_MESSAGE.{conv} USER_ID"),
            BUYER_1,
        )
        .await;
    let (status, body) = who(with_id.access.clone(), reqwest::Method::GET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "user_id": BUYER_1 }));
    assert_eq!(
        who(with_id.access.clone(), reqwest::Method::POST).await.1,
        body
    );

    let without = app.grant_conversation(&conv, BUYER_1).await;
    assert_eq!(
        who(without.access, reqwest::Method::GET).await,
        (StatusCode::OK, json!({}))
    );

    let both = app.grant("USER_ID USER_PHONE", SELLER_1).await;
    let (_, body) = who(both.access, reqwest::Method::GET).await;
    assert_eq!(body["user_id"], SELLER_1);
    let phone = body["phone_number"].as_str().unwrap();
    assert!(phone.starts_with("0999") && phone.len() == 11, "{phone}");

    // Credentials are checked as on every endpoint.
    let wrong_key = app
        .client
        .get(app.url("/sandbox/v1/open-platform/users"))
        .header("x-api-key", "wrong")
        .bearer_auth(&with_id.access)
        .send()
        .await
        .unwrap();
    let (status, body) = status_body(wrong_key).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(16))
    );
    let no_token = app
        .client
        .get(app.url("/sandbox/v1/open-platform/users"))
        .header("x-api-key", app.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
}

/// A message sent through the API comes back to apps subscribed to its post as `NEW_MESSAGE`
/// with `sender.type: BOT`, as in Divar's own example.
#[tokio::test]
async fn messages_sent_through_the_api_are_echoed_to_subscribers_as_bot() {
    let app = spawn_app(Engine::Sqlite).await;
    let seller = app
        .grant(
            &format!(
                "CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1} CHAT_POST_CONVERSATIONS_READ.{POST_1}"
            ),
            SELLER_1,
        )
        .await;
    let subscribed = app
        .client
        .post(app.url("/sandbox/v1/open-platform/events/subscriptions"))
        .header("x-api-key", app.api_key())
        .bearer_auth(&seller.access)
        .json(&json!({ "event_type": "NEW_MESSAGE_ON_POST", "event_resource_id": POST_1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::OK);
    let conv = conversation(1, 1);
    let sent = app
        .send_message(&conv, &seller.access, &text_message("فروخته شد"))
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    let echo = eventually("Divar echoes the message", async || {
        let calls = app.inspect("outbound").await;
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["body"]["type"] == "NEW_MESSAGE")
            .map(|found| found["body"].clone())
    })
    .await;
    let message = &echo["new_message"];
    assert_eq!(message["sender"]["type"], "BOT", "{echo}");
    assert_eq!(message["sender"]["side"], "SELLER");
    assert_eq!(message["conversation"]["id"], conv.as_str());
    assert_eq!(message["conversation"]["post_token"], POST_1);
    assert_eq!(message["text"], "فروخته شد");
}

/// `kenar`'s `conversation` read against the sandbox: a party's `CHAT_CONVERSATION_READ` reads the
/// chat's text messages, oldest first, with date-time `sent_at`; a token without it cannot.
#[tokio::test]
async fn a_party_reads_the_conversation_through_the_sdk() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 2);
    let read = app
        .grant(&format!("CHAT_CONVERSATION_READ.{conv}"), BUYER_2)
        .await;
    let api = kenar::api::KenarApi::new(
        reqwest::Client::new(),
        app.settings.kenar_api_base_url.clone(),
        app.settings.api_key.clone(),
    );
    let id = kenar::ConversationId::parse(conv.clone()).unwrap();
    let chat = api
        .conversation(&secrecy::SecretString::from(read.access.clone()), &id)
        .await
        .unwrap();
    assert_eq!(chat.id, id);
    assert_eq!(chat.post_token.unwrap().as_str(), POST_1);
    // The seeded opening: the buyer asks, the seller answers.
    assert_eq!(chat.messages.len(), 2, "{:?}", chat.messages);
    assert_eq!(chat.messages[0].sender_side, Some(kenar::UserSide::Buyer));
    assert_eq!(chat.messages[1].text, "سلام، بله در خدمتم.");
    assert!(
        chat.messages[0].sent_at.contains('T'),
        "{}",
        chat.messages[0].sent_at
    );
    let send_only = app.grant_conversation(&conv, BUYER_2).await;
    let refused = api
        .conversation(&secrecy::SecretString::from(send_only.access.clone()), &id)
        .await;
    assert!(refused.unwrap_err().to_string().contains("403"));
}
