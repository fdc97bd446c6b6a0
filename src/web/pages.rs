//! One askama struct per page, and the one place that turns a template into a response.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::domain::{ConversationId, PostToken};

/// Renders a page; a template error becomes a plain 500 and is logged, never shown.
pub fn render_page(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "خطای غیرمنتظره",
            )
                .into_response()
        }
    }
}

/// Each page answers as itself, so a handler can return it: `Ok(HistoryPage { … })`. A new page
/// is one template, its struct below, and its name added here.
macro_rules! pages {
    ($($page:ty),* $(,)?) => {$(
        impl IntoResponse for $page {
            fn into_response(self) -> Response {
                render_page(&self)
            }
        }
    )*};
}

pages!(
    ErrorPage,
    HomePage,
    NoticePage,
    LandingPage,
    ComposePage,
    HistoryPage,
    MessageStatusPage,
    MessagePage,
    PostPage,
    BroadcastConfirmPage,
    BroadcastPage,
);

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(title: &str, message: &str) -> Self {
        Self {
            title: title.into(),
            message: message.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/home.html")]
pub struct HomePage {
    pub post_token: Option<PostToken>,
}

/// A link or a one-button form on a page, for "what next".
pub struct PageAction {
    pub label: String,
    pub href: String,
    /// Submit as a POST form (state-changing actions) instead of a link.
    pub post: bool,
    pub primary: bool,
}

impl PageAction {
    pub fn link(label: &str, href: &str) -> Self {
        Self {
            label: label.into(),
            href: href.into(),
            post: false,
            primary: false,
        }
    }

    pub fn post(label: &str, href: &str) -> Self {
        Self {
            label: label.into(),
            href: href.into(),
            post: true,
            primary: true,
        }
    }
}

/// A Persian page that explains what happened and offers next steps (denied consent, a
/// failed token exchange, a message that could not be sent…).
#[derive(Template)]
#[template(path = "pages/notice.html")]
pub struct NoticePage {
    pub title: String,
    pub message: String,
    /// `error`, `success` or empty.
    pub tone: &'static str,
    pub actions: Vec<PageAction>,
}

#[derive(Template)]
#[template(path = "pages/landing.html")]
pub struct LandingPage {
    pub conversation_id: ConversationId,
    pub post_token: Option<PostToken>,
    /// `seller` or `buyer`.
    pub side: Option<&'static str>,
    pub connected: bool,
    /// The post's owner may also message every conversation of the post.
    pub seller: bool,
}

pub struct SlotView {
    /// Field name prefix, e.g. `s01`.
    pub prefix: String,
    pub label: String,
    pub caption: String,
    /// Divar's icon name, upper case.
    pub icon: String,
    /// The icon, when it is not one of the named ones (from the full list, or typed).
    pub other_icon: Option<String>,
    pub kind: String,
    pub link: String,
    pub data: String,
    /// Each field's problem, by part (`caption`, `icon`, `kind`, `link`, `data`): shown beside it.
    pub errors: std::collections::HashMap<&'static str, String>,
}

/// One side's buttons: only those in use, and the ready-made ones to add.
pub struct GridView {
    /// `s` or `r`: the form's prefix for this side.
    pub side: char,
    pub slots: Vec<SlotView>,
    pub presets: Vec<&'static crate::domain::button_kit::Preset>,
    /// No room for another button.
    pub full: bool,
    /// Why the last «افزودن» did nothing.
    pub problem: Option<String>,
}

pub struct PreviewButton {
    pub caption: String,
    pub icon: String,
}

pub struct PreviewView {
    pub text: String,
    pub sender_rows: Vec<Vec<PreviewButton>>,
    pub receiver_rows: Vec<Vec<PreviewButton>>,
}

pub struct TemplateView {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "pages/compose.html")]
pub struct ComposePage {
    pub idempotency_key: String,
    pub text: String,
    pub text_error: Option<String>,
    pub max_text: usize,
    pub grids: Vec<GridView>,
    /// Where the composer's script loads the icon list from (a cached asset).
    pub icons_url: String,
    pub templates: Vec<TemplateView>,
    pub template_name: String,
    pub template_error: Option<String>,
    pub notice: Option<String>,
    /// How many fields need fixing (the banner says so, truthfully).
    pub error_count: usize,
    /// The id of the field focused when the page opens: the first that needs fixing, else the
    /// one a button just added asks for.
    pub focus: String,
    pub preview: Option<PreviewView>,
    pub app_title: &'static str,
    /// Composing for every conversation of a post: the send button leads to a confirm step.
    pub broadcast: bool,
    pub form_action: &'static str,
}

pub struct HistoryRow {
    pub message_id: String,
    pub text: String,
    pub status: &'static str,
    pub status_tone: &'static str,
    pub reason: Option<&'static str>,
    pub time: String,
}

#[derive(Template)]
#[template(path = "pages/history.html")]
pub struct HistoryPage {
    pub rows: Vec<HistoryRow>,
}

/// A message's live status, where every send leads.
#[derive(Template)]
#[template(path = "pages/message_status.html")]
pub struct MessageStatusPage {
    pub message_id: String,
    pub sending: bool,
    pub label: &'static str,
    pub tone: &'static str,
    pub reason: Option<&'static str>,
    pub can_resend: bool,
    pub needs_reconnect: bool,
    pub notice: Option<&'static str>,
    pub time: String,
    pub preview: PreviewView,
    pub app_title: &'static str,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct MessagePage {
    /// The caption of the button that brought the person here, when it is known.
    pub tapped: Option<String>,
    /// The person is the message's sender (else the other side of the conversation).
    pub mine: bool,
    pub text: String,
    /// The buttons under the message as this person sees them.
    pub rows: Vec<Vec<PreviewButton>>,
    /// The send's status, for its sender only.
    pub status: Option<&'static str>,
    pub time: String,
    /// The data of the button that brought the person here, as `key: value` lines.
    pub clicked: Vec<(String, String)>,
}

/// Tehran wall-clock time (UTC+03:30; no daylight saving since 2022) in Persian digits.
pub fn tehran_time(epoch_ms: i64) -> String {
    let seconds = (epoch_ms / 1000 + 12_600).rem_euclid(86_400);
    persian_digits(&format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60))
}

/// When, relative to `now`'s day in Tehran: «امروز ۱۴:۳۰», «دیروز ۰۹:۱۵», «۳ روز پیش ۱۸:۰۰»
/// (no calendar to get wrong: Divar's users read Solar Hijri dates).
pub fn tehran_date_time(epoch_ms: i64, now: i64) -> String {
    let day = |ms: i64| (ms / 1000 + 12_600).div_euclid(86_400);
    let days_ago = day(now) - day(epoch_ms);
    let when = match days_ago {
        ..=0 => "امروز".to_string(),
        1 => "دیروز".to_string(),
        n => persian_digits(&format!("{n} روز پیش")),
    };
    format!("{when} {}", tehran_time(epoch_ms))
}

/// Template filters: `{{ n|fa }}` writes a number (or any text) with Persian digits.
mod filters {
    pub fn fa<T: std::fmt::Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::persian_digits(&value.to_string()))
    }
}

pub use crate::domain::persian_digits;

pub struct BroadcastRow {
    pub broadcast_id: String,
    pub text: String,
    pub status: &'static str,
    pub tone: &'static str,
    pub sent: i64,
    pub failed: i64,
    pub total: i64,
    pub time: String,
}

#[derive(Template)]
#[template(path = "pages/post.html")]
pub struct PostPage {
    pub post_token: PostToken,
    pub connected: bool,
    pub conversation_count: usize,
    pub last_activity: Option<String>,
    pub broadcasts: Vec<BroadcastRow>,
}

#[derive(Template)]
#[template(path = "pages/broadcast_confirm.html")]
pub struct BroadcastConfirmPage {
    /// The count, as the seller reads it.
    pub recipients: String,
    /// The moment the list was taken and a digest of it: the confirm form carries both, and
    /// the broadcast goes to exactly that list (or the seller is asked again).
    pub as_of: i64,
    pub digest: String,
    /// Known conversations of the post that will not get it, and why.
    pub excluded: Option<String>,
    pub notice: Option<&'static str>,
    /// The composer's fields, carried to the confirm form.
    pub hidden: Vec<(String, String)>,
    pub preview: PreviewView,
    pub app_title: &'static str,
}

#[derive(Template)]
#[template(path = "pages/broadcast.html")]
pub struct BroadcastPage {
    pub broadcast_id: String,
    pub text: String,
    pub status: String,
    pub status_label: &'static str,
    pub status_tone: &'static str,
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub pending: i64,
    pub done: i64,
    /// Counts may still change: the page keeps polling.
    pub live: bool,
    /// Once a cancelled broadcast has settled: who got it before the cancel.
    pub cancelled_note: Option<String>,
    /// Each conversation that did not get it: what happened, and when.
    pub failures: Vec<String>,
    /// The retry button's label, when some failed conversations may still be reached.
    pub retry_offer: Option<String>,
    pub restricted_note: Option<String>,
}
