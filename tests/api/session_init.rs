//! The add-on's session-initialization endpoint, called as Divar calls it.

use kenar_chat::sandbox::SandboxOptions;
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
    assert_eq!(stored.buyer_user_id.as_deref(), Some(BUYER_1));
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

/// `extra_data` nested `levels` objects deep.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!("ته"), |inner, _| json!({ "n": inner }))
}

/// Bodies nested deeper than `kenar::json::MAX_DEPTH` (32) levels, or with a key twice, get 400
/// with the reason; the deepest accepted body travels through the link, the click record and the
/// session store, and every page reads it back (a 126-deep one used to break the browser's
/// session with 500s for 15 minutes).
async fn nesting_is_bounded_and_the_deepest_accepted_body_reads_back(engine: Engine) {
    let app = spawn_app(engine).await;
    let key = app.sandbox.app().identification_key.clone();
    for levels in [126, 32] {
        let mut deep = v2_body();
        deep["extra_data"] = nested(levels);
        let refused = post_init(&app, Some(&key), Some("2"), deep.to_string()).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{levels}");
        let reply: Value = refused.json().await.unwrap();
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("nested deeper than 32 levels"),
            "{reply}"
        );
    }
    let twice =
        r#"{"source": "CHAT", "source": "POST", "post_token": "gZd7omnS", "extra_data": {}}"#;
    let refused = post_init(&app, Some(&key), Some("2"), twice.into()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let reply: Value = refused.json().await.unwrap();
    assert!(
        reply["message"].as_str().unwrap().contains("appears twice"),
        "{reply}"
    );

    // The body is level 1 and `extra_data` level 2: 31 more levels inside it is the deepest.
    let mut deepest = v2_body();
    deepest["extra_data"] = nested(31);
    let link = new_link(&app, deepest).await;
    let opened = app.client.get(&link).send().await.unwrap();
    assert!(opened.status().is_redirection(), "{}", opened.status());
    for page in ["/start", "/compose", "/history", "/start"] {
        let answer = app.get(page).await;
        assert!(
            answer.status().is_success() || answer.status().is_redirection(),
            "{page}: {}",
            answer.status()
        );
    }
    let id = sqlx::query_scalar::<_, String>("select session_init_id from session_inits")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let click = kenar_chat::db::conversations::find_session_init(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_str(&click.extra_data).unwrap();
    assert_eq!(stored, nested(31), "read back as sent");
}
crate::both_engines!(
    nesting,
    nesting_is_bounded_and_the_deepest_accepted_body_reads_back
);

#[tokio::test]
async fn the_fallback_page_is_honest_about_an_unknown_post() {
    let app = spawn_app(Engine::Sqlite).await;
    let html = app.get_html(&format!("/?post_token={POST_1}")).await;
    assert!(html.contains("هنوز گفت‌وگویی") && !html.contains(POST_1));
    let missing = app.get("/s/not-a-link").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("پیدا نشد"));
}

async fn new_link(app: &TestApp, body: Value) -> String {
    let key = app.sandbox.app().identification_key.clone();
    let response = post_init(app, Some(&key), Some("2"), body.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    reply["url"].as_str().unwrap().to_string()
}

/// Session initialization writes the conversation and nothing else: the click travels sealed
/// in the link, which names nothing of it in clear; opening the link records the click once.
async fn the_click_travels_sealed_in_its_link_and_is_recorded_when_opened(engine: Engine) {
    let app = spawn_app(engine).await;
    let mut body = v2_body();
    body["extra_data"] = json!({ "page": "secret-page-name" });
    let url = new_link(&app, body).await;
    let token = url.rsplit('/').next().unwrap();
    for clear in [
        conversation(1, 1).as_str(),
        POST_1,
        BUYER_1,
        "secret-page-name",
        "Demand",
        "buyer",
        "CHAT_MESSAGE_ACTION",
    ] {
        assert!(!token.contains(clear), "{clear} is not in the link");
    }
    assert!(token.len() > 64, "a sealed link, not a bare id: {token}");
    assert_eq!(count(&app, "conversations").await, 1);
    for table in ["session_inits", "spent_links"] {
        assert_eq!(count(&app, table).await, 0, "{table} is not written");
    }
    let entered = app.client.get(&url).send().await.unwrap();
    assert_eq!(entered.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&app, "session_inits").await, 1);
    assert_eq!(count(&app, "spent_links").await, 1);
    let click = kenar_chat::db::conversations::find_session_init(
        &app.db,
        &sqlx::query_scalar::<_, String>("select session_init_id from session_inits")
            .fetch_one(app.db.pool())
            .await
            .unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(click.user_id.as_deref(), Some(BUYER_1));
    assert_eq!(
        click.conversation_id.as_deref(),
        Some(conversation(1, 1).as_str())
    );
    assert_eq!(click.source, "CHAT_MESSAGE_ACTION");
    assert!(click.extra_data.contains("secret-page-name"));
}
crate::both_engines!(
    sealed_click,
    the_click_travels_sealed_in_its_link_and_is_recorded_when_opened
);

/// Eight browsers open the same link at once: exactly one gets in, the others get 410, and the
/// click is recorded once.
async fn a_link_opened_many_times_at_once_lets_exactly_one_in(engine: Engine) {
    let app = spawn_app(engine).await;
    let url = new_link(&app, v2_body()).await;
    let opens = (0..8).map(|_| {
        let url = url.clone();
        async move { browser().get(&url).send().await.unwrap() }
    });
    let answers = futures::future::join_all(opens).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [303, 410, 410, 410, 410, 410, 410, 410]);
    assert_eq!(count(&app, "session_inits").await, 1);
    let replay = browser().get(&url).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::GONE);
    assert!(replay.text().await.unwrap().contains("قبلاً باز شده"));
}
crate::both_engines!(
    single_use_under_races,
    a_link_opened_many_times_at_once_lets_exactly_one_in
);

/// A link that was altered, cut short, made up, or sealed under a key this server does not
/// hold, is "not found" (a Persian page, never a 500) and spends nothing: the real link still
/// opens afterwards.
async fn forged_or_altered_links_are_not_found_and_spend_nothing(engine: Engine) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use kenar_chat::{
        crypto::{KeyRing, LinkSealer, TokenKey},
        domain::entry_link::Click,
    };
    let app = spawn_app(engine).await;
    let url = new_link(&app, v2_body()).await;
    let (base, token) = url.rsplit_once('/').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
    bytes[30] ^= 0x40;
    let altered = URL_SAFE_NO_PAD.encode(&bytes);
    let init = kenar::SessionInit::parse(v2_body().to_string().as_bytes(), Some("2")).unwrap();
    let click = Click::new(&init, i64::MAX);
    let foreign = LinkSealer::new(&KeyRing::new(TokenKey::generate(), vec![]))
        .seal(&serde_json::to_vec(&click).unwrap());
    for (name, forged) in [
        ("altered", altered),
        ("cut short", token[..token.len() - 4].to_string()),
        ("made up", URL_SAFE_NO_PAD.encode([7u8; 300])),
        ("another key", foreign),
        ("not base64", format!("{}~~", &token[..100])),
        ("huge", "A".repeat(40_000)),
    ] {
        let response = browser()
            .get(format!("{base}/{forged}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{name}");
        assert!(
            response.text().await.unwrap().contains("پیدا نشد"),
            "{name}: a Persian page"
        );
    }
    assert_eq!(count(&app, "spent_links").await, 0);
    let entered = app.client.get(&url).send().await.unwrap();
    assert_eq!(
        entered.status(),
        StatusCode::SEE_OTHER,
        "the real link still opens"
    );
}
crate::both_engines!(
    forged_links,
    forged_or_altered_links_are_not_found_and_spend_nothing
);

/// Expiry is inside the seal: a late link is gone whether it was opened or not, and the spent
/// rows are purged once their links expired, without making a spent link usable again.
async fn late_links_are_gone_and_spent_rows_are_purged_after_expiry(engine: Engine) {
    let app = spawn_app_on_manual_clock(engine, SandboxOptions::default(), |s| {
        s.entry_link_ttl = std::time::Duration::from_millis(800);
    })
    .await;
    let opened = new_link(&app, v2_body()).await;
    let mut other = v2_body();
    other["conversation_id"] = json!(conversation(1, 2));
    let unopened = new_link(&app, other).await;
    assert_eq!(
        app.client.get(&opened).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(count(&app, "spent_links").await, 1);
    app.advance(std::time::Duration::from_millis(799));
    let purge = async || {
        kenar_chat::worker::purge::purge_once(&app.db, &app.settings.retention, app.clock.now_ms())
            .await
            .unwrap()
    };
    assert_eq!(purge().await.spent_links, 0, "kept until the link expires");
    app.advance(std::time::Duration::from_millis(2));
    assert_eq!(purge().await.spent_links, 1, "purged once it has expired");
    assert_eq!(count(&app, "spent_links").await, 0);
    for url in [&opened, &unopened] {
        let late = browser().get(url).send().await.unwrap();
        assert_eq!(late.status(), StatusCode::GONE);
        assert!(late.text().await.unwrap().contains("وقت این لینک تمام شده"));
    }
    assert_eq!(
        count(&app, "session_inits").await,
        1,
        "the late link recorded nothing"
    );
}
crate::both_engines!(
    expiry,
    late_links_are_gone_and_spent_rows_are_purged_after_expiry
);

/// The add-on reads the version header in both of Divar's spellings: a version it does not
/// know, sent as `API_VERSION`, is refused as it is under `API-Version`, and `2` is taken.
#[tokio::test]
async fn the_underscore_spelling_of_the_version_header_is_read() {
    let app = spawn_app(Engine::Sqlite).await;
    let send = async |name: &str, version: &str| {
        app.client
            .post(app.url("/divar/session-init"))
            .header("authorization", &app.sandbox.app().identification_key)
            .header(name, version)
            .json(&v2_body())
            .send()
            .await
            .unwrap()
    };
    for name in ["API-Version", "API_VERSION"] {
        let unknown = send(name, "3").await;
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(unknown.text().await.unwrap().contains("API-Version"));
        assert_eq!(send(name, "2").await.status(), StatusCode::OK, "{name}");
    }
}

/// An entry link is a bearer pass for its few minutes. Opened by following a link on another
/// site (`Sec-Fetch-Site: cross-site` or `same-site`), it proves nothing about the browser: even
/// for a person already connected it leads to the landing page, the composer stays shut, and a
/// consent in that browser is what binds it. Opened as Divar's app opens it, it goes straight to
/// the composer as before.
async fn a_link_followed_from_another_site_binds_nobody(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;

    for site in ["cross-site", "same-site"] {
        let stranger = browser();
        let link = app.open_addon_link(&app.client, &conv, "buyer").await;
        let opened = stranger
            .get(&link)
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap();
        assert_eq!(assert_redirect(&opened), "/start", "{site}");
        let composer = app.get_as(&stranger, "/compose").await;
        assert_eq!(composer.status(), StatusCode::UNAUTHORIZED, "{site}");
        let landing = app.get_as(&stranger, "/start").await;
        assert!(
            landing
                .text()
                .await
                .unwrap()
                .contains("ادامه با حساب دیوار"),
            "{site}: asked to connect"
        );
    }

    // The app's own opening (no header, or `none`), or a link on Divar's own web pages (by its
    // Referer), still goes straight to the composer.
    for (site, referer) in [
        (None, None),
        (Some("none"), None),
        (Some("cross-site"), Some("https://divar.ir/chat/abc")),
    ] {
        let phone = browser();
        let link = app.open_addon_link(&app.client, &conv, "buyer").await;
        let mut request = phone.get(&link);
        if let Some(value) = site {
            request = request.header("sec-fetch-site", value);
        }
        if let Some(value) = referer {
            request = request.header("referer", value);
        }
        let opened = request.send().await.unwrap();
        assert_eq!(assert_redirect(&opened), "/compose", "{site:?} {referer:?}");
    }

    // A consent in the other browser binds it to whoever consents there.
    let mut app = app;
    app.client = browser();
    let link = app.open_addon_link(&app.client, &conv, "buyer").await;
    let opened = app
        .client
        .get(&link)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(assert_redirect(&opened), "/start");
    let callback = app.consent(BUYER_1, "approve").await;
    assert_eq!(assert_redirect(&callback), "/compose");
    assert_eq!(app.get("/compose").await.status(), StatusCode::OK);
}
crate::both_engines!(
    cross_site_entry,
    a_link_followed_from_another_site_binds_nobody
);
