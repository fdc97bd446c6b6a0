//! The button editor as a seller uses it, with no script: ready-made buttons added with one tap,
//! removed again, Persian icon names, links without `https://`, icon names in any case.

use std::{collections::HashMap, time::Duration};

use kenar_chat::sandbox::SandboxOptions;
use reqwest::StatusCode;

use crate::helpers::*;

/// The fields of a composer page as the browser would send them back: every input, textarea
/// and selected option (the page is our own markup, one attribute order).
fn form_of(html: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(r#" {name}=""#))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|v| v.replace("&amp;", "&").replace("&quot;", "\""))
    };
    for tag in html.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.insert(name, value);
        }
    }
    for part in html.split("<textarea").skip(1) {
        let (tag, rest) = part.split_once('>').unwrap_or_default();
        if let Some(name) = attr(tag, "name") {
            let value = rest.split("</textarea>").next().unwrap_or_default();
            fields.insert(name, value.to_string());
        }
    }
    for part in html.split("<select").skip(1) {
        let (tag, rest) = part.split_once('>').unwrap_or_default();
        let options = rest.split("</select>").next().unwrap_or_default();
        let selected = options.split("<option").find(|o| {
            o.split('>')
                .next()
                .unwrap_or_default()
                .contains(" selected")
        });
        if let (Some(name), Some(option)) = (attr(tag, "name"), selected) {
            let value = attr(option.split('>').next().unwrap_or_default(), "value");
            fields.insert(name, value.unwrap_or_default());
        }
    }
    fields
}

async fn post_fields(app: &TestApp, fields: HashMap<String, String>) -> reqwest::Response {
    let pairs: Vec<(String, String)> = fields.into_iter().collect();
    app.submit_form("/compose", &pairs).await
}

/// Taps one of the editor's buttons (`add` or `remove`) on a page whose fields are `fields`.
async fn tap(
    app: &TestApp,
    mut fields: HashMap<String, String>,
    name: &str,
    value: &str,
) -> String {
    fields.insert(name.into(), value.into());
    let answer = post_fields(app, fields).await;
    assert_eq!(answer.status(), StatusCode::OK, "{name}={value}");
    answer.text().await.unwrap()
}

/// The opening tag of the element with `id`.
fn tag_of<'a>(html: &'a str, id: &str) -> &'a str {
    html.split(&format!(r#"id="{id}""#))
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap_or_else(|| panic!("no #{id}"))
}

#[tokio::test]
async fn a_seller_builds_buttons_with_one_tap_each_and_no_script() {
    let app = spawn_app(Engine::Sqlite).await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "seller", SELLER_1).await;

    // An empty composer: no button forms yet, only the ready-made buttons to add, light.
    let empty = app.get_html("/compose").await;
    assert!(
        empty.len() < 20 * 1024,
        "the composer is {} bytes",
        empty.len()
    );
    assert!(
        !empty.contains("_caption\""),
        "no button slots until one is added"
    );
    // A ready-made button for both sides is offered once, on the other side's grid; the blank
    // one on both.
    for preset in ["+ تماس", "+ نشانی روی نقشه", "+ مشاهدهٔ آگهی"] {
        assert_eq!(empty.matches(preset).count(), 1, "{preset}, once");
    }
    // No preset promises what the buyer would not get (a visit-time pick was never built).
    assert!(!empty.contains("زمان بازدید"));
    assert_eq!(empty.matches("+ دکمهٔ دلخواه").count(), 2);
    assert!(empty.contains(r#"name="add" value="r:map""#));

    // «+ نشانی روی نقشه» for the buyer: a filled button whose link is what is left to write,
    // focused; the text written so far stays; nothing is sent.
    let mut fields = form_of(&empty);
    fields.insert("text".into(), "جمعه ساعت ۱۰ منتظرتان هستم".into());
    let page = tap(&app, fields, "add", "r:map").await;
    assert!(page.contains("جمعه ساعت ۱۰ منتظرتان هستم"));
    assert!(tag_of(&page, "r00_caption").contains(r#"value="نشانی روی نقشه""#));
    assert!(tag_of(&page, "r00_link").contains("autofocus"));
    assert!(
        page.contains(r#"<option value="MAP_VIEW" selected data-glyph="🗺️" data-name="نقشه" data-keywords="مسیر آدرس نشانی">🗺️ نقشه</option>"#),
        "the icon by its Persian name"
    );
    assert!(page.contains(r#"<option value="link" selected>"#));
    assert!(page.contains(r#"name="remove" value="r00""#));

    // Two more: a blank one beside it, and a blank one for the seller's own grid.
    let page = tap(&app, form_of(&page), "add", "r:custom").await;
    assert!(tag_of(&page, "r01_caption").contains("autofocus"));
    let page = tap(&app, form_of(&page), "add", "s:custom").await;
    assert!(tag_of(&page, "s00_caption").contains("autofocus"));
    // «حذف این دکمه» on the map button.
    let page = tap(&app, form_of(&page), "remove", "r00").await;
    assert!(!page.contains(r#"id="r00_caption""#) && page.contains(r#"id="r01_caption""#));
    assert!(
        tag_of(&page, "r-title").contains("autofocus"),
        "focus stays on that side"
    );
    assert_eq!(
        app.bot_messages(&conv).await["count"],
        0,
        "editing sends nothing"
    );

    // Send: a link typed without https://, an icon name typed in lower case.
    let mut fields = form_of(&page);
    fields.insert("s00_caption".into(), "پرداخت بیعانه".into());
    fields.insert("s00_icon".into(), "payment".into());
    fields.insert("s00_link".into(), "example.com/pay?id=7".into());
    fields.insert("r01_caption".into(), "اطلاعات بیشتر".into());
    fields.insert("r01_kind".into(), "server".into());
    fields.insert("r01_icon".into(), "ACCESS_TIME".into());
    fields.insert("action".into(), "send".into());
    let sent = post_fields(&app, fields).await;
    let id = queued_message(&assert_redirect(&sent));
    assert_eq!(app.final_status(&id).await["status"], "sent");
    let message = &app.bot_messages(&conv).await["messages"][0];
    let mine = &message["sender_buttons"]["rows"][0]["buttons"][0];
    assert_eq!(mine["icon"], "PAYMENT");
    assert_eq!(
        mine["action"]["open_direct_link"],
        "https://example.com/pay?id=7"
    );
    let theirs = &message["receiver_buttons"]["rows"][0]["buttons"][0];
    assert_eq!(theirs["caption"], "اطلاعات بیشتر");
    assert_eq!(theirs["icon"], "ACCESS_TIME");
    assert!(theirs["action"]["open_server_link"].is_object());

    // The status page's preview names icons in Persian.
    let status = app.get_html(&format!("/messages/{id}/status")).await;
    assert!(status.contains(r#"aria-label="ساعت">🕒</span>"#) && !status.contains("ACCESS_TIME"));
    // A way back to the chat; headings in order (h1, then h2 above the preview's h3); no «·»,
    // which Vazirmatn draws like a Persian zero, between the status and the time.
    assert!(status.contains(r#"href="/back">بازگشت به گفت‌وگو</a>"#));
    // To whom it went: the seller wrote to the buyer of this chat.
    assert!(status.contains(r#"<p id="status-recipient">به خریدار، در همین گفت‌وگو</p>"#));
    assert!(status.contains("<h2>پیامی که فرستادید</h2>"));
    assert!(!status.contains(" · "), "{status}");
}

/// A button may not carry one of the add-on's own entry links (whoever tapped it would act in
/// the sender's name), nor a caption with a bidi override: each is refused beside its field, in
/// Persian, and nothing is sent.
#[tokio::test]
async fn an_entry_link_or_a_bidi_override_on_a_button_is_refused() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let page = app.get_html("/compose").await;
    let mut fields = form_of(&page);
    fields.insert("text".into(), "بفرمایید".into());
    fields.insert("r00_caption".into(), "ورود".into());
    fields.insert("r00_icon".into(), "SEND".into());
    fields.insert("r00_kind".into(), "link".into());
    fields.insert("r00_link".into(), app.url("/s/AbCdEf123"));
    fields.insert("s00_caption".into(), "\u{202E}لغو".into());
    fields.insert("s00_icon".into(), "SEND".into());
    fields.insert("s00_kind".into(), "link".into());
    fields.insert("s00_link".into(), "https://example.com".into());
    fields.insert("action".into(), "send".into());
    let answer = post_fields(&app, fields).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text().await.unwrap();
    assert!(
        html.contains(r#"id="r00_link-error">لینک ورود به «گفت‌وگو یار» فقط برای خود شماست"#),
        "{html}"
    );
    assert!(html.contains(r#"id="s00_caption-error">نوشتهٔ دکمه نویسه‌ای پنهان دارد"#));
    assert_eq!(app.bot_messages(&conversation(1, 1)).await["count"], 0);

    // In the text it is the person's own writing, and goes; our pages show it isolated, so it
    // cannot reorder anything around it.
    let mut fields = form_of(&app.get_html("/compose").await);
    fields.insert("text".into(), "قیمت \u{202E}۱۰۰".into());
    fields.insert("action".into(), "send".into());
    let sent = post_fields(&app, fields).await;
    let id = queued_message(&assert_redirect(&sent));
    let status = app.get_html(&format!("/messages/{id}/status")).await;
    assert!(
        status.contains("<p><bdi>قیمت \u{202E}۱۰۰</bdi></p>"),
        "{status}"
    );
}

#[tokio::test]
async fn a_full_grid_says_so_instead_of_adding() {
    let app = spawn_connected_buyer(Engine::Sqlite).await;
    let mut page = app.get_html("/compose").await;
    for _ in 0..9 {
        page = tap(&app, form_of(&page), "add", "r:custom").await;
    }
    assert!(page.contains(r#"id="r22_caption""#));
    assert!(
        !page.contains(r#"value="r:custom""#),
        "no add buttons on a full grid"
    );
    let mut fields = form_of(&page);
    let full = tap(&app, fields.clone(), "add", "r:call").await;
    assert!(full.contains("جای دکمهٔ دیگری نیست"), "{full}");
    assert_eq!(full.matches(r#"_caption" name="#).count(), 9);
    // An edit the page never offers is not one: the form is checked as usual.
    fields.insert("add".into(), "x:nothing".into());
    fields.insert("action".into(), "preview".into());
    let answer = post_fields(&app, fields).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Typing is no request: while the person writes, the composer's script asks `/keepalive`, and
/// the session's 15 idle minutes start over. Without it the session ends as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keepalive_restarts_the_sessions_idle_period() {
    let app = spawn_app_on_manual_clock(Engine::Sqlite, SandboxOptions::default(), |_| {}).await;
    let conv = conversation(1, 1);
    app.connect_conversation(&conv, "buyer", BUYER_1).await;
    let token = csrf_token_at(&app.client, &app.url("/compose")).await;
    let keep_alive = async || {
        app.client
            .post(app.url("/keepalive"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap()
            .status()
    };
    let compose = async || {
        app.client
            .get(app.url("/compose"))
            .send()
            .await
            .unwrap()
            .status()
    };
    app.advance(Duration::from_secs(10 * 60));
    assert_eq!(keep_alive().await, StatusCode::NO_CONTENT);
    app.advance(Duration::from_secs(10 * 60));
    assert_eq!(
        compose().await,
        StatusCode::OK,
        "20 minutes in, 10 since the keepalive"
    );
    app.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        compose().await,
        StatusCode::UNAUTHORIZED,
        "16 idle minutes: ended"
    );
    assert_ne!(
        keep_alive().await,
        StatusCode::NO_CONTENT,
        "an ended session stays ended"
    );
}
