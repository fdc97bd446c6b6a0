//! The simulated Divar's OAuth server, driven as an add-on would drive Divar's.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::helpers::*;

fn conv_scope() -> String {
    format!(
        "CONVERSATION_SEND_MESSAGE.{} offline_access",
        conversation(1, 1)
    )
}

#[tokio::test]
async fn full_authorization_code_flow_with_state_and_pkce() {
    let app = spawn_app(Engine::Sqlite).await;
    let pkce = Pkce::new();
    let scope = conv_scope();

    let query = app.auth_query(&scope, "state-123", Some(&pkce));
    let page = app.get_consent(&query).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("dir=\"rtl\""));
    assert!(
        html.contains("ارسال پیام از طرف شما در این گفت‌وگو"),
        "scopes in plain Persian words"
    );
    assert!(html.contains("اجازه می‌دهم") && html.contains("اجازه نمی‌دهم"));

    let response = app.post_decision(&query, BUYER_1, "approve").await;
    let location = Url::parse(&assert_redirect(&response)).unwrap();
    assert!(location.as_str().starts_with(&app.redirect_uri()));
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "state-123");
    let code = &params["code"];

    let response = app.exchange(code, Some(&pkce.verifier)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["token_type"], "bearer");
    assert_eq!(reply["expires_in"], 3600);
    assert_eq!(reply["scope"], scope);
    assert!(
        reply["access_token"]
            .as_str()
            .unwrap()
            .starts_with("ory_at_")
    );
    assert!(
        reply["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("ory_rt_")
    );

    let sent = app
        .send_message(
            &conversation(1, 1),
            reply["access_token"].as_str().unwrap(),
            &text_message("سلام"),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
}

#[tokio::test]
async fn denying_consent_returns_state_without_code() {
    let app = spawn_app(Engine::Sqlite).await;
    let query = app.auth_query(&conv_scope(), "s-deny", None);
    let response = app.post_decision(&query, BUYER_1, "deny").await;
    let location = Url::parse(&assert_redirect(&response)).unwrap();
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params.get("state").map(String::as_str), Some("s-deny"));
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn invalid_authorization_requests_get_an_error_page_not_a_redirect() {
    let app = spawn_app(Engine::Sqlite).await;
    let good = app.auth_query(&conv_scope(), "s", None);
    let with = |key: &str, value: Option<&str>| -> Vec<(&'static str, String)> {
        good.iter()
            .filter(|(k, _)| *k != key)
            .cloned()
            .chain(value.map(|v| (leak(key), v.to_string())))
            .collect()
    };
    let cases = [
        ("wrong response_type", with("response_type", Some("token"))),
        ("unknown client", with("client_id", Some("someone-else"))),
        (
            "unregistered redirect",
            with("redirect_uri", Some("https://evil.example/cb")),
        ),
        (
            "redirect with a query",
            with("redirect_uri", Some(&format!("{}?x=1", app.redirect_uri()))),
        ),
        ("unknown scope", with("scope", Some("MAKE_COFFEE"))),
        (
            "scope without its id",
            with("scope", Some("CONVERSATION_SEND_MESSAGE")),
        ),
        (
            "general scope with an id",
            with("scope", Some("USER_PHONE.123")),
        ),
        ("missing state", with("state", None)),
        ("plain PKCE", {
            let mut q = good.clone();
            q.push(("code_challenge", "x".repeat(43)));
            q.push(("code_challenge_method", "plain".into()));
            q
        }),
    ];
    for (name, query) in cases {
        let response = app.get_consent(&query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(
            response.headers().get("location").is_none(),
            "{name}: no redirect"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains("درخواست مجوز نامعتبر است"),
            "{name}: a Persian error page"
        );
        // The approve form must refuse the same request.
        let response = app.post_decision(&query, BUYER_1, "approve").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name} (POST)");
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[tokio::test]
async fn only_a_party_of_the_conversation_can_grant_its_scope() {
    let app = spawn_app(Engine::Sqlite).await;
    let query = app.auth_query(&conv_scope(), "s", None);
    // u-omid is not in conversation (1, 1).
    let response = app.post_decision(&query, "u-omid", "approve").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_code_works_once() {
    let app = spawn_app(Engine::Sqlite).await;
    let code = app.authorize(&conv_scope(), BUYER_1, None).await;
    assert_eq!(app.exchange(&code, None).await.status(), StatusCode::OK);
    let again = app.exchange(&code, None).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
}

#[tokio::test]
async fn the_token_request_must_repeat_the_authorized_redirect_uri() {
    let app = spawn_app(Engine::Sqlite).await;
    let code = app.authorize(&conv_scope(), BUYER_1, None).await;
    let response = app
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/other"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri")
    );
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let app = spawn_app(Engine::Sqlite).await;
    let pkce = Pkce::new();
    let code = app.authorize(&conv_scope(), BUYER_1, Some(&pkce)).await;
    let wrong = app.exchange(&code, Some(&Pkce::new().verifier)).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("PKCE"));
    let missing = app.exchange(&code, None).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_client_credentials_are_refused() {
    let app = spawn_app(Engine::Sqlite).await;
    let code = app.authorize(&conv_scope(), BUYER_1, None).await;
    let redirect = app.redirect_uri();
    let response = app
        .post_form(
            "/sandbox/oauth2/token",
            &[
                ("client_id", app.sandbox.app().slug.as_str()),
                ("client_secret", "not-the-secret"),
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn refresh_rotates_both_tokens_and_the_old_pair_works_during_the_grace() {
    let app = spawn_app(Engine::Sqlite).await;
    app.control(serde_json::json!({ "rotation_grace_secs": 2 }))
        .await;
    let first = app.grant(&conv_scope(), BUYER_1).await;
    let old_refresh = first.refresh.clone().unwrap();

    let response = app.refresh(&old_refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = tokens_from(response.json().await.unwrap());
    assert_ne!(second.access, first.access);
    assert_ne!(second.refresh, first.refresh);

    // Within the grace both the old access token and the new one send.
    let conv = conversation(1, 1);
    assert_eq!(
        app.send_text(&conv, &first.access, "old").await,
        StatusCode::OK
    );
    assert_eq!(
        app.send_text(&conv, &second.access, "new").await,
        StatusCode::OK
    );

    app.sandbox
        .clock()
        .advance(std::time::Duration::from_secs(3));
    assert_eq!(
        app.send_text(&conv, &first.access, "old").await,
        StatusCode::UNAUTHORIZED,
        "the old access token stops after the grace"
    );
    assert_eq!(
        app.refresh(&old_refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.send_text(&conv, &second.access, "new").await,
        StatusCode::OK
    );

    let log = app.inspect("refreshes").await;
    assert_eq!(log["count"], 2);
    assert_eq!(log["refreshes"][0]["outcome"], "rotated");
}

#[tokio::test]
async fn without_offline_access_there_is_no_refresh_token() {
    let app = spawn_app(Engine::Sqlite).await;
    let tokens = app.grant_conversation(&conversation(1, 1), BUYER_1).await;
    assert!(tokens.refresh.is_none(), "{:?}", tokens.reply);
    assert_eq!(
        app.refresh("ory_rt_made.up").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_documented_default_grace_is_two_minutes() {
    let app = spawn_app(Engine::Sqlite).await;
    let settings: Value = app
        .get("/sandbox/_control/settings")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["rotation_grace_secs"], 120);
    assert_eq!(settings["access_token_ttl_secs"], 3600);
}
