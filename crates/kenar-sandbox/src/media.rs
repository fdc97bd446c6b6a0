//! Photos and files in chat (`chat/upload_media.md`): the upload-token endpoint of the API, the
//! upload host (Divar's `https://chat.divar.ir`, here under the sandbox's own address:
//! `{sandbox}/sandbox/upload/{kind}`), and the media a sent message shows.
//!
//! The host takes the documented formats and sizes only, checked by name and first bytes as it
//! streams (a file past its limit is refused before it is read whole). Uploaded images are kept
//! in memory so the chat screens can show them; other kinds keep their name and size.

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, Multipart, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kenar::upload::{MediaKind, MediaRefusal};
use serde_json::json;

use super::{
    Sandbox,
    world::{Media, random_id, random_token},
};

/// How long an upload token is good for. Divar documents no lifetime; an hour is plenty for one
/// upload and short enough that a stale one is noticed.
const UPLOAD_TOKEN_TTL_MS: i64 = 3_600_000;

pub const UPLOAD_TOKEN_PATH: &str = "/experimental/open-platform/chat/upload";

/// How many uploaded images keep their bytes for the chat screens.
const IMAGES_KEPT: usize = 50;

pub fn router() -> Router<Sandbox> {
    Router::new()
        .route(UPLOAD_TOKEN_PATH, post(upload_token))
        // The largest kind (video) is 50 MB; the handler enforces each kind's own limit.
        .route(
            "/upload/{kind}",
            post(upload).layer(DefaultBodyLimit::max(60_000_000)),
        )
        .route("/media/{id}", get(show_media))
}

fn refuse(status: StatusCode, code: i32, message: &str) -> Response {
    (
        status,
        Json(json!({ "code": code, "message": message, "details": [] })),
    )
        .into_response()
}

/// POST …/chat/upload with the API key: a token for the upload host.
async fn upload_token(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(sandbox.app().api_key.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, 16, "invalid or missing x-api-key");
    }
    let token = random_token("sbx_upload_");
    let mut world = sandbox.world();
    let now = world.now_ms();
    // Expired tokens go as new ones come, so the map stays small.
    world.upload_tokens.retain(|_, expires| *expires > now);
    world
        .upload_tokens
        .insert(token.clone(), now + UPLOAD_TOKEN_TTL_MS);
    Json(json!({ "token": token })).into_response()
}

/// POST /upload/{kind}: one multipart field `file` with a file name, `Authorization: Bearer
/// <upload token>`. Answers `{"id": <media token>, "status": "ok"}`.
async fn upload(
    State(sandbox): State<Sandbox>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let Some(kind) = MediaKind::parse(&kind) else {
        return refuse(
            StatusCode::NOT_FOUND,
            5,
            "no such media type: image, file, voice or video",
        );
    };
    if sandbox.world().knobs.uploads_fail {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "upload host unavailable (sandbox setting)",
        );
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = {
        let world = sandbox.world();
        let now = world.now_ms();
        token.is_some_and(|t| world.upload_tokens.get(t).is_some_and(|exp| *exp > now))
    };
    if !valid {
        return refuse(
            StatusCode::UNAUTHORIZED,
            16,
            "missing, unknown or expired upload token",
        );
    }
    let field = loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => break field,
            Ok(Some(_)) => continue,
            Ok(None) => return refuse(StatusCode::BAD_REQUEST, 3, "the form has no `file` field"),
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    3,
                    &format!("not a multipart form: {e}"),
                );
            }
        }
    };
    let Some(file_name) = field
        .file_name()
        .map(str::to_string)
        .filter(|n| !n.is_empty())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            3,
            "the `file` field needs a file name",
        );
    };
    let mut field = field;
    let mut bytes = Vec::new();
    let limit = kind.max_bytes();
    // Past the limit the rest is read and dropped, not kept: answering before the body is read
    // would reset the connection under a client still sending, and it would see no answer.
    let mut too_large = false;
    loop {
        match field.chunk().await {
            Ok(Some(_)) if too_large => {}
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > limit {
                    too_large = true;
                    bytes = Vec::new();
                }
            }
            Ok(None) => break,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    3,
                    &format!("the upload broke off: {e}"),
                );
            }
        }
    }
    if too_large {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            3,
            &format!("a {} may be at most {limit} bytes", kind.as_str()),
        );
    }
    match MediaKind::detect(&file_name, &bytes[..bytes.len().min(16)]) {
        Ok(detected) if detected == kind => {}
        Ok(_) | Err(MediaRefusal::UnknownType) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                3,
                &format!(
                    "a {} must be one of: {}",
                    kind.as_str(),
                    kind.extensions().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        Err(refusal) => return refuse(StatusCode::BAD_REQUEST, 3, &refusal.to_string()),
    }
    let media = Media {
        id: random_id(),
        kind: kind.as_str(),
        size: bytes.len() as u64,
        content_type: MediaKind::content_type(&file_name),
        file_name,
        bytes: (kind == MediaKind::Image).then_some(bytes),
    };
    let id = media.id.clone();
    let mut world = sandbox.world();
    if media.bytes.is_some() {
        // Only the newest images keep their bytes (a few hundred MB at most); an older one shows
        // as its name.
        world.images_kept.push_back(id.clone());
        while world.images_kept.len() > IMAGES_KEPT {
            if let Some(old) = world.images_kept.pop_front()
                && let Some(media) = world.media.get_mut(&old)
            {
                media.bytes = None;
            }
        }
    }
    world.media.insert(id.clone(), media);
    drop(world);
    Json(json!({ "id": id, "status": "ok" })).into_response()
}

/// An uploaded image, for the chat screens' `<img>`.
async fn show_media(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    let world = sandbox.world();
    match world.media.get(&id) {
        Some(Media {
            bytes: Some(bytes),
            content_type,
            ..
        }) => (
            [(header::CONTENT_TYPE, *content_type)],
            Body::from(bytes.clone()),
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
