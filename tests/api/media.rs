//! Photos and files in chat through the `kenar` SDK against the sandbox: an upload token, the
//! upload host with Divar's formats and limits, and a message that carries the media token.

use kenar::upload::{MediaKind, UploadError, Uploader};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use sqlx::Row;
use url::Url;

use crate::helpers::*;

/// A PNG's first bytes and `len` in all.
fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(len, 7);
    bytes
}

fn uploader(app: &TestApp) -> Uploader {
    Uploader::new(
        reqwest::Client::new(),
        Url::parse(&app.url("/sandbox")).unwrap(),
    )
}

/// An upload token, asked as the add-on would: with its API key, from its API base.
async fn token(app: &TestApp) -> SecretString {
    kenar::api::KenarApi::new(
        reqwest::Client::new(),
        app.settings.kenar_api_base_url.clone(),
        app.settings.api_key.clone(),
    )
    .upload_token()
    .await
    .unwrap()
}

async fn upload(
    app: &TestApp,
    kind: MediaKind,
    name: &str,
    bytes: Vec<u8>,
) -> Result<String, UploadError> {
    let length = bytes.len() as u64;
    uploader(app)
        .upload(&token(app).await, kind, name, bytes.into(), Some(length))
        .await
}

#[tokio::test]
async fn a_photo_and_a_file_go_as_media_messages() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 2);
    let tokens = app.grant_conversation(&conv, SELLER_1).await;
    // Without the API key there is no upload token.
    let no_key = app
        .client
        .post(app.url("/sandbox/experimental/open-platform/chat/upload"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);

    let photo = upload(&app, MediaKind::Image, "car.png", png(300_000))
        .await
        .unwrap();
    let sent = app
        .send_message(&conv, &tokens.access, &json!({ "media_token": photo }))
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    let pdf = upload(
        &app,
        MediaKind::File,
        "prices.pdf",
        b"%PDF-1.7 price list".to_vec(),
    )
    .await
    .unwrap();
    // The schema's required `message`, sent empty: the other documented form.
    let sent = app
        .send_message(
            &conv,
            &tokens.access,
            &json!({ "message": "", "media_token": pdf }),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    // The chat shows the photo and the file's name.
    let chat = app
        .get_html(&format!("/sandbox/chats/{conv}?as=buyer"))
        .await;
    assert!(
        chat.contains(&format!(r#"src="/sandbox/media/{photo}""#)),
        "{chat}"
    );
    assert!(chat.contains("prices.pdf"));
    let image = app.get(&format!("/sandbox/media/{photo}")).await;
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.bytes().await.unwrap().len(), 300_000);

    // Text and media together break Divar's "not both" rule; an unknown token is refused.
    let both = app
        .send_message(
            &conv,
            &tokens.access,
            &json!({ "type": "TEXT", "message": "x", "media_token": photo }),
        )
        .await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    let unknown = app
        .send_message(&conv, &tokens.access, &json!({ "media_token": "nope" }))
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

/// The documented formats and limits, checked by the host: a 6 MB photo, a program, a program
/// named like a photo, and an upload without a valid token are all refused; a failing host is
/// "unavailable", a retry later may work.
#[tokio::test]
async fn the_upload_host_keeps_to_divars_formats_and_limits() {
    let app = spawn_app(Engine::Sqlite).await;
    let big = upload(&app, MediaKind::Image, "big.png", png(6_000_000)).await;
    assert_eq!(big, Err(UploadError::Refused { status: 413 }));
    let exe = upload(&app, MediaKind::File, "setup.exe", b"MZ\x90\x00".to_vec()).await;
    assert_eq!(exe, Err(UploadError::Refused { status: 400 }));
    let renamed = upload(
        &app,
        MediaKind::Image,
        "photo.png",
        b"MZ\x90\x00rest".to_vec(),
    )
    .await;
    assert_eq!(renamed, Err(UploadError::Refused { status: 400 }));
    let wrong_token = uploader(&app)
        .upload(
            &SecretString::from("made-up"),
            MediaKind::Image,
            "a.png",
            png(100).into(),
            None,
        )
        .await;
    assert_eq!(wrong_token, Err(UploadError::Refused { status: 401 }));
    app.control(json!({ "uploads_fail": true })).await;
    let down = upload(&app, MediaKind::Image, "a.png", png(100)).await;
    assert!(matches!(down, Err(UploadError::Unavailable(_))), "{down:?}");
    app.control(json!({ "uploads_fail": false })).await;
    assert!(
        upload(&app, MediaKind::Image, "a.png", png(100))
            .await
            .is_ok()
    );
}

/// A stored message with a photo goes out as Divar takes it: the photo first (its own message,
/// key `<key>-media`), then the text with the buttons; a photo without text is one message that
/// carries the buttons. The status page names the file. (The composer does not attach files
/// yet: the rows are written as it will write them.)
async fn the_outbox_sends_the_media_first_then_the_text(engine: Engine) {
    use kenar_chat::{
        db::messages::{MessageRow, insert_queued},
        domain::{message::Attachment, status::MessageStatus},
    };
    let app = spawn_app_on_manual_clock(
        engine,
        kenar_chat::sandbox::SandboxOptions::default(),
        |_| {},
    )
    .await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let grid = json!({ "rows": [{ "buttons": [{ "action": { "open_direct_link": "https://example.com/map" },
        "icon": "MAP_VIEW", "icon_name": "MAP_VIEW", "caption": "نقشه" }] }] });
    let queue = async |key: &str, text: &str, name: &str| {
        let token = upload(&app, MediaKind::Image, name, png(300_000))
            .await
            .unwrap();
        let mut body = json!({ "type": "TEXT", "message": text, "receiver_buttons": grid });
        Attachment {
            media_token: token.clone(),
            file_name: name.into(),
            kind: "image".into(),
            size: 300_000,
        }
        .attach_to(&mut body);
        let row = MessageRow {
            message_id: format!("m-{key}"),
            idempotency_key: key.into(),
            conversation_id: conversation_id(&conv),
            user_id: user_id(BUYER_1),
            body: body.to_string(),
            status: MessageStatus::Sending,
            failure: None,
            attempts: 0,
            created_at: 0,
            updated_at: 0,
        };
        insert_queued(&app.db, &row, app.clock.now_ms())
            .await
            .unwrap();
        token
    };
    let with_text = queue("k-text", "عکس ماشین", "car.png").await;
    app.drain_outbox().await;
    let sent = app.bot_messages(&conv).await;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{sent}");
    assert_eq!(messages[0]["media"]["id"], with_text.as_str());
    assert_eq!(messages[0]["idempotency_key"], "k-text-media");
    assert!(messages[0]["receiver_buttons"].is_null());
    assert_eq!(messages[1]["text"], "عکس ماشین");
    assert_eq!(messages[1]["idempotency_key"], "k-text");
    assert_eq!(messages[1]["receiver_buttons"], grid);
    let status = app.get_html("/messages/m-k-text/status").await;
    assert!(
        status.contains("پیوست") && status.contains("car.png"),
        "{status}"
    );

    let alone = queue("k-alone", "", "plan.png").await;
    app.drain_outbox().await;
    let sent = app.bot_messages(&conv).await;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent}");
    assert_eq!(messages[2]["media"]["id"], alone.as_str());
    assert_eq!(messages[2]["idempotency_key"], "k-alone");
    assert_eq!(messages[2]["receiver_buttons"], grid);
}
crate::both_engines!(outbox_media, the_outbox_sends_the_media_first_then_the_text);

/// A broadcast with a photo: one upload, its media token sent to every conversation, each
/// conversation getting the photo first and then the text.
async fn a_broadcast_sends_one_upload_to_every_conversation(engine: Engine) {
    use kenar_chat::{db::broadcasts, domain::message::Attachment};
    let app = spawn_app_on_manual_clock(
        engine,
        kenar_chat::sandbox::SandboxOptions::default(),
        |_| {},
    )
    .await;
    app.open_post_as_owner(POST_1, SELLER_1).await;
    let photo = upload(&app, MediaKind::Image, "sold.png", png(1000))
        .await
        .unwrap();
    let mut body = json!({ "type": "TEXT", "message": "فروخته شد" });
    Attachment {
        media_token: photo.clone(),
        file_name: "sold.png".into(),
        kind: "image".into(),
        size: 1000,
    }
    .attach_to(&mut body);
    let conversations: Vec<_> = (1..=3)
        .map(|buyer| conversation_id(&conversation(1, buyer)))
        .collect();
    let created = broadcasts::create(
        &app.db,
        &uuid::Uuid::new_v4().to_string(),
        "b-photo",
        &post_token(POST_1),
        &user_id(SELLER_1),
        &body.to_string(),
        &conversations,
        app.clock.now_ms(),
    )
    .await
    .unwrap();
    assert!(matches!(created, broadcasts::Created::New(_)));
    app.drain_outbox().await;
    for buyer in 1..=3 {
        let conv = conversation(1, buyer);
        let sent = app.bot_messages(&conv).await;
        let messages = sent["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2, "{conv}: {sent}");
        assert_eq!(messages[0]["media"]["id"], photo.as_str(), "{conv}");
        assert_eq!(messages[1]["text"], "فروخته شد");
    }
    let uploads = app.sandbox.world().media.len();
    assert_eq!(uploads, 1, "one upload for the whole broadcast");
}
crate::both_engines!(
    broadcast_media,
    a_broadcast_sends_one_upload_to_every_conversation
);

/// Posts the composer as the page does with a file chosen: multipart, the form token first,
/// the file last (`file` is `(name, bytes)`).
async fn post_composer_with_file(
    app: &TestApp,
    fields: &[(&str, &str)],
    file: Option<(&str, Vec<u8>)>,
) -> reqwest::Response {
    let token = csrf_token_of(&app.client, app).await;
    let key = app.idempotency_key().await;
    let mut form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .text("idempotency_key", key)
        .text("action", "send");
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    let form = match file {
        Some((name, bytes)) => form.part(
            "media",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        ),
        // An empty file input sends its part with no name.
        None => form.part(
            "media",
            reqwest::multipart::Part::bytes(Vec::new()).file_name(""),
        ),
    };
    app.client
        .post(app.url("/compose"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// From the composer: a photo alone, then a PDF with text and a button; each reaches Divar as
/// it takes them, and the status page names the file.
async fn the_composer_sends_a_photo_and_a_file(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let composer = app.get_html("/compose").await;
    assert!(composer.contains(r#"enctype="multipart/form-data""#));
    assert!(composer.contains(r#"type="file" id="media" name="media""#));

    let sent =
        post_composer_with_file(&app, &[("text", "")], Some(("car.png", png(200_000)))).await;
    let status = assert_redirect(&sent);
    assert!(status.ends_with("/status"), "{status}");
    let id = status
        .trim_start_matches("/messages/")
        .trim_end_matches("/status")
        .to_string();
    assert_eq!(app.final_status(&id).await["status"], "sent");
    let page = app.get_html(&status).await;
    assert!(page.contains("car.png"), "{page}");

    let pdf = b"%PDF-1.7 price list".to_vec();
    let sent = post_composer_with_file(
        &app,
        &[
            ("text", "فهرست قیمت‌ها"),
            ("r00_caption", "نقشه"),
            ("r00_icon", "MAP_VIEW"),
            ("r00_kind", "link"),
            ("r00_link", "https://example.com/map"),
        ],
        Some(("prices.pdf", pdf)),
    )
    .await;
    let status = assert_redirect(&sent);
    let id = status
        .trim_start_matches("/messages/")
        .trim_end_matches("/status")
        .to_string();
    assert_eq!(app.final_status(&id).await["status"], "sent");
    let bot = app.bot_messages(&conv).await;
    let messages = bot["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{bot}");
    assert_eq!(messages[0]["media"]["file_name"], "car.png");
    assert_eq!(messages[1]["media"]["file_name"], "prices.pdf");
    assert_eq!(messages[2]["text"], "فهرست قیمت‌ها");
    assert_eq!(
        messages[2]["receiver_buttons"]["rows"][0]["buttons"][0]["caption"],
        "نقشه"
    );
}
crate::both_engines!(composer_media, the_composer_sends_a_photo_and_a_file);

/// What Divar's chat does not take is refused beside the file field, in Persian, with the text
/// kept and nothing sent: a 6 MB photo, a program, and any file while the upload host is down.
async fn a_file_divar_does_not_take_is_refused_beside_its_field(engine: Engine) {
    let app = spawn_app(engine).await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let text = "متنی که نباید گم شود";
    let refused = async |file: (&str, Vec<u8>), words: &str| {
        let page = post_composer_with_file(&app, &[("text", text)], Some(file)).await;
        assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"aria-describedby="media-error""#), "{html}");
        assert!(html.contains(words), "{html}");
        assert!(html.contains(text), "the text is kept");
    };
    refused(("big.png", png(6_000_000)), "بزرگ‌تر از ۵ مگابایت").await;
    refused(("setup.exe", b"MZ\x90\x00".to_vec()), "این نوع فایل").await;
    refused(
        ("photo.png", b"MZ\x90\x00 a program".to_vec()),
        "این نوع فایل",
    )
    .await;
    app.control(json!({ "uploads_fail": true })).await;
    refused(("car.png", png(1000)), "دیوار الان فایل را نگرفت").await;
    let queued: i64 = sqlx::query("select count(*) from messages")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(queued, 0, "nothing was queued");
    assert_eq!(app.bot_messages(&conv).await["messages"], json!([]));
}
crate::both_engines!(
    media_refused,
    a_file_divar_does_not_take_is_refused_beside_its_field
);

/// The forged-post guard reads a multipart form's token from its first part: a wrong token, or
/// none first, is refused before any file goes anywhere.
#[tokio::test]
async fn a_multipart_post_needs_the_form_token_first() {
    let app = spawn_app(Engine::Sqlite).await;
    app.connect_conversation(&conversation(1, 1), "buyer", BUYER_1)
        .await;
    let token = csrf_token_of(&app.client, &app).await;
    let post = async |form: reqwest::multipart::Form| {
        app.client
            .post(app.url("/compose"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status()
    };
    let file = || reqwest::multipart::Part::bytes(png(100)).file_name("a.png");
    let wrong = reqwest::multipart::Form::new()
        .text("csrf_token", "not-the-token")
        .text("text", "x")
        .part("media", file());
    assert_eq!(post(wrong).await, StatusCode::FORBIDDEN);
    let late = reqwest::multipart::Form::new()
        .part("media", file())
        .text("csrf_token", token.clone());
    assert_eq!(post(late).await, StatusCode::FORBIDDEN);
    assert!(app.sandbox.world().media.is_empty(), "nothing was uploaded");
    let right = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .text("text", "x")
        .text("action", "preview");
    assert_eq!(post(right).await, StatusCode::OK);
}

/// From the post-wide composer: a photo chosen with the text goes through the confirm step and
/// reaches every conversation, from one upload.
async fn a_broadcast_from_the_composer_carries_a_photo(engine: Engine) {
    let app = spawn_app(engine).await;
    app.open_post_as_owner(POST_1, SELLER_1).await;
    let created: serde_json::Value = app
        .post_json(
            &format!("/sandbox/_control/posts/{POST_1}/conversations"),
            &json!({ "count": 3, "announce": true }),
        )
        .await
        .json()
        .await
        .unwrap();
    let conversations: Vec<String> = created["conversation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let token = csrf_token_of(&app.client, &app).await;
    let key = hidden_field(&app.get_html("/broadcasts/new").await, "idempotency_key");
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .text("idempotency_key", key.clone())
        .text("text", "فروخته شد")
        .text("action", "send")
        .part(
            "media",
            reqwest::multipart::Part::bytes(png(2000)).file_name("sold.png"),
        );
    let confirm = app
        .client
        .post(app.url("/broadcasts/new"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    let html = confirm.text().await.unwrap();
    assert!(
        html.contains("این پیام برای ۳ نفر") && html.contains("sold.png"),
        "{html}"
    );
    let fields = [
        ("idempotency_key", key),
        ("text", "فروخته شد".to_string()),
        ("media_token", hidden_field(&html, "media_token")),
        ("media_name", hidden_field(&html, "media_name")),
        ("media_kind", hidden_field(&html, "media_kind")),
        ("media_size", hidden_field(&html, "media_size")),
        ("as_of", hidden_field(&html, "as_of")),
        ("digest", hidden_field(&html, "digest")),
    ];
    let started = app.submit_form("/broadcasts", &fields).await;
    let page = assert_redirect(&started);
    assert!(page.starts_with("/broadcasts/"), "{page}");
    eventually(
        "every conversation has the photo and the text",
        async || {
            let mut all = true;
            for conv in &conversations {
                let sent = app.bot_messages(conv).await;
                all &= sent["messages"].as_array().map(Vec::len) == Some(2);
            }
            all
        },
    )
    .await;
    for conv in &conversations {
        let sent = app.bot_messages(conv).await;
        assert_eq!(
            sent["messages"][0]["media"]["file_name"], "sold.png",
            "{conv}"
        );
        assert_eq!(sent["messages"][1]["text"], "فروخته شد");
    }
    assert_eq!(app.sandbox.world().media.len(), 1, "one upload");
}
crate::both_engines!(
    broadcast_composer_media,
    a_broadcast_from_the_composer_carries_a_photo
);
