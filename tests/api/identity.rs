//! Divar as documented: every session-init body, the consenting user verified through
//! `GET /v1/open-platform/users`, and the scopes asked for at consent.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::*;

/// The scope the add-on asks for when the person taps connect (`start` is `/oauth/start` or
/// `/oauth/start?for=post`).
async fn requested_scope(app: &TestApp, start: &str) -> String {
    app.start_consent(start)
        .await
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .expect("a scope")
}

#[tokio::test]
async fn consent_asks_who_consented_and_for_revocation_notices_unless_switched_off() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    app.enter_from_chat(&conv, "buyer").await;
    assert_eq!(
        requested_scope(&app, "/oauth/start").await,
        format!(
            "CONVERSATION_SEND_MESSAGE.{conv} USER_ID NOTIFICATION_ACCESS_REVOCATION offline_access"
        )
    );
    app.enter_from_post(POST_1, SELLER_1).await;
    assert_eq!(
        requested_scope(&app, "/oauth/start?for=post").await,
        format!(
            "CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1} CHAT_POST_CONVERSATIONS_READ.{POST_1} USER_POSTS_GET USER_ID NOTIFICATION_ACCESS_REVOCATION offline_access"
        )
    );

    // Each switch off leaves its scope out (USER_POSTS_GET: the post flow only).
    for (user_id, revocation_notice, post_updates, extras, post_extras) in [
        (
            false,
            true,
            true,
            " NOTIFICATION_ACCESS_REVOCATION",
            " USER_POSTS_GET",
        ),
        (true, false, true, " USER_ID", " USER_POSTS_GET"),
        (false, false, false, "", ""),
    ] {
        let app = spawn_app_customized(Engine::Sqlite, Default::default(), |s| {
            s.consent.user_id = user_id;
            s.consent.revocation_notice = revocation_notice;
            s.consent.post_updates = post_updates;
        })
        .await;
        app.enter_from_chat(&conv, "buyer").await;
        assert_eq!(
            requested_scope(&app, "/oauth/start").await,
            format!("CONVERSATION_SEND_MESSAGE.{conv}{extras} offline_access")
        );
        app.enter_from_post(POST_1, SELLER_1).await;
        assert_eq!(
            requested_scope(&app, "/oauth/start?for=post").await,
            format!(
                "CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{POST_1} CHAT_POST_CONVERSATIONS_READ.{POST_1}{post_extras}{extras} offline_access"
            )
        );
    }
}

/// The switches as an operator sets them: in the environment.
#[test]
fn the_scope_switches_are_read_from_the_environment() {
    let base = [
        ("KENAR_APP_SLUG", "my-app"),
        ("KENAR_API_KEY", "k"),
        ("KENAR_OAUTH_SECRET", "s"),
        ("DIVAR_IDENTIFICATION_KEY", "i"),
        ("APP_BASE_URL", "https://addon.example"),
        (
            "TOKEN_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
    ];
    let load = |extra: &[(&str, &str)]| {
        kenar_chat::config::Settings::from_lookup(|name| {
            base.iter()
                .chain(extra)
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    };
    let defaults = load(&[]).unwrap();
    let on = defaults.consent;
    assert!(on.user_id && on.revocation_notice && on.post_updates);
    let off = load(&[
        ("KENAR_ASK_USER_ID", "false"),
        ("KENAR_ASK_REVOCATION_NOTICE", "0"),
        ("KENAR_ASK_POST_UPDATES", "false"),
    ])
    .unwrap()
    .consent;
    assert!(!off.user_id && !off.revocation_notice && !off.post_updates);
    let wrong = load(&[("KENAR_ASK_USER_ID", "maybe")]).unwrap_err();
    assert!(wrong.to_string().contains("KENAR_ASK_USER_ID"), "{wrong}");
}

/// Sends a text as the connected visitor; returns the message id once Divar has it.
async fn send_text(app: &TestApp, text: &str) -> String {
    app.send_from_composer_with(&[
        ("action", "send"),
        ("text", text),
        ("r00_caption", "جزئیات"),
        ("r00_icon", "INFO"),
        ("r00_kind", "server"),
        ("r00_data", "slot=friday"),
    ])
    .await
}

/// The buyer's link, opened and consented as the seller (who is a party of the chat, so
/// Divar grants it): nothing is stored, nothing can be sent, and the buyer still succeeds.
async fn a_link_consented_by_another_account_stores_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 1);
    assert_eq!(app.enter_from_chat(&conv, "buyer").await, "/start");
    let answer = app.consent(SELLER_1, "approve").await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let html = answer.text().await.unwrap();
    assert!(
        html.contains("این لینک مال حساب دیگری است") && html.contains("چیزی ذخیره نشد"),
        "{html}"
    );
    assert_eq!(count(&app, "grants").await, 0);
    let calls = app.inspect("api-calls").await;
    assert!(
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "/v1/open-platform/users" && c["status"] == 200),
        "the add-on asked Divar who consented"
    );
    // The browser keeps nothing of the buyer's visit: no composer, no send.
    assert_ne!(app.get("/compose").await.status(), StatusCode::OK);
    let sent = app
        .post_compose(&[
            ("idempotency_key", "5f0c9c56-6f8a-4a5e-9a53-2f1f2a1d3c11"),
            ("action", "send"),
            ("text", "از طرف دیگری"),
        ])
        .await;
    assert!(sent.status().is_client_error(), "{}", sent.status());
    assert_eq!(app.bot_messages(&conv).await["count"], 0);
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("another Divar account")),
        "the refusal is logged"
    );

    // The right person, from a fresh click, connects and sends.
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    send_text(&app, "سلام از خریدار").await;
    let row = sqlx::query("select user_id from grants")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("user_id").unwrap(), BUYER_1);
}
crate::both_engines!(impostor, a_link_consented_by_another_account_stores_nothing);

/// Divar's touch-points body names nobody: the add-on learns who it is at consent, files the
/// grant and the click under them, and the button data under `provider_data` routes a server-link
/// round trip; `completion_url` is where "back to Divar" goes.
async fn the_touchpoints_body_works_end_to_end(engine: Engine) {
    let app = spawn_app(engine).await;
    app.control(json!({ "session_init_revision": "touchpoints" }))
        .await;
    let conv = conversation(1, 1);
    assert_eq!(app.enter_from_chat(&conv, "buyer").await, "/start");
    let init = app.inspect("outbound").await["calls"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["kind"] == "session_init")
        .cloned()
        .unwrap();
    assert_eq!(init["headers"]["api-version"], "2");
    assert!(init["body"].get("user_id").is_none());
    assert_eq!(init["body"]["user_side"], "DEMAND");
    let landing = app.get_html("/start").await;
    assert!(landing.contains("ادامه با حساب دیوار"), "{landing}");
    let back = app.get("/back").await;
    assert!(
        assert_redirect(&back).ends_with(&format!("/sandbox/chats/{conv}?as=buyer")),
        "completion_url is followed"
    );

    let callback = app.consent(BUYER_1, "approve").await;
    assert_eq!(assert_redirect(&callback), "/compose");
    let message_id = send_text(&app, "فردا ساعت ۵ می‌آیم").await;
    let click: (Option<String>, Option<String>) = {
        let row = sqlx::query(
            "select s.user_id, c.buyer_user_id from session_inits s
             join conversations c on c.conversation_id = s.conversation_id
             where s.revision = 'touchpoints' order by s.created_at limit 1",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        (
            row.try_get("user_id").unwrap(),
            row.try_get("buyer_user_id").unwrap(),
        )
    };
    assert_eq!(
        click,
        (Some(BUYER_1.to_string()), None),
        "the click is filed under the verified user; the conversation's sides are not guessed"
    );

    // The seller taps the server-link button: the touch-points click carries it as provider_data.
    let (entered, html) = app.tap_first_button(&conv, "seller", 0).await;
    assert_eq!(entered, format!("/messages/{message_id}"));
    assert!(
        html.contains("فردا ساعت ۵") && html.contains("friday"),
        "{html}"
    );
}
crate::both_engines!(touchpoints, the_touchpoints_body_works_end_to_end);

/// Each documented body, as Divar's pages print them (ids made real), answered 200 with a link
/// that leads to the button's page.
async fn every_documented_body_is_answered_and_routed(engine: Engine) {
    let app = spawn_connected_buyer(engine).await;
    let conv = conversation(1, 1);
    let message_id = send_text(&app, "پیام با دکمه").await;
    let data = json!({ "kc_page": "message", "kc_message": message_id });
    let bodies: [(Option<&str>, Value); 3] = [
        // widgets/actions/open_server_link.md
        (
            Some("2"),
            json!({ "source": "CHAT_MESSAGE_ACTION", "post_token": POST_1, "conversation_id": conv,
                    "user_side": "Supply", "extra_data": data, "user_id": SELLER_1 }),
        ),
        // the original document
        (
            None,
            json!({ "extra_data": { "provider_data": data }, "callback_url": "https://divar.ir/chat",
                    "post_token": POST_1, "user_id": SELLER_1, "peer_id": BUYER_1,
                    "supplier": { "id": SELLER_1 }, "demand": { "id": BUYER_1 }, "conversation_id": conv }),
        ),
        // flow/touchpoints.md, "Server Link"
        (
            Some("2"),
            json!({ "completion_url": "https://open-platform-redirect.divar.ir/completion",
                    "post_token": POST_1, "conversation_id": conv, "user_side": "SUPPLY",
                    "source": "CHAT_MESSAGE_ACTION", "provider_data": data }),
        ),
    ];
    for (version, body) in bodies {
        let reply = app.session_init(version, &body).await;
        assert_eq!(reply.status(), StatusCode::OK, "{body}");
        let url = reply.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();
        let visitor = browser();
        let entered = visitor.get(&url).send().await.unwrap();
        assert_eq!(
            assert_redirect(&entered),
            format!("/messages/{message_id}"),
            "{body}"
        );
        let page = app
            .get_as(&visitor, &format!("/messages/{message_id}"))
            .await;
        assert_eq!(page.status(), StatusCode::OK, "{body}");
    }
    let revisions: Vec<String> = sqlx::query("select revision from session_inits")
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("revision").unwrap())
        .collect();
    for revision in ["v2", "original", "touchpoints"] {
        assert!(revisions.iter().any(|r| r == revision), "{revisions:?}");
    }
}
crate::both_engines!(
    documented_bodies,
    every_documented_body_is_answered_and_routed
);

/// With `KENAR_ASK_USER_ID` off, a click that names nobody cannot be connected: the person is
/// told so, and the operator what to switch on.
#[tokio::test]
async fn without_user_id_a_click_naming_nobody_is_not_connected() {
    let app = spawn_app_customized(Engine::Sqlite, Default::default(), |s| {
        s.consent.user_id = false;
    })
    .await;
    app.control(json!({ "session_init_revision": "touchpoints" }))
        .await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    // Refused before Divar is asked: a grant nobody could be filed under is never made.
    let answer = app.submit("/oauth/start").await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    let html = answer.text().await.unwrap();
    assert!(html.contains("اتصال از این‌جا ممکن نیست"), "{html}");
    assert!(
        !html.contains("دوباره امتحان کنید"),
        "no retry that cannot work"
    );
    assert_eq!(count(&app, "grants").await, 0);
    let tokens = app.inspect("tokens").await;
    assert_eq!(tokens["access_tokens"], json!([]), "Divar issued nothing");
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("KENAR_ASK_USER_ID"))
    );
}

/// The user withdraws access in Divar: the sandbox tells the add-on only because the token
/// holds both NOTIFICATION_ACCESS_REVOCATION and USER_ID, and the add-on erases the grant.
#[tokio::test]
async fn revoking_in_divar_reaches_the_add_on_and_erases_the_grant() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    assert_eq!(count(&app, "grants").await, 1);
    app.revoke_in_divar(BUYER_1).await;
    let outbound = app.inspect("outbound").await;
    let notice = outbound["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["body"]["type"] == "USER_ACCESS_REVOCATION")
        .expect("the add-on was told");
    assert_eq!(notice["status"], 200);
    assert_eq!(count(&app, "grants").await, 0);

    // Without USER_ID in the token, Divar sends no notice (the cost of switching it off).
    let app = spawn_app_customized(Engine::Sqlite, Default::default(), |s| {
        s.consent.user_id = false;
    })
    .await;
    app.connect_conversation(&conversation(1, 1), "buyer", BUYER_1)
        .await;
    app.revoke_in_divar(BUYER_1).await;
    let outbound = app.inspect("outbound").await;
    assert!(
        outbound["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["body"]["type"] != "USER_ACCESS_REVOCATION")
    );
}

/// A seller opening the add-on from their post with the touch-points body (no `user_id`) sees
/// the connect step, and after consent the post grant is theirs.
#[tokio::test]
async fn a_seller_named_by_no_click_connects_a_post_as_the_verified_user() {
    let app = spawn_app(Engine::Sqlite).await;
    app.control(json!({ "session_init_revision": "touchpoints" }))
        .await;
    assert_eq!(app.enter_from_post(POST_1, SELLER_1).await, "/post");
    let page = app.get_html("/post").await;
    assert!(page.contains("ادامه با حساب دیوار"), "{page}");
    let callback = app
        .consent_from("/oauth/start?for=post", SELLER_1, "approve")
        .await;
    assert_eq!(assert_redirect(&callback), "/post");
    let row = sqlx::query("select user_id, subject_kind from grants")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("user_id").unwrap(), SELLER_1);
    assert_eq!(row.try_get::<String, _>("subject_kind").unwrap(), "post");
    let page = app.get_html("/post").await;
    assert!(!page.contains("ادامه با حساب دیوار"), "connected now");
}
