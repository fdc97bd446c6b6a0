//! The «هنوز موجود است؟» button: a `get_dynamic_action` Divar asks the add-on about when a buyer
//! taps it, answered from the post's live state in its seller's words.

use kenar_chat::domain::availability::{
    DEFAULT_AVAILABLE, DEFAULT_REMOVED, MAX_ANSWER_CHARS, UNKNOWN,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::*;

/// The buyer taps the first button of the seller's first message, in the sandbox's chat, and
/// reads what Divar shows them.
async fn tap(app: &TestApp, conv: &str) -> String {
    let bot = app.bot_messages(conv).await;
    let message_id = bot["messages"][0]["id"].as_str().unwrap().to_string();
    let buyer = browser();
    let clicked = app.click_button(&buyer, conv, "buyer", &message_id).await;
    assert_eq!(
        assert_redirect(&clicked),
        format!("/sandbox/chats/{conv}?as=buyer")
    );
    let chat = app
        .get_as(&buyer, &format!("/sandbox/chats/{conv}?as=buyer"))
        .await;
    chat.text().await.unwrap()
}

/// The seller sends the ready-made button; the buyer's tap shows the live answer, which follows
/// the post's removal and the seller's own words.
async fn a_buyer_sees_the_live_answer(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "seller", SELLER_1).await;
    let composer = app.get_html("/compose").await;
    assert!(
        composer.contains("هنوز موجود است؟"),
        "the preset is offered"
    );
    app.send_from_composer_with(&[
        ("action", "send"),
        ("text", "اگر خواستید بپرسید"),
        ("r00_caption", "هنوز موجود است؟"),
        ("r00_icon", "HELP_OUTLINE"),
        ("r00_kind", "available"),
    ])
    .await;
    let sent = app.bot_messages(&conv).await;
    let action = &sent["messages"][0]["receiver_buttons"]["rows"][0]["buttons"][0]["action"];
    assert_eq!(
        action["get_dynamic_action"]["data"],
        json!({ "kc_ask": "available", "post_token": POST_1 })
    );

    // The seller has not connected the post: Divar would not tell us of its removal, so the
    // answer does not claim to know.
    let html = tap(&app, &conv).await;
    assert!(html.contains(UNKNOWN), "{html}");
    assert!(html.contains(&format!("https://divar.ir/v/{POST_1}")));

    // Connected with USER_POSTS_GET (the post's updates subscribed): the live answer.
    app.open_post_as_owner(POST_1, SELLER_1).await;
    let html = tap(&app, &conv).await;
    assert!(html.contains(DEFAULT_AVAILABLE), "{html}");
    assert!(html.contains(&format!("https://divar.ir/v/{POST_1}")));
    // Divar's documented body reached the add-on.
    let calls = app.inspect("outbound").await;
    let asked = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|c| c["kind"] == "dynamic_action")
        .cloned()
        .unwrap();
    assert_eq!(asked["status"], 200);
    assert_eq!(asked["body"]["touchpoint"], "CHAT");
    assert_eq!(asked["body"]["user_side"], "DEMAND");
    assert_eq!(asked["body"]["user_id"], BUYER_1);
    assert_eq!(asked["body"]["conversation_id"], conv.as_str());

    // The seller removes the post in Divar: the same button answers otherwise.
    let retire = format!("/sandbox/_control/posts/{POST_1}/retire");
    let told: Value = app
        .post_json(&retire, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(told["subscribers_told"], 1, "{told}");
    let html = tap(&app, &conv).await;
    assert!(html.contains(DEFAULT_REMOVED), "{html}");
    assert!(!html.contains(&format!("https://divar.ir/v/{POST_1}")));

    // The post's owner writes their own words; an answer too long is refused beside its field,
    // with what was typed kept.
    let page = app.get_html("/post/availability").await;
    assert!(page.contains(DEFAULT_AVAILABLE) && page.contains(DEFAULT_REMOVED));
    let long = "خ".repeat(MAX_ANSWER_CHARS + 1);
    let refused = app
        .submit_form(
            "/post/availability",
            &[("available", "هست"), ("removed", long.as_str())],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::OK);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains(r#"aria-describedby="removed-error""#),
        "{html}"
    );
    assert!(html.contains(&fa(MAX_ANSWER_CHARS)));
    assert!(html.contains(&long) && html.contains(">هست</textarea>"));
    let saved = app
        .submit_form(
            "/post/availability",
            &[
                ("available", "هست، بیایید"),
                ("removed", "فروخته شد، ممنون"),
            ],
        )
        .await;
    assert_eq!(assert_redirect(&saved), "/post/availability?saved=true");
    let html = tap(&app, &conv).await;
    assert!(html.contains("فروخته شد، ممنون"), "{html}");

    // Published again: live once more, in the seller's words; both fields emptied: ours again.
    let published = json!({ "type": "POST_UPDATE", "post_update": { "type": "PUBLISH", "post": { "token": POST_1 } } });
    let key = app.sandbox.app().identification_key.clone();
    let told = post_event(&app, &key, &published).await;
    assert_eq!(told.status(), StatusCode::OK);
    assert!(tap(&app, &conv).await.contains("هست، بیایید"));
    let emptied = app
        .submit_form("/post/availability", &[("available", ""), ("removed", "")])
        .await;
    assert_eq!(assert_redirect(&emptied), "/post/availability?saved=true");
    let kept: i64 = sqlx::query("select count(*) from availability_answers")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 0, "emptied words are not kept");
    assert!(tap(&app, &conv).await.contains(DEFAULT_AVAILABLE));
}
crate::both_engines!(live_answer, a_buyer_sees_the_live_answer);

/// Divar's call, as any caller could make it: unsigned is 401, a body that is not Divar's or a
/// button that is not ours is 400, never a 5xx.
#[tokio::test]
async fn the_dynamic_action_endpoint_refuses_what_is_not_divars() {
    let app = spawn_app(Engine::Sqlite).await;
    let key = app.sandbox.app().identification_key.clone();
    let ask = async |authorization: Option<&str>, body: &str| {
        let mut request = app
            .client
            .post(app.url("/divar/dynamic-action"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap()
    };
    let good = format!(
        r#"{{"touchpoint":"CHAT","post_token":"{POST_1}","conversation_id":null,"user_side":"DEMAND","extra_data":{{"kc_ask":"available","post_token":"{POST_1}"}},"user_id":null}}"#
    );
    assert_eq!(ask(None, &good).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        ask(Some("wrong"), &good).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let answered = ask(Some(&key), &good).await;
    assert_eq!(answered.status(), StatusCode::OK);
    let reply: Value = answered.json().await.unwrap();
    assert_eq!(
        reply["text_message"], UNKNOWN,
        "no owner's grant: not claimed"
    );
    for bad in [
        "{oops",
        "[]",
        r#"{"extra_data": "x"}"#,
        r#"{"extra_data": {"kc_ask": "weather"}}"#,
        r#"{"extra_data": {"kc_ask": "available"}}"#,
        r#"{"extra_data": {"kc_ask": "available", "post_token": "far-too-long-token"}}"#,
    ] {
        let response = ask(Some(&key), bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}
