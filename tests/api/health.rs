use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, Executor, postgres::PgConnection};

use crate::helpers::*;

async fn health_and_readiness_answer(engine: Engine) {
    let app = spawn_app(engine).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}
crate::both_engines!(health, health_and_readiness_answer);

#[tokio::test]
async fn readyz_is_503_when_postgres_goes_away() {
    let app = spawn_app(Engine::Postgres).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let (admin, name) = app.test_db.postgres.clone().unwrap();
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!(r#"drop database "{name}" with (force)"#).as_str())
        .await
        .unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The process itself is still alive.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_when_the_sqlite_pool_is_closed() {
    let app = spawn_app(Engine::Sqlite).await;
    app.db.close().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_pages_are_a_persian_404() {
    let app = spawn_app(Engine::Sqlite).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let html = response.text().await.unwrap();
    assert!(html.contains("صفحه پیدا نشد") && html.contains(r#"dir="rtl""#));
}

#[tokio::test]
async fn the_stylesheet_and_font_are_served_locally() {
    let app = spawn_app(Engine::Sqlite).await;
    let css = app.get("/static/css/app.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    let css = css.text().await.unwrap();
    // The font's URL in the stylesheet carries the file's current fingerprint, so browsers keep
    // it for a year and fetch a new one the day it changes. When this fails after the font
    // changed, put the `?v=` value it names into static/css/app.css.
    let current = kenar_chat::web::assets::url("fonts/Vazirmatn-Variable-fa.woff2");
    let named: Vec<&str> = css
        .split("url(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|url| url.contains("/fonts/"))
        .collect();
    assert!(!named.is_empty(), "the stylesheet names its font");
    for url in named {
        assert_eq!(url, current, "static/css/app.css names a stale font URL");
    }
    let font = app.get(&current).await;
    assert_eq!(font.status(), StatusCode::OK);
    assert_eq!(
        font.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let bytes = font.bytes().await.unwrap();
    assert!(bytes.starts_with(b"wOF2"));
    // Subset to what the pages use (static/fonts/README.md): at most 40 KB.
    assert!(bytes.len() <= 40_000, "the font is {} bytes", bytes.len());
}
