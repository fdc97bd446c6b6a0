//! A sent message's status, on its own page and in the sender's history, in the sender's words.
//! All of that wording is here, so a fork changes it in one place.

use askama::Template;

use crate::{
    domain::{UserSide, status::MessageStatus},
    services::{delivery::Failure, send::SentMessage},
};

use super::{APP_TITLE, PreviewView, tehran_time};

/// How a message's status reads to the person who sent it.
pub struct StatusText {
    pub label: &'static str,
    pub tone: &'static str,
    pub reason: Option<&'static str>,
    /// Divar may take it if tried again later.
    pub can_resend: bool,
    /// Sending needs the person's consent again (then it goes out by itself).
    pub needs_reconnect: bool,
}

impl StatusText {
    pub fn of(message: &SentMessage) -> Self {
        let failure = message.failure;
        let quiet = |label, tone| StatusText {
            label,
            tone,
            reason: None,
            can_resend: false,
            needs_reconnect: false,
        };
        match message.status {
            MessageStatus::Sent => quiet("فرستاده شد", "success"),
            MessageStatus::Sending => quiet("در حال ارسال…", ""),
            MessageStatus::Failed => StatusText {
                label: "فرستاده نشد",
                tone: "blocked",
                reason: Some(match failure {
                    Some(Failure::RecipientRestricted) => {
                        "این شخص در این گفت‌وگو نمی‌تواند پیام دریافت کند (شاید گفت‌وگو را بسته باشد)؛ فرستادن دوباره فایده‌ای ندارد."
                    }
                    Some(Failure::Reconsent) => {
                        "اجازهٔ دیوار دیگر معتبر نیست. دوباره اتصال دهید تا پیام خودکار فرستاده شود."
                    }
                    Some(Failure::RateLimited) => {
                        "دیوار موقتاً پیام بیشتری نمی‌پذیرفت. یکی دو دقیقهٔ دیگر دوباره بفرستید."
                    }
                    Some(Failure::Unavailable) => "دیوار در دسترس نبود. کمی بعد دوباره بفرستید.",
                    Some(Failure::Rejected) | None => "دیوار این پیام را نپذیرفت.",
                }),
                can_resend: failure.is_some_and(Failure::is_transient),
                needs_reconnect: failure == Some(Failure::Reconsent),
            },
        }
    }
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
    /// To whom it went, in the sender's words (Divar gives the add-on no names or post titles).
    pub recipient: &'static str,
    pub time: String,
    pub preview: PreviewView,
    pub app_title: &'static str,
    /// The browser forgets a draft it kept from the form this message was sent with (the
    /// form's idempotency key): the message was accepted.
    pub sent_key: String,
}

impl MessageStatusPage {
    /// `again`: the same form was submitted once more. "Sent before" is said only of a message
    /// Divar took; otherwise the live status speaks.
    pub fn new(message: SentMessage, sender: Option<UserSide>, again: bool) -> Self {
        let text = StatusText::of(&message);
        let notice = again.then_some(match message.status {
            MessageStatus::Sent => "این پیام قبلاً فرستاده شده بود؛ دوباره فرستاده نشد.",
            MessageStatus::Sending => {
                "این پیام را قبلاً ثبت کرده بودید و در حال ارسال است؛ دوباره ثبت نشد."
            }
            MessageStatus::Failed => "این پیام را قبلاً ثبت کرده بودید؛ وضعیتش را این‌جا می‌بینید.",
        });
        Self {
            sending: message.status == MessageStatus::Sending,
            label: text.label,
            tone: text.tone,
            reason: text.reason,
            can_resend: text.can_resend,
            needs_reconnect: text.needs_reconnect,
            notice,
            recipient: recipient(sender),
            time: tehran_time(message.created_at),
            preview: PreviewView::of_body(&message.body),
            app_title: APP_TITLE,
            sent_key: message.idempotency_key,
            message_id: message.id,
        }
    }
}

/// The other side of the chat, as the sender knows them.
fn recipient(sender: Option<UserSide>) -> &'static str {
    match sender {
        Some(UserSide::Buyer) => "به فروشندهٔ آگهی، در همین گفت‌وگو",
        Some(UserSide::Seller) => "به خریدار، در همین گفت‌وگو",
        None => "به طرف مقابل، در همین گفت‌وگو",
    }
}

/// What the status page's script polls.
#[derive(serde::Serialize)]
pub struct MessageProgress {
    pub status: MessageStatus,
    pub label: &'static str,
    pub reason: Option<&'static str>,
}

impl From<&SentMessage> for MessageProgress {
    fn from(message: &SentMessage) -> Self {
        let text = StatusText::of(message);
        Self {
            status: message.status,
            label: text.label,
            reason: text.reason,
        }
    }
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

impl HistoryPage {
    pub fn new(messages: Vec<SentMessage>) -> Self {
        let row = |m: SentMessage| {
            let text = StatusText::of(&m);
            HistoryRow {
                text: m.body.text,
                time: tehran_time(m.updated_at),
                message_id: m.id,
                status: text.label,
                status_tone: text.tone,
                reason: text.reason,
            }
        };
        Self {
            rows: messages.into_iter().map(row).collect(),
        }
    }
}

crate::pages!(MessageStatusPage, HistoryPage);
