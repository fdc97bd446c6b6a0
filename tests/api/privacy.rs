//! The privacy page Divar's data policy asks for: public, Persian, and its periods read from the
//! running settings; every page and every consent step links to it.

use std::time::Duration;

use kenar_chat::sandbox::SandboxOptions;
use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn the_privacy_page_is_public_persian_and_sets_no_cookie() {
    let app = spawn_app(Engine::Sqlite).await;
    let response = browser().get(app.url("/privacy")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "a stranger's visit starts no session"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<html lang="fa" dir="rtl">"#), "{html}");
    assert!(html.contains("چه چیزهایی را نگه می‌داریم"));
    // The sandbox names no operator: the page says so instead of inventing one.
    assert!(html.contains("نامش هنوز تنظیم نشده"));
    // The defaults, in Persian digits.
    for period in ["۲۴ ساعت", "۷ روز", "۳۰ روز", "۱۵ دقیقه", "هر ۱ ساعت یک بار"]
    {
        assert!(html.contains(period), "{period} missing");
    }
}

/// Each of the three retention settings moves its own number on the page; the operator's name
/// and contact are shown as set.
#[tokio::test]
async fn the_periods_and_the_operator_come_from_the_settings() {
    let app = spawn_app_customized(Engine::Sqlite, SandboxOptions::default(), |settings| {
        settings.retention.clicks = Duration::from_secs(36 * 3600);
        settings.retention.message_bodies = Duration::from_secs(5 * 86_400);
        settings.retention.finished_sends = Duration::from_secs(12 * 86_400);
        settings.retention.conversations = Duration::from_secs(45 * 86_400);
        settings.operator.name = Some("فروشگاه نمونه".into());
        settings.operator.contact = Some("privacy@shop.example.ir".into());
    })
    .await;
    let html = app.get_html("/privacy").await;
    for shown in [
        "۳۶ ساعت پس از باز شدن صفحه",
        "۵ روز پس از فرستاده شدن",
        "۱۲ روز پس از پایان ارسال",
        "۴۵ روز پس از آخرین باری",
        "فروشگاه نمونه",
        "privacy@shop.example.ir",
    ] {
        assert!(html.contains(shown), "{shown} missing");
    }
    for default in ["۲۴ ساعت", "۷ روز", "نامش هنوز تنظیم نشده"] {
        assert!(
            !html.contains(default),
            "{default} is not the running value"
        );
    }
}

/// The footer of every page links to the privacy page, and each consent step shows the link
/// before the button that goes to Divar.
async fn every_page_and_consent_step_links_to_the_privacy_page(engine: Engine) {
    let app = spawn_app(engine).await;
    let link = r#"href="/privacy""#;
    let before_consent = |html: &str| {
        let consent = html
            .find(r#"action="/oauth/start"#)
            .expect("a consent button");
        html[..consent].contains(link)
    };
    // A buyer's landing page, before and after connecting.
    let conv = conversation(1, 1);
    assert_eq!(app.enter_from_chat(&conv, "buyer").await, "/start");
    let landing = app.get_html("/start").await;
    assert!(before_consent(&landing), "the chat's consent step");
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    for path in ["/start", "/compose", "/history", "/", "/no-such-page"] {
        let html = app.get_html(path).await;
        assert!(
            html.contains(link),
            "{path} has no link to the privacy page"
        );
    }
    // The seller's post page, before connecting the post (the same browser, a new visit).
    assert_eq!(app.enter_from_post(POST_1, SELLER_1).await, "/post");
    let post = app.get_html("/post").await;
    assert!(before_consent(&post), "the post's consent step");
}
crate::both_engines!(
    privacy_links,
    every_page_and_consent_step_links_to_the_privacy_page
);
