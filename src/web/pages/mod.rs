//! The pages: one file each, holding the page's struct (the data its template shows) and every
//! Persian word the page's Rust side says, so a page's wording lives in its template and its
//! file. Pieces more than one page shows are here.

pub mod availability;
pub mod broadcast;
pub mod compose;
pub mod consent;
pub mod error;
pub mod home;
pub mod landing;
pub mod message;
pub mod message_status;
pub mod post;
pub mod privacy;

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::domain::{compose::OutgoingMessage, message::SentBody};

pub use crate::domain::persian_digits;

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

/// Makes each listed page answer as itself, so a handler can return it: `Ok(HistoryPage {…})`.
#[macro_export]
macro_rules! pages {
    ($($page:ty),* $(,)?) => {$(
        impl axum::response::IntoResponse for $page {
            fn into_response(self) -> axum::response::Response {
                $crate::web::pages::render_page(&self)
            }
        }
    )*};
}

/// The add-on's name as the pages and the chat show it.
pub const APP_TITLE: &str = "گفت‌وگو یار";

/// A link or a one-button form on a page, for "what next".
pub struct PageAction {
    pub label: &'static str,
    pub href: &'static str,
    /// Submit as a POST form (state-changing actions) instead of a link.
    pub post: bool,
    pub primary: bool,
}

impl PageAction {
    pub fn link(label: &'static str, href: &'static str) -> Self {
        Self {
            label,
            href,
            post: false,
            primary: false,
        }
    }

    pub fn post(label: &'static str, href: &'static str) -> Self {
        Self {
            label,
            href,
            post: true,
            primary: true,
        }
    }
}

pub struct PreviewButton {
    pub caption: String,
    /// The icon's picture, and its Persian name for screen readers.
    pub icon: &'static str,
    pub icon_name: &'static str,
}

impl PreviewButton {
    fn new(caption: &str, icon: &str) -> Self {
        let (icon, icon_name) = crate::domain::button_kit::icon_shown(icon);
        Self {
            caption: caption.to_string(),
            icon,
            icon_name,
        }
    }
}

/// A message as the chat shows it to each side (`partials/preview.html`).
pub struct PreviewView {
    pub text: String,
    pub sender_rows: Vec<Vec<PreviewButton>>,
    pub receiver_rows: Vec<Vec<PreviewButton>>,
    /// The photo or file the message carries: its name, and its size as a person reads it.
    pub attachment: Option<(String, String)>,
    /// Whose view the second bubble is: the other side, or each buyer of a post-wide message.
    pub theirs_title: &'static str,
}

pub(crate) const THEIRS_ONE: &str = "آنچه طرف مقابل می‌بیند";
pub(crate) const THEIRS_EACH_BUYER: &str = "آنچه هر خریدار می‌بیند";

/// A file's size in megabytes, in Persian digits: «۰٫۳ مگابایت». Its name is shown apart from
/// it, isolated, so a Latin name does not turn the Persian words around.
pub fn megabytes(size: u64) -> String {
    let tenths = size.div_ceil(100_000);
    persian_digits(&format!("{}٫{} مگابایت", tenths / 10, tenths % 10))
}

impl PreviewView {
    pub fn of_message(message: &OutgoingMessage) -> Self {
        let rows = |grid: &crate::domain::compose::ButtonGrid| {
            grid.rows()
                .iter()
                .map(|row| {
                    let button = |b: &crate::domain::compose::Button| {
                        PreviewButton::new(&b.caption, &b.icon)
                    };
                    row.iter().map(button).collect()
                })
                .collect()
        };
        Self {
            text: message.text.clone(),
            sender_rows: rows(&message.sender_buttons),
            receiver_rows: rows(&message.receiver_buttons),
            attachment: None,
            theirs_title: THEIRS_ONE,
        }
    }

    /// A post-wide message: many buyers see it, each their own copy.
    pub fn to_every_buyer(mut self) -> Self {
        self.theirs_title = THEIRS_EACH_BUYER;
        self
    }

    pub fn of_body(body: &SentBody) -> Self {
        let rows = |grid: &[Vec<(String, String)>]| {
            grid.iter()
                .map(|row| {
                    let button =
                        |(caption, icon): &(String, String)| PreviewButton::new(caption, icon);
                    row.iter().map(button).collect()
                })
                .collect()
        };
        Self {
            text: body.text.clone(),
            sender_rows: rows(&body.sender_rows),
            receiver_rows: rows(&body.receiver_rows),
            attachment: body
                .attachment
                .as_ref()
                .map(|a| (a.file_name.clone(), megabytes(a.size))),
            theirs_title: THEIRS_ONE,
        }
    }
}

/// Tehran wall-clock time (UTC+03:30; no daylight saving since 2022) in Persian digits.
pub fn tehran_time(epoch_ms: i64) -> String {
    let seconds = (epoch_ms / 1000 + 12_600).rem_euclid(86_400);
    persian_digits(&format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60))
}

/// When, relative to `now` in Tehran: «امروز ۱۴:۳۰», «دیروز ۰۹:۱۵», «۳ روز پیش ۱۸:۰۰»
/// (no calendar to get wrong: Divar's users read Solar Hijri dates).
pub fn tehran_date_time(epoch_ms: i64, now: i64) -> String {
    let day = |ms: i64| (ms / 1000 + 12_600).div_euclid(86_400);
    let when = match day(now) - day(epoch_ms) {
        ..=0 => "امروز".to_string(),
        1 => "دیروز".to_string(),
        n => persian_digits(&format!("{n} روز پیش")),
    };
    format!("{when} {}", tehran_time(epoch_ms))
}

/// Template filters: `{{ n|fa }}` writes a number (or any text) with Persian digits.
pub(crate) mod filters {
    pub fn fa<T: std::fmt::Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(super::persian_digits(&value.to_string()))
    }
}
