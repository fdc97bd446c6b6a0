//! Photos and files in chat through the `kenar` SDK against the sandbox: an upload token, the
//! upload host with Divar's formats and limits, and a message that carries the media token.

use kenar::upload::{MediaKind, UploadError, Uploader};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
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
