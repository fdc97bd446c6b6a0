//! Forged cross-site posts are refused twice over: the browser's own word (`Sec-Fetch-Site`,
//! `Origin`) and a per-visit token that every form of ours carries. SameSite=Lax alone lets a
//! top-level cross-site POST through in some browsers and for two minutes after a cookie is set.

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::{
    state::AppState,
    web::{error::AppError, session::Visit},
};

/// The form field, and the header a script may use instead.
pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
/// Our forms are small (the composer's is a few KiB); a larger body is not ours.
const MAX_FORM_BYTES: usize = 256 * 1024;

tokio::task_local! {
    /// The current visit's token while its page renders.
    static TOKEN: String;
}

/// For templates: the token to put in a form (empty without a visit, and such a post is refused
/// by the handler for want of a visit anyway).
pub fn token() -> String {
    TOKEN.try_with(Clone::clone).unwrap_or_default()
}

/// The page layer: checks every state-changing request, and lends the visit's token to the
/// templates of every page.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let session = request.extensions().get::<Session>().cloned();
    let visit: Option<Visit> = match &session {
        Some(session) => match session.get(super::session::VISIT).await {
            Ok(visit) => visit,
            Err(error) => {
                return AppError::Unexpected(anyhow::Error::new(error).context("session store"))
                    .into_response();
            }
        },
        None => None,
    };
    let visit_present = visit.is_some();
    let expected = visit.map(|v| v.csrf_token).unwrap_or_default();
    if request.method().is_safe() {
        return TOKEN.scope(expected, next.run(request)).await;
    }
    if let Some(reason) = cross_site(request.headers(), &state.deps.settings.public_origin()) {
        tracing::warn!(reason, "refused a cross-site request to a page");
        return forbidden();
    }
    // Without a visit there is nothing to forge: the handler answers "open the add-on again".
    let request = if visit_present {
        match carried_token(request).await {
            Ok((request, Some(sent))) if matches(&sent, &expected) => request,
            Ok(_) => {
                tracing::warn!("refused a post without this visit's form token");
                return forbidden();
            }
            Err(response) => return response,
        }
    } else {
        request
    };
    TOKEN.scope(expected, next.run(request)).await
}

/// An empty expected token matches nothing, not even an empty one sent.
fn matches(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// Why the browser says this request comes from another site, if it does. `Origin: null` is
/// what browsers send for our own forms under `Referrer-Policy: no-referrer`, so it proves
/// nothing either way; the token decides then.
fn cross_site(headers: &HeaderMap, ours: &str) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site")
        && matches!(site.as_bytes(), b"cross-site" | b"same-site")
    {
        return Some("Sec-Fetch-Site names another site");
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or_default();
    if origin == "null" || origin == ours {
        return None;
    }
    // Also the host the request was sent to, for a development server reached by another name;
    // but only with our scheme (an `http://` origin on an https base is another site, and so is
    // `ws://` or `ftp://`), and the port as the Host header says it.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let our_scheme = ours.split_once("://").map(|(scheme, _)| scheme);
    let Some((scheme, origin_host)) = origin.split_once("://") else {
        return Some("Origin is not an origin");
    };
    if host.is_some() && Some(origin_host) == host && Some(scheme) == our_scheme {
        return None;
    }
    Some("Origin names another site")
}

/// The token from the header, or from the urlencoded form (the body is put back for the handler).
async fn carried_token(request: Request) -> Result<(Request, Option<String>), Response> {
    if let Some(sent) = request.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        let sent = sent.to_string();
        return Ok((request, Some(sent)));
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some(boundary) = multipart_boundary(&content_type) {
        return Ok(first_part_token(request, &boundary).await);
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES).await.map_err(|error| {
        let too_large = error
            .into_inner()
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some();
        if too_large {
            AppError::TooLarge.into_response()
        } else {
            // The client stopped sending (or took longer than the request timeout).
            AppError::Incomplete.into_response()
        }
    })?;
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned());
    Ok((Request::from_parts(parts, Body::from(bytes)), sent))
}

/// The boundary of a `multipart/form-data` body.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// A multipart form of ours (one with a file) carries the token as its first part: read just
/// that part, and pass the body on whole, as a stream, so a file is never held here.
async fn first_part_token(request: Request, boundary: &str) -> (Request, Option<String>) {
    use futures::StreamExt;
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let end = format!("\r\n--{boundary}");
    let mut head = Vec::new();
    // The first part: its boundary line, its headers, the token; a few hundred bytes.
    while head.len() < 4096 && find(&head, end.as_bytes()).is_none() {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let sent = first_field(&head, boundary, &end);
    let rest =
        futures::stream::once(async move { Ok(axum::body::Bytes::from(head)) }).chain(stream);
    (Request::from_parts(parts, Body::from_stream(rest)), sent)
}

/// The value of the first part when it is the form token's.
fn first_field(head: &[u8], boundary: &str, end: &str) -> Option<String> {
    let start = format!("--{boundary}\r\n");
    let rest = head.strip_prefix(start.as_bytes())?;
    let headers_end = find(rest, b"\r\n\r\n")?;
    let headers = std::str::from_utf8(&rest[..headers_end]).ok()?;
    if !headers.contains(&format!("name=\"{FIELD}\"")) {
        return None;
    }
    let value = &rest[headers_end + 4..];
    let value = &value[..find(value, end.as_bytes())?];
    std::str::from_utf8(value).ok().map(str::to_string)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn forbidden() -> Response {
    AppError::Forbidden.into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    fn from(origin: &str, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_str(origin).unwrap());
        headers.insert("host", HeaderValue::from_str(host).unwrap());
        headers
    }

    /// Scheme, host and port must all be ours: on an https base, the same host over http, a
    /// websocket or another port is another site.
    #[test]
    fn an_origin_is_ours_only_with_our_scheme_host_and_port() {
        let ours = "https://addon.example";
        let refused = |origin: &str| super::cross_site(&from(origin, "addon.example"), ours);
        assert_eq!(refused("https://addon.example"), None);
        assert_eq!(refused("null"), None, "the token decides");
        for other in [
            "http://addon.example",
            "ws://addon.example",
            "wss://addon.example",
            "ftp://addon.example",
            "https://addon.example:8443",
            "https://evil.example",
            "addon.example",
        ] {
            assert!(refused(other).is_some(), "{other}");
        }
        // A development server reached by another name: its own Host, with our scheme.
        let dev = "http://127.0.0.1:8080";
        assert_eq!(
            super::cross_site(&from("http://localhost:8080", "localhost:8080"), dev),
            None
        );
        assert!(super::cross_site(&from("ws://localhost:8080", "localhost:8080"), dev).is_some());
    }
}
