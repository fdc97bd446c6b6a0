//! Every form of the add-on, sent with one bad field: the page comes back (422) with the
//! problem in Persian right under that field, which says so to assistive technology, and with
//! what the person typed kept.

use reqwest::StatusCode;

use crate::helpers::*;

/// The problem of `field` sits right under it, inside the same field box, and the field points
/// at it.
fn assert_problem_beside(html: &str, field: &str, problem: &str) {
    let (tag, after) = html
        .split_once(&format!(r#"id="{field}""#))
        .and_then(|(_, rest)| rest.split_once('>'))
        .unwrap_or_else(|| panic!("no field {field}"));
    assert!(
        tag.contains(r#"aria-invalid="true""#)
            && tag.contains(&format!(r#"aria-describedby="{field}-error""#)),
        "{field}: {tag}"
    );
    let field_box = after.split("</div>").next().unwrap();
    let note = field_box
        .split_once(&format!(r#"<p class="error-text" id="{field}-error">"#))
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(note, _)| note)
        .unwrap_or_else(|| panic!("no problem under {field}: {field_box}"));
    assert!(note.contains(problem), "{field}: «{note}»");
}

/// The value typed into `field` is back in it.
fn assert_kept(html: &str, field: &str, typed: &str) {
    let after = html
        .split(&format!(r#"id="{field}""#))
        .nth(1)
        .unwrap_or_else(|| panic!("no field {field}"));
    let (tag, rest) = after.split_once('>').unwrap();
    let kept = tag.contains(&format!(r#"value="{typed}""#)) || rest.starts_with(typed);
    assert!(kept, "{field} keeps «{typed}»");
}

async fn the_conversation_composer_keeps_what_was_typed(engine: Engine) {
    let app = spawn_connected_buyer(engine).await;
    let key = app.idempotency_key().await;
    let answer = app
        .post_compose(&[
            ("idempotency_key", &key),
            ("text", "قیمت آخر چند است؟"),
            ("r00_caption", "نقشه"),
            ("r00_icon", "MAP_VIEW"),
            ("r00_kind", "link"),
            ("r00_link", "ftp://x"),
        ])
        .await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text().await.unwrap();
    assert_problem_beside(&html, "r00_link", "این لینک درست نیست");
    assert_kept(&html, "text", "قیمت آخر چند است؟");
    assert_kept(&html, "r00_caption", "نقشه");
    assert_kept(&html, "r00_link", "ftp://x");
}
crate::both_engines!(
    conversation_composer,
    the_conversation_composer_keeps_what_was_typed
);

async fn saving_a_template_without_a_name_keeps_the_draft(engine: Engine) {
    let app = spawn_connected_buyer(engine).await;
    let answer = app
        .post_compose(&[
            ("action", "save_template"),
            ("template_name", "  "),
            ("text", "بازدید شنبه ساعت ۵"),
        ])
        .await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text().await.unwrap();
    assert_problem_beside(&html, "template_name", "نام قالب را بنویسید");
    assert_kept(&html, "text", "بازدید شنبه ساعت ۵");
    assert_eq!(count(&app, "templates").await, 0);
}
crate::both_engines!(
    template_name,
    saving_a_template_without_a_name_keeps_the_draft
);

async fn the_post_wide_composer_keeps_what_was_typed(engine: Engine) {
    let app = spawn_app(engine).await;
    app.open_post_as_owner(POST_1, SELLER_1).await;
    let answer = app
        .submit_form(
            "/broadcasts/new",
            &[
                ("text", "فروخته شد"),
                ("r00_caption", ""),
                ("r00_icon", "CALL"),
                ("r00_kind", "link"),
                ("r00_link", "wa.me/98912"),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text().await.unwrap();
    assert_problem_beside(&html, "r00_caption", "نوشتهٔ روی دکمه را بنویسید");
    assert_kept(&html, "text", "فروخته شد");
    assert_kept(&html, "r00_link", "wa.me/98912");
    assert_eq!(count(&app, "broadcasts").await, 0);
}
crate::both_engines!(
    post_wide_composer,
    the_post_wide_composer_keeps_what_was_typed
);

/// The confirm step carries the composer's fields hidden; one altered on the way (a message the
/// composer would have refused) starts nothing and says so in Persian.
async fn an_altered_confirm_form_starts_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    app.open_post_as_owner(POST_1, SELLER_1).await;
    let answer = app
        .submit_form(
            "/broadcasts",
            &[
                ("idempotency_key", "00000000-0000-4000-8000-000000000001"),
                ("text", ""),
                ("as_of", "0"),
                ("digest", "x"),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(answer.text().await.unwrap().contains("پیام معتبر نیست"));
    assert_eq!(count(&app, "broadcasts").await, 0);
}
crate::both_engines!(confirm_form, an_altered_confirm_form_starts_nothing);
