//! The simulated Divar screens, and the calls they make into an add-on.

use std::sync::{Arc, Mutex};

use axum::{Router, http::HeaderMap, routing::post};
use kenar_chat::sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::helpers::*;

#[tokio::test]
async fn the_index_lists_posts_and_chats_in_persian() {
    let app = spawn_app(Engine::Sqlite).await;
    let response = app.get("/sandbox/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<html lang="fa" dir="rtl">"#));
    assert!(html.contains("پژو ۲۰۶"));
    assert!(html.contains(&conversation(2, 4)));
    let bare = app.get("/sandbox").await;
    assert_eq!(assert_redirect(&bare), "/sandbox/");
}

#[tokio::test]
async fn each_side_sees_its_own_buttons_under_an_app_message() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    let body = json!({ "type": "TEXT", "message": "پیام برنامه",
        "sender_buttons": { "rows": [{ "buttons": [{ "action": { "open_direct_link": "https://example.com/mine" }, "icon": "SEND", "caption": "دکمهٔ فرستنده" }] }] },
        "receiver_buttons": { "rows": [{ "buttons": [{ "action": { "open_server_link": { "data": { "k": "v" } } }, "icon": "CHECKED", "caption": "دکمهٔ گیرنده" }] }] } });
    assert_eq!(
        app.send_message(&conv, &tokens.access, &body)
            .await
            .status(),
        StatusCode::OK
    );

    let buyer = app
        .get_html(&format!("/sandbox/chats/{conv}?as=buyer"))
        .await;
    assert!(
        buyer.contains("پیام برنامه") && buyer.contains("گفت‌وگو یار"),
        "the app's title above its message"
    );
    assert!(buyer.contains("دکمهٔ فرستنده") && !buyer.contains("دکمهٔ گیرنده"));
    assert!(buyer.contains(r#"href="https://example.com/mine""#));

    let seller = app
        .get_html(&format!("/sandbox/chats/{conv}?as=seller"))
        .await;
    assert!(seller.contains("دکمهٔ گیرنده") && !seller.contains("دکمهٔ فرستنده"));
    assert!(seller.contains(&format!(r#"action="/sandbox/chats/{conv}/click""#)));
}

#[tokio::test]
async fn unknown_chats_and_posts_get_a_persian_404() {
    let app = spawn_app(Engine::Sqlite).await;
    for path in ["/sandbox/chats/nope", "/sandbox/posts/nope"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response.text().await.unwrap().contains("پیدا نشد"));
    }
}

async fn opening_the_addon_from_a_chat_performs_session_init(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 2);
    let location = app.open_addon_link(&app.client, &conv, "buyer").await;

    let entered = app.client.get(&location).send().await.unwrap();
    assert_eq!(assert_redirect(&entered), "/start");
    let html = app.get_html("/start").await;
    // The person's role, in words; the conversation's id is not for them to read (the click's
    // conversation is checked in the database below).
    assert!(html.contains("خریدار") && !html.contains(&conv));

    let calls = app.inspect("outbound").await;
    let call = &calls["calls"][0];
    assert_eq!(call["kind"], "session_init");
    assert_eq!(call["status"], 200);
    assert_eq!(call["headers"]["api-version"], "2");
    assert_eq!(call["body"]["source"], "CHAT");
    assert_eq!(call["body"]["user_side"], "Demand");
    assert_eq!(call["body"]["user_id"], BUYER_2);

    let stored = kenar_chat::db::conversations::find(&app.db, &conversation_id(&conv))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.post_token.as_deref(), Some(POST_1));
    assert_eq!(stored.buyer_user_id.as_deref(), Some(BUYER_2));
}
crate::both_engines!(
    opening_the_addon_from_a_chat,
    opening_the_addon_from_a_chat_performs_session_init
);

/// Divar's pages spell the version header two ways (`API-Version`, `API_VERSION`): the sandbox
/// alternates them and the add-on reads both.
async fn both_spellings_of_the_version_header_reach_the_addon(engine: Engine) {
    let app = spawn_app(engine).await;
    for (n, conv) in [conversation(1, 1), conversation(1, 2)].iter().enumerate() {
        assert_eq!(
            app.enter_from_chat(conv, "buyer").await,
            "/start",
            "click {n}"
        );
    }
    let calls = app.inspect("outbound").await;
    let headers: Vec<_> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "session_init")
        .map(|c| c["headers"].clone())
        .collect();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0]["api-version"], "2");
    assert!(headers[0].get("api_version").is_none());
    assert_eq!(headers[1]["api_version"], "2");
    assert!(headers[1].get("api-version").is_none());
}
crate::both_engines!(
    version_header_spellings,
    both_spellings_of_the_version_header_reach_the_addon
);

async fn the_original_payload_revision_reaches_the_addon(engine: Engine) {
    let app = spawn_app(engine).await;
    app.control(json!({ "session_init_revision": "original" }))
        .await;
    let conv = conversation(1, 3);
    app.open_addon_link(&app.client, &conv, "seller").await;
    let calls = app.inspect("outbound").await;
    let body = &calls["calls"][0]["body"];
    assert!(calls["calls"][0]["headers"].get("api-version").is_none());
    assert_eq!(body["supplier"]["id"], SELLER_1);
    assert_eq!(body["peer_id"], "u-neda");
    assert!(
        body["callback_url"]
            .as_str()
            .unwrap()
            .contains(&format!("/sandbox/chats/{conv}"))
    );
    // The add-on learned both parties from the original payload.
    let stored = kenar_chat::db::conversations::find(&app.db, &conversation_id(&conv))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.seller_user_id.as_deref(), Some(SELLER_1));
    assert_eq!(stored.buyer_user_id.as_deref(), Some("u-neda"));
}
crate::both_engines!(
    original_revision,
    the_original_payload_revision_reaches_the_addon
);

#[tokio::test]
async fn a_server_link_button_sends_its_data_back_through_session_init() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    let tokens = app.grant_conversation(&conv, BUYER_1).await;
    let body = json!({ "type": "TEXT", "message": "x",
        "receiver_buttons": { "rows": [{ "buttons": [{ "action": { "open_server_link": { "data": { "page": "detail", "id": "42" } } }, "icon": "SEND", "caption": "جزئیات" }] }] } });
    assert_eq!(
        app.send_message(&conv, &tokens.access, &body)
            .await
            .status(),
        StatusCode::OK
    );
    let messages = app
        .inspect(&format!("messages?conversation_id={conv}&sender_type=BOT"))
        .await;
    let message_id = messages["messages"][0]["id"].as_str().unwrap().to_string();

    // The seller is the receiver here; the buyer has no button at (0, 0).
    let click = async |side: &str| {
        app.click_button(&app.client, &conv, side, &message_id)
            .await
    };
    assert_eq!(click("buyer").await.status(), StatusCode::NOT_FOUND);
    let response = click("seller").await;
    assert!(assert_redirect(&response).starts_with(&app.url("/s/")));
    let calls = app.inspect("outbound").await;
    let sent = &calls["calls"][0]["body"];
    assert_eq!(sent["source"], "CHAT_MESSAGE_ACTION");
    assert_eq!(sent["extra_data"], json!({ "page": "detail", "id": "42" }));
    assert_eq!(sent["user_side"], "Supply");
}

#[tokio::test]
async fn the_post_addon_entry_point_sends_post_addon() {
    let app = spawn_app(Engine::Sqlite).await;
    let page = app.get(&format!("/sandbox/posts/{POST_2}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let response = app
        .post_form(
            &format!("/sandbox/posts/{POST_2}/open-addon"),
            &[("user_id", "u-maryam")],
        )
        .await;
    assert!(assert_redirect(&response).starts_with(&app.url("/s/")));
    let calls = app.inspect("outbound").await;
    let body = &calls["calls"][0]["body"];
    assert_eq!(body["source"], "POST_ADDON");
    assert_eq!(body["post_token"], POST_2);
    assert_eq!(body["conversation_id"], Value::Null);
    assert_eq!(body["user_side"], "Supply");
}

#[tokio::test]
async fn the_block_toggle_and_settings_forms_work() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(3, 1);
    let response = app
        .post_form(
            &format!("/sandbox/chats/{conv}/block"),
            &[("as", "buyer"), ("blocked", "true")],
        )
        .await;
    assert_redirect(&response);
    let html = app
        .get_html(&format!("/sandbox/chats/{conv}?as=buyer"))
        .await;
    assert!(html.contains("مسدود است"));

    let form = [
        ("session_init_revision", "original"),
        ("access_token_ttl_secs", "5"),
        ("rate_limit_per_minute", "10"),
        ("fail_5xx_percent", "20"),
        ("fail_429_percent", "10"),
        ("slow_percent", "0"),
        ("slow_ms", "0"),
    ];
    let response = app.post_form("/sandbox/settings", &form).await;
    assert_redirect(&response);
    let knobs: Value = app
        .get("/sandbox/_control/settings")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["fail_5xx_percent"], 20);
    assert_eq!(knobs["session_init_revision"], "original");
    let mut bad = form;
    bad[1] = ("access_token_ttl_secs", "soon");
    let response = app.post_form("/sandbox/settings", &bad).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("تنظیمات نامعتبر"));
}

/// What a stand-in add-on received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

/// A sandbox alone, wired to a stand-in add-on whose session init answers 500.
async fn sandbox_with_stub_addon() -> (String, Sandbox, Received) {
    let received = Received::default();
    let stub_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_base =
        Url::parse(&format!("http://{}/", stub_listener.local_addr().unwrap())).unwrap();
    let events = received.clone();
    let stub = Router::new()
        .route(
            "/divar/session-init",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/divar/events",
            post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let events = events.clone();
                async move {
                    events.0.lock().unwrap().push((headers, body.0));
                    StatusCode::OK
                }
            }),
        );
    tokio::spawn(async move { axum::serve(stub_listener, stub).await });
    let (base, sandbox) = serve_sandbox(&stub_base).await;
    (base, sandbox, received)
}

#[tokio::test]
async fn a_bad_addon_answer_shows_a_clear_error_page() {
    let (base, _sandbox, _) = sandbox_with_stub_addon().await;
    let response = browser()
        .post(format!(
            "{base}/sandbox/chats/{}/open-addon",
            conversation(1, 1)
        ))
        .form(&[("as", "buyer")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let html = response.text().await.unwrap();
    assert!(html.contains("افزونه پاسخ درستی نداد"));
    assert!(html.contains("500"));
}

#[tokio::test]
async fn typing_in_a_chat_fires_a_signed_new_message_webhook_to_subscribers() {
    let (base, sandbox, received) = sandbox_with_stub_addon().await;
    let client = browser();
    let redirect_uri = sandbox.app().redirect_uris[0].clone();
    let query = [
        ("response_type", "code"),
        ("client_id", sandbox.app().slug.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        (
            "scope",
            &format!(
                "CHAT_POST_CONVERSATIONS_READ.{POST_1} NOTIFICATION_ACCESS_REVOCATION USER_ID"
            ),
        ),
        ("state", "s"),
        ("user_id", SELLER_1),
        ("decision", "approve"),
    ];
    let response = client
        .post(format!("{base}/sandbox/oauth2/auth"))
        .form(&query)
        .send()
        .await
        .unwrap();
    let location = Url::parse(&assert_redirect(&response)).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token: Value = client
        .post(format!("{base}/sandbox/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &sandbox.app().slug),
            ("client_secret", &sandbox.app().oauth_secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscribed = client
        .post(format!("{base}/sandbox/v1/open-platform/events/subscriptions"))
        .header("x-api-key", &sandbox.app().api_key)
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({ "event_type": "NEW_MESSAGE_ON_POST", "event_resource_id": POST_1, "metadata": { "m": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::OK);

    let conv = conversation(1, 2);
    let typed = client
        .post(format!("{base}/sandbox/chats/{conv}/messages"))
        .form(&[("as", "buyer"), ("text", "هنوز هست؟")])
        .send()
        .await
        .unwrap();
    assert_redirect(&typed);
    // A chat of another post is not subscribed.
    client
        .post(format!(
            "{base}/sandbox/chats/{}/messages",
            conversation(2, 1)
        ))
        .form(&[("as", "buyer"), ("text", "x")])
        .send()
        .await
        .unwrap();

    {
        let events = received.0.lock().unwrap();
        assert_eq!(events.len(), 1);
        let (headers, body) = &events[0];
        assert_eq!(
            headers["authorization"].to_str().unwrap(),
            sandbox.app().identification_key
        );
        assert_eq!(body["type"], "NEW_MESSAGE");
        assert_eq!(body["metadata"], json!({ "m": 1 }));
        assert_eq!(body["new_message"]["conversation"]["id"], conv);
        assert_eq!(body["new_message"]["conversation"]["post_token"], POST_1);
        assert_eq!(body["new_message"]["sender"]["side"], "BUYER");
        assert_eq!(body["new_message"]["text"], "هنوز هست؟");
    }

    // Revoking access tells the app and kills the token.
    let revoked = client
        .post(format!("{base}/sandbox/users/{SELLER_1}/revoke"))
        .send()
        .await
        .unwrap();
    assert_redirect(&revoked);
    let events = received.0.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1["type"], "USER_ACCESS_REVOCATION");
    assert_eq!(events[1].1["user_access_revocation"]["user_id"], SELLER_1);
    assert!(
        sandbox
            .world()
            .check_access_token(token["access_token"].as_str().unwrap())
            .is_err()
    );
}
