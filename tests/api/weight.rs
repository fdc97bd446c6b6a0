//! What a page costs on a phone: compressed answers, assets cached for good, a light composer.

use reqwest::StatusCode;

use crate::helpers::*;

/// A client without automatic decompression, to see what travels.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .build()
        .unwrap()
}

#[tokio::test]
async fn pages_and_assets_travel_compressed_and_assets_are_cached_for_good() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let composer = app.get_html("/compose").await;
    // Only the icons offered (with Persian names) are in the page, not Divar's whole list.
    assert!(!composer.contains(r#"<option value="BRAND_ALFA_ROMEO""#));
    // Every asset the pages name is fingerprinted, and that URL is cached for a year.
    let mut assets: Vec<String> = composer
        .split(['"', '\''])
        .filter(|part| part.starts_with("/static/") && part.contains("?v="))
        .map(str::to_string)
        .collect();
    assets.sort();
    assets.dedup();
    assert!(
        assets
            .iter()
            .any(|a| a.starts_with("/static/css/app.css?v="))
            && assets
                .iter()
                .any(|a| a.starts_with("/static/js/compose.js?v="))
            && assets
                .iter()
                .any(|a| a.starts_with("/static/favicon.svg?v=")),
        "{assets:?}"
    );
    let raw = raw_client();
    for asset in &assets {
        let answer = raw
            .get(app.url(asset))
            .header("accept-encoding", "br, gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{asset}");
        assert_eq!(
            answer.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{asset}"
        );
        if asset.contains(".css") || asset.contains(".js") || asset.contains(".svg") {
            assert_eq!(answer.headers()["content-encoding"], "br", "{asset}");
        }
    }
    // A stale fingerprint is not kept for a year.
    let stale = app.get_as(&raw, "/static/css/app.css?v=000000000000").await;
    assert_eq!(stale.headers()["cache-control"], "public, max-age=3600");
    // The page itself, compressed when asked, plain when not.
    let page = app
        .client
        .get(app.url("/compose"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let mut plain = raw_client().get(app.url("/")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    plain = raw_client()
        .get(app.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.headers()["content-encoding"], "gzip");
}

/// Divar's calls get their few hundred bytes plain even when the caller accepts gzip: the
/// compression layer is on pages and assets only (compressing a few hundred bytes costs more
/// CPU than it saves).
#[tokio::test]
async fn divar_calls_travel_plain() {
    let app = spawn_app(Engine::Sqlite).await;
    let body = chat_session_init(&conversation(1, 1), BUYER_1);
    let answer = app
        .session_init_request(Some("2"), &body)
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers().get("content-encoding").is_none());
    assert!(answer.headers().get("vary").is_none());
    // Above the layer's 32-byte floor: with the layer, this answer would be compressed.
    let text = answer.text().await.unwrap();
    assert!(text.len() > 32 && text.contains("\"url\""), "{text}");
}

/// Every page of ours has a way back to Divar in its top bar (issue 23): a person in Divar's
/// webview is never left on a page with no way out but the phone's back button.
#[test]
fn every_page_has_a_way_back_to_divar() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut pages: Vec<_> = std::fs::read_dir(dir.join("pages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.push(dir.join("error.html"));
    for page in pages {
        let html = std::fs::read_to_string(&page).unwrap();
        let bar = html
            .lines()
            .find(|l| l.contains(r#"<header class="topbar">"#))
            .unwrap_or_else(|| panic!("{} has no top bar", page.display()));
        assert!(bar.contains(r#"href="/back""#), "{}: {bar}", page.display());
    }
}
