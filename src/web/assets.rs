//! Static assets under fingerprinted URLs: `/static/css/app.css?v=<hash of its content>`. A URL
//! changes exactly when the file does, so browsers may keep a file for a year without ever
//! using a stale one; a URL without the current fingerprint is cached for an hour only.

use std::{collections::HashMap, path::PathBuf, sync::LazyLock};

use axum::{
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};

/// Content hashes of the files under `static/`, by path relative to it.
static FINGERPRINTS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let root = super::static_dir();
    let mut found = HashMap::new();
    collect(&root, &root, &mut found);
    found
});

fn collect(root: &PathBuf, dir: &PathBuf, found: &mut HashMap<String, String>) {
    use sha2::{Digest, Sha256};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, found);
        } else if let (Ok(bytes), Ok(relative)) = (std::fs::read(&path), path.strip_prefix(root)) {
            let hash = Sha256::digest(&bytes);
            let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
            found.insert(relative.to_string_lossy().replace('\\', "/"), short);
        }
    }
}

/// The URL of `path` (relative to `static/`, e.g. `css/app.css`), for templates.
pub fn url(path: &str) -> String {
    match FINGERPRINTS.get(path) {
        Some(hash) => format!("/static/{path}?v={hash}"),
        None => format!("/static/{path}"),
    }
}

/// The static layer: a year and `immutable` for a URL with the file's current fingerprint, an
/// hour otherwise.
pub async fn cache_headers(request: Request, next: Next) -> Response {
    let path = request
        .uri()
        .path()
        .trim_start_matches("/static/")
        .trim_start_matches('/')
        .to_string();
    let fingerprinted = request.uri().query().is_some_and(|query| {
        FINGERPRINTS
            .get(&path)
            .is_some_and(|hash| query == format!("v={hash}"))
    });
    let mut response = next.run(request).await;
    if response.status().is_success() {
        let value = if fingerprinted {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=3600"
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}
