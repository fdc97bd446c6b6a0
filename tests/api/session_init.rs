//! The add-on's session-initialization endpoint, called as Divar calls it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn post_init(
    app: &TestApp,
    key: Option<&str>,
    version: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/divar/session-init"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("authorization", key);
    }
    if let Some(version) = version {
        request = request.header("API-Version", version);
    }
    request.send().await.unwrap()
}

fn v2_body() -> Value {
    json!({ "source": "CHAT_MESSAGE_ACTION", "post_token": POST_1, "conversation_id": conversation(1, 1),
            "user_side": "Demand", "extra_data": { "k": "v" }, "user_id": BUYER_1 })
}

async fn a_valid_v2_call_is_recorded_and_answered_with_a_url(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.sandbox.app().identification_key.clone();
    let response = post_init(&app, Some(&key), Some("2"), v2_body().to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["status"], "200");
    assert_eq!(reply["message"], "success");
    let url = reply["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/s/")));
    let stored =
        kenar_chat::db::conversations::find(&app.db, &conversation_id(&conversation(1, 1)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.buyer_id.as_deref(), Some(BUYER_1));
    // The link is one-time: the first visit binds it to a session, a replay is refused.
    let entered = app.client.get(url).send().await.unwrap();
    assert_eq!(assert_redirect(&entered), "/start");
    let replay = browser().get(url).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::GONE);
    assert!(replay.text().await.unwrap().contains("قبلاً باز شده"));
}
crate::both_engines!(
    valid_v2_call,
    a_valid_v2_call_is_recorded_and_answered_with_a_url
);

async fn bad_calls_get_401_or_400_and_never_500(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.sandbox.app().identification_key.clone();
    for wrong in [None, Some("wrong"), Some(&format!("Bearer {key}") as &str)] {
        let response = post_init(&app, wrong, Some("2"), v2_body().to_string()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&key), "the key is never echoed");
    }
    let mut long = v2_body();
    long["conversation_id"] = json!("c".repeat(65));
    let mut wrong_type = v2_body();
    wrong_type["post_token"] = json!(12);
    let cases = [
        ("bad JSON", "{oops".to_string()),
        ("not an object", "[1]".to_string()),
        ("over-long field", long.to_string()),
        ("wrong type", wrong_type.to_string()),
        ("empty", String::new()),
        ("missing fields", "{}".to_string()),
    ];
    for (name, body) in cases {
        let response = post_init(&app, Some(&key), Some("2"), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        let reply: Value = response.json().await.unwrap();
        assert!(
            reply["message"].as_str().unwrap().len() > 10,
            "{name}: a reason is given"
        );
    }
    let huge = post_init(
        &app,
        Some(&key),
        Some("2"),
        format!(r#"{{"source":"{}"}}"#, "x".repeat(100_000)),
    )
    .await;
    assert_eq!(huge.status(), StatusCode::BAD_REQUEST);
    let reply: Value = huge.json().await.unwrap();
    assert!(reply["message"].as_str().unwrap().contains("larger than"));
}
crate::both_engines!(bad_calls, bad_calls_get_401_or_400_and_never_500);

#[tokio::test]
async fn the_fallback_page_is_honest_about_an_unknown_post() {
    let app = spawn_app(Engine::Sqlite).await;
    let html = app.get_html(&format!("/?post_token={POST_1}")).await;
    assert!(html.contains("هنوز گفت‌وگویی") && !html.contains(POST_1));
    let missing = app.get("/s/not-a-link").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("پیدا نشد"));
}
