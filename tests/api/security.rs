//! Forged requests: cross-site posts and OAuth callbacks that are not the person's.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::Row;

use crate::helpers::*;

/// Every state-changing page route, read from the router itself (the core's and every
/// feature's), with a made-up id in each path parameter. `/oauth/start` is also tried with
/// `?for=post`, its post-wide form.
fn post_routes() -> Vec<String> {
    let routes = kenar_chat::features::page_routes();
    let mut posts: Vec<String> = routes
        .list()
        .iter()
        .filter(|(method, _)| !method.is_safe())
        .map(|(_, path)| {
            path.split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        "00000000-0000-4000-8000-000000000000"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert!(posts.len() >= 9, "the router's posts: {posts:?}");
    posts.push("/oauth/start?for=post".into());
    posts
}

async fn snapshot(app: &TestApp) -> [i64; 4] {
    [
        count(app, "grants").await,
        count(app, "messages").await,
        count(app, "templates").await,
        count(app, "broadcasts").await,
    ]
}

async fn a_cross_site_or_tokenless_post_changes_nothing(engine: Engine) {
    let app = spawn_connected_buyer(engine).await;
    let key = app.idempotency_key().await;
    let saved = app
        .post_compose(&[
            ("idempotency_key", &key),
            ("action", "save_template"),
            ("template_name", "قیمت"),
            ("text", "قیمت نهایی"),
        ])
        .await;
    assert_eq!(assert_redirect(&saved), "/compose?notice=template_saved");
    let token = csrf_token_of(&app.client, &app).await;
    assert_eq!(token.len(), 43, "256 bits, base64url: {token}");
    let before = snapshot(&app).await;
    assert_eq!(before, [1, 0, 1, 0]);
    let form = [
        ("idempotency_key", key.as_str()),
        ("text", "از سایت دیگر"),
        ("csrf_token", token.as_str()),
    ];

    for route in post_routes() {
        let route = route.as_str();
        // The browser says another site sent it: refused even with the right token.
        let cross_site = app
            .client
            .post(app.url(route))
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(cross_site.status(), StatusCode::FORBIDDEN, "{route}");
        assert!(
            cross_site
                .text()
                .await
                .unwrap()
                .contains("این درخواست پذیرفته نشد"),
            "{route}: a Persian page"
        );
        // Only an Origin (an older browser without Sec-Fetch-Site).
        let foreign_origin = app
            .client
            .post(app.url(route))
            .header("origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(foreign_origin.status(), StatusCode::FORBIDDEN, "{route}");
        // Our host, but another scheme or another port: not our origin.
        let ours = url::Url::parse(&app.url("/")).unwrap();
        let host = ours.host_str().unwrap();
        let port = ours.port().unwrap();
        for origin in [
            format!("ws://{host}:{port}"),
            format!("https://{host}:{port}"),
            format!("http://{host}:{}", port + 1),
        ] {
            let near = app
                .client
                .post(app.url(route))
                .header("origin", &origin)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(near.status(), StatusCode::FORBIDDEN, "{route}, {origin}");
        }
        // A sibling site is not us either.
        let same_site = app
            .client
            .post(app.url(route))
            .header("sec-fetch-site", "same-site")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(same_site.status(), StatusCode::FORBIDDEN, "{route}");
        // Same origin but without the token (or with another visit's).
        for forged in ["", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            let tokenless = app
                .client
                .post(app.url(route))
                .header("sec-fetch-site", "same-origin")
                .form(&[
                    ("idempotency_key", key.as_str()),
                    ("text", "بی‌نشان"),
                    ("csrf_token", forged),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(
                tokenless.status(),
                StatusCode::FORBIDDEN,
                "{route} «{forged}»"
            );
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing was changed");

    // Our own form, as a browser sends it (`Origin: null` under no-referrer, the token in the
    // body): accepted.
    let sent = app
        .client
        .post(app.url("/compose"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", "null")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        assert_redirect(&sent).starts_with("/messages/"),
        "the real form is taken"
    );
    assert_eq!(count(&app, "messages").await, 1);
    // The app's own origin is taken too.
    let origin = app.settings.public_origin();
    let done = app
        .client
        .post(app.url("/disconnect"))
        .header("origin", origin)
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(count(&app, "grants").await, 0, "disconnected");
}
crate::both_engines!(
    cross_site_posts,
    a_cross_site_or_tokenless_post_changes_nothing
);

/// A visit's token does not work for another visit.
#[tokio::test]
async fn a_token_belongs_to_its_visit() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let first = csrf_token_of(&app.client, &app).await;
    // The same browser opens the add-on again: a new visit, a new token.
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let second = csrf_token_of(&app.client, &app).await;
    assert_ne!(first, second);
    let stale = app
        .post_form("/disconnect", &[("csrf_token", first.as_str())])
        .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    // Another person's browser, with its own visit, cannot use this one's token either.
    let other = browser();
    let link = app
        .open_addon_link(&other, &conversation(1, 2), "buyer")
        .await;
    other.get(&link).send().await.unwrap();
    let borrowed = other
        .post(app.url("/disconnect"))
        .form(&[("csrf_token", second.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(borrowed.status(), StatusCode::FORBIDDEN);
}

/// A callback with a forged `state` is refused and leaves the real consent usable.
#[tokio::test]
async fn a_forged_callback_does_not_use_up_the_real_one() {
    let app = spawn_app(Engine::Sqlite).await;
    app.enter_from_chat(&conversation(1, 1), "buyer").await;
    let authorize = app.start_consent("/oauth/start").await;
    let forged = app.get("/oauth/callback?code=abc&state=forged").await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let callback = app.approve(&authorize, BUYER_1).await;
    assert_eq!(assert_redirect(&callback), "/compose");
}

/// Every answer, a 404 included, may not be framed, sniffed or cached; assets may be cached.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app(Engine::Sqlite).await;
    for path in ["/no-such-page", "/s/not-a-link", "/healthz", "/start"] {
        let answer = app.get(path).await;
        let headers = answer.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("no-store"),
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            !headers.contains_key("strict-transport-security"),
            "{path}: no HSTS over plain http"
        );
    }
    let css = app.get("/static/css/app.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );

    let secure = spawn_app_customized(
        Engine::Sqlite,
        kenar_chat::sandbox::SandboxOptions::default(),
        |settings| settings.app_base_url = "https://addon.kenar-chat.ir".parse().unwrap(),
    )
    .await;
    for path in ["/no-such-page", "/healthz", "/static/css/app.css"] {
        let answer = secure.get(path).await;
        assert_eq!(
            answer.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
}

/// A client that trickles its request head (one header line at a time, never finishing) is cut
/// off after the header-read timeout, not kept open for as long as it likes.
#[tokio::test]
async fn a_slow_header_connection_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_customized(
        Engine::Sqlite,
        kenar_chat::sandbox::SandboxOptions::default(),
        |settings| settings.server.header_read_timeout = Duration::from_secs(1),
    )
    .await;
    let addr = app.base.socket_addrs(|| None).unwrap()[0];
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut closed_after = None;
    for i in 0..25 {
        // One header line every 200 ms at most: between two, watch for the server closing.
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            // A 408 before closing is fine too.
            Ok(Ok(_)) | Err(_) => {}
        }
        if stream
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the server closed the trickling connection");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    // The server still serves everyone else.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// Probing one-time links from one client: the burst is allowed, then 429 with `Retry-After`
/// and a Persian page, while another client is not affected.
#[tokio::test]
async fn probing_entry_links_is_throttled_per_client() {
    let app = spawn_app_customized(
        Engine::Sqlite,
        kenar_chat::sandbox::SandboxOptions::default(),
        |settings| {
            settings.server.throttle_burst = 10;
            settings.server.throttle_per_minute = 60;
            settings.server.client_ip_header = Some("x-forwarded-for".parse().unwrap());
        },
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    let started = std::time::Instant::now();
    for i in 0..100 {
        let answer = app
            .client
            .get(app.url(&format!(
                "/s/probe-{i:03}-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )))
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        statuses.push(answer.status());
        if answer.status() == StatusCode::TOO_MANY_REQUESTS && retry_after.is_none() {
            retry_after = answer
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            assert!(answer.text().await.unwrap().contains("دوباره امتحان کنید"));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let allowed = statuses
        .iter()
        .filter(|s| **s != StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        (10..=12).contains(&allowed),
        "the burst of 10 (plus what a second refills) went through: {allowed}"
    );
    assert!(statuses[..10].iter().all(|s| *s == StatusCode::NOT_FOUND));
    assert_eq!(statuses[99], StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Another client (another address from the proxy) is not throttled.
    let other = app
        .client
        .get(app.url("/s/another-client-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.8")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    // Pages that are not throttled stay open to the throttled client.
    let home = app
        .client
        .get(app.url("/"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
}

async fn key_versions(app: &TestApp) -> Vec<i64> {
    sqlx::query("select key_version from grants order by grant_id")
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("key_version").unwrap())
        .collect()
}

/// Rotation: tokens sealed under key A keep working after a restart with `B,A` and are sealed
/// again under B as they are used; `rekey` moves the rest; with only an unrelated key the person
/// goes through consent once (no "connected" → "reconnect" loop) and then sends again.
async fn tokens_survive_a_key_rotation(engine: Engine) {
    use kenar_chat::{
        config::{KeyRing, TokenKey},
        db::grants::Subject,
    };
    let mut app = spawn_connected_buyer(engine).await;
    // A second person's grant, also under A, that nobody uses before `rekey`.
    let other = conversation(1, 2);
    store_grant(
        &app.db,
        &app.settings,
        &app.sandbox,
        Subject::Conversation(conversation_id(&other)),
        BUYER_2,
        &format!("CONVERSATION_SEND_MESSAGE.{other} offline_access"),
    )
    .await;
    let a = app.settings.token_keys.current().clone();
    assert_eq!(key_versions(&app).await, [a.version(), a.version()]);

    let b = TokenKey::generate();
    let (ring_b, ring_ba) = (b.clone(), a.clone());
    app.restart(|s| s.token_keys = KeyRing::new(ring_b, vec![ring_ba]))
        .await;
    app.send_from_composer("پس از چرخش کلید").await;
    let mut versions = key_versions(&app).await;
    versions.sort();
    let mut expected = [a.version(), b.version()];
    expected.sort();
    assert_eq!(
        versions, expected,
        "the used grant was sealed again under B"
    );

    let report = kenar_chat::startup::rekey(&app.settings).await.unwrap();
    assert_eq!((report.resealed, report.unopenable), (1, 0));
    assert_eq!(key_versions(&app).await, [b.version(), b.version()]);
    let again = kenar_chat::startup::rekey(&app.settings).await.unwrap();
    assert_eq!(
        (again.resealed, again.unopenable),
        (0, 0),
        "nothing left under A"
    );

    // Only B now: both grants still open.
    let ring_b = b.clone();
    app.restart(|s| s.token_keys = KeyRing::new(ring_b, Vec::new()))
        .await;
    app.send_from_composer("فقط با کلید ب").await;

    // An unrelated key: the grant cannot open, so it counts as none: the composer sends the
    // person to connect (no "connected" page that then fails), one consent replaces the row, and
    // sends work. The unopenable row was not deleted before that (another replica, or `rekey`
    // with the key put back, could still have used it).
    let c = TokenKey::generate();
    app.restart(|s| s.token_keys = KeyRing::new(c, Vec::new()))
        .await;
    assert_eq!(count(&app, "grants").await, 2);
    let composer = app.get("/compose").await;
    assert_eq!(assert_redirect(&composer), "/start");
    assert!(
        app.get_html("/start")
            .await
            .contains(r#"action="/oauth/start""#)
    );
    assert_eq!(
        assert_redirect(&app.consent(BUYER_1, "approve").await),
        "/compose"
    );
    app.send_from_composer("پس از یک بار اتصال").await;
    assert_eq!(
        count(&app, "grants").await,
        2,
        "the consent replaced the unusable row"
    );
}
crate::both_engines!(key_rotation, tokens_survive_a_key_rotation);

/// A grant row moved to another user (a database edit, a bug) no longer opens for anyone.
#[tokio::test]
async fn a_grant_moved_to_another_user_does_not_open() {
    use kenar_chat::{crypto::TokenCipher, db::grants::Subject, services::vault::Vault};
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    sqlx::query("update grants set user_id = 'u-mallory'")
        .execute(app.db.pool())
        .await
        .unwrap();
    let oauth = kenar::oauth::KenarOAuth::new(
        &app.settings.oauth_credentials(),
        kenar::http_client(Duration::from_secs(5), "kenar-chat-tests").unwrap(),
    )
    .unwrap();
    let vault = Vault::new(
        app.db.clone(),
        TokenCipher::new(&app.settings.token_keys),
        oauth,
        app.clock.clone(),
    );
    let opened = vault
        .access_token(
            &Subject::Conversation(conversation_id(&conv)),
            &user_id("u-mallory"),
        )
        .await;
    assert!(
        matches!(
            opened,
            Err(kenar_chat::services::vault::VaultError::Reconsent)
        ),
        "a moved row does not open"
    );
    assert_eq!(count(&app, "grants").await, 0, "and it is dropped");
}

/// Two replicas find one grant expired at once, with Divar enforcing strict refresh-token
/// rotation (no grace for the old token): exactly one refresh, the grant survives, and both
/// replicas get a token that sends.
async fn two_replicas_refresh_an_expired_grant_once(engine: Engine) {
    use kenar_chat::{crypto::TokenCipher, db::grants::Subject, services::vault::Vault};
    let app = spawn_app(engine).await;
    app.control(serde_json::json!({ "rotation_grace_secs": 0 }))
        .await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let replica = || {
        let oauth = kenar::oauth::KenarOAuth::new(
            &app.settings.oauth_credentials(),
            kenar::http_client(Duration::from_secs(5), "kenar-chat-tests").unwrap(),
        )
        .unwrap();
        Vault::new(
            app.db.clone(),
            TokenCipher::new(&app.settings.token_keys),
            oauth,
            app.clock.clone(),
        )
    };
    let subject = Subject::Conversation(conversation_id(&conv));
    let buyer = user_id(BUYER_1);
    for round in 0..5 {
        sqlx::query("update grants set access_expires_at = 0")
            .execute(app.db.pool())
            .await
            .unwrap();
        let before = app.inspect("refreshes").await["count"].as_i64().unwrap();
        let (one, two) = (replica(), replica());
        let mut tasks = tokio::task::JoinSet::new();
        for vault in [one, two] {
            for _ in 0..4 {
                let (vault, subject, buyer) = (vault.clone(), subject.clone(), buyer.clone());
                tasks.spawn(async move { vault.access_token(&subject, &buyer).await });
            }
        }
        let mut tokens = Vec::new();
        while let Some(result) = tasks.join_next().await {
            let token = result.unwrap().expect("every caller gets a token");
            tokens.push(secrecy::ExposeSecret::expose_secret(&token.secret).to_string());
        }
        tokens.sort();
        tokens.dedup();
        assert_eq!(
            tokens.len(),
            1,
            "round {round}: everyone uses the winner's token"
        );
        let after = app.inspect("refreshes").await["count"].as_i64().unwrap();
        assert_eq!(after - before, 1, "round {round}: one refresh");
        assert_eq!(
            count(&app, "grants").await,
            1,
            "round {round}: the grant is intact"
        );
        let sent = app
            .send_message(&conv, &tokens[0], &text_message("ok"))
            .await;
        assert_eq!(sent.status(), StatusCode::OK, "round {round}");
    }
}
crate::both_engines!(
    replicas_refresh_once,
    two_replicas_refresh_an_expired_grant_once
);
