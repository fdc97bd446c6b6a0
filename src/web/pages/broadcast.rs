//! A broadcast's pages: the confirm step, and its live progress with each conversation that did
//! not get it. The post page's list reads its status words from here too.

use askama::Template;

use crate::{
    domain::{persian_digits, status::BroadcastStatus},
    services::{
        broadcast::{Broadcast, Confirmation, Progress, Report, settled},
        delivery::Failure,
    },
};

use super::{APP_TITLE, PreviewView, filters, tehran_date_time, tehran_time};

/// A broadcast's status in words. A cancelled one is "being cancelled" while sends that had
/// already started are still finishing, so the counts shown next to it are not final yet.
pub fn status_label(broadcast: &Broadcast, pending: i64) -> &'static str {
    let auto = broadcast.is_auto_reply();
    match broadcast.status {
        BroadcastStatus::Running if auto => "پاسخ خودکار روشن است",
        BroadcastStatus::Cancelled if auto && !broadcast.post_removed() && pending == 0 => {
            "پاسخ خودکار خاموش شد"
        }
        BroadcastStatus::Running => "در حال ارسال",
        BroadcastStatus::Paused => "متوقف: دوباره اتصال دهید",
        BroadcastStatus::Cancelled if broadcast.post_removed() => "آگهی حذف شد",
        BroadcastStatus::Cancelled if pending > 0 => "در حال لغو…",
        BroadcastStatus::Cancelled => "لغو شد",
        BroadcastStatus::Done => "تمام شد",
    }
}

/// The status badge's colour: green once done, red when it waits for the seller.
pub fn status_tone(status: BroadcastStatus) -> &'static str {
    match status {
        BroadcastStatus::Done => "success",
        BroadcastStatus::Paused => "blocked",
        BroadcastStatus::Running | BroadcastStatus::Cancelled => "",
    }
}

/// Why a conversation did not get the broadcast, in the seller's words.
fn failure_label(failure: Option<Failure>) -> &'static str {
    match failure {
        Some(Failure::RecipientRestricted) => {
            "خریدار در این گفت‌وگو پیام نمی‌پذیرد (شاید گفت‌وگو را بسته باشد)"
        }
        Some(Failure::RateLimited) => "دیوار در آن لحظه پیام بیشتری نپذیرفت",
        Some(Failure::Unavailable) => "دیوار در دسترس نبود",
        Some(Failure::Reconsent) => "اجازهٔ دیوار معتبر نبود",
        Some(Failure::Rejected) | None => "دیوار پیام را نپذیرفت",
    }
}

/// The confirm step: exactly who will get the message, and the message as each side sees it.
#[derive(Template)]
#[template(path = "pages/broadcast_confirm.html")]
pub struct BroadcastConfirmPage {
    /// The count, as the seller reads it.
    pub recipients: String,
    /// Some conversation is known: the message can go now (else only as the auto-reply).
    pub has_recipients: bool,
    /// The moment the list was taken and a digest of it: the confirm form carries both, and
    /// the broadcast goes to exactly that list (or the seller is asked again).
    pub as_of: i64,
    pub digest: String,
    /// Known conversations of the post that will not get it, and why.
    pub excluded: Option<String>,
    pub notice: Option<&'static str>,
    /// The composer's fields, carried to the confirm form.
    pub hidden: Vec<(String, String)>,
    pub idempotency_key: String,
    pub preview: PreviewView,
    pub app_title: &'static str,
}

impl From<Confirmation> for BroadcastConfirmPage {
    fn from(c: Confirmation) -> Self {
        Self {
            recipients: persian_digits(&c.recipients.to_string()),
            has_recipients: c.recipients > 0,
            as_of: c.as_of,
            digest: c.digest,
            excluded: (c.other_seller > 0).then(|| {
                persian_digits(&format!(
                    "{} گفت‌وگوی این آگهی با حساب دیگری از دیوار به‌عنوان فروشنده ثبت شده است و پیام به آن‌ها فرستاده نمی‌شود: این پیام فقط از طرف شما به گفت‌وگوهای خودتان می‌رود.",
                    c.other_seller
                ))
            }),
            notice: c.changed.then_some(
                "از وقتی این صفحه را باز کردید فهرست گفت‌وگوها تغییر کرده است. تعداد تازه را ببینید و دوباره تأیید کنید.",
            ),
            hidden: c.fields,
            idempotency_key: c.idempotency_key,
            preview: PreviewView {
                attachment: c
                    .attachment
                    .as_ref()
                    .map(|a| (a.file_name.clone(), super::megabytes(a.size))),
                ..PreviewView::of_message(&c.message).to_every_buyer()
            },
            app_title: APP_TITLE,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/broadcast.html")]
pub struct BroadcastPage {
    pub broadcast_id: String,
    /// An automatic first reply to each new buyer, not a message to those known now.
    pub auto_reply: bool,
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
    /// The browser forgets a draft it kept from the form this broadcast was started with.
    pub sent_key: String,
}

impl BroadcastPage {
    pub fn new(report: Report, now: i64) -> Self {
        let (b, p) = (&report.broadcast, &report.progress);
        let failures = report
            .failures
            .iter()
            .map(|f| {
                let what = failure_label(f.failure.as_deref().and_then(Failure::parse));
                let chat = match f.conversation_seen_at {
                    Some(seen) => {
                        format!("گفت‌وگویی که {} به فهرست آمد", tehran_date_time(seen, now))
                    }
                    None => "یکی از گفت‌وگوهای آگهی".to_string(),
                };
                persian_digits(&format!(
                    "{chat}: {what}؛ آخرین تلاش {}، پس از {} تلاش.",
                    tehran_time(f.failed_at),
                    f.attempts
                ))
            })
            .collect();
        let settled = report.settled();
        Self {
            broadcast_id: b.broadcast_id.clone(),
            auto_reply: b.is_auto_reply(),
            text: report.text.clone(),
            status: b.status.as_str().to_string(),
            status_label: status_label(b, p.pending),
            status_tone: status_tone(b.status),
            live: !settled,
            total: b.total,
            sent: p.sent,
            failed: p.failed,
            pending: p.pending,
            done: p.sent + p.failed + p.cancelled,
            cancelled_note: (b.status == BroadcastStatus::Cancelled && settled).then(|| {
                let why = if b.post_removed() {
                    "آگهی از دیوار حذف شد و ارسال متوقف شد: "
                } else {
                    ""
                };
                let report = if b.is_auto_reply() {
                    format!(
                        "تا پیش از خاموش شدن، {} خریدار تازه پاسخ خودکار گرفتند.",
                        p.sent
                    )
                } else {
                    format!(
                        "{} نفر پیش از لغو پیام را دریافت کردند و به {} نفر فرستاده نشد.",
                        p.sent, p.cancelled
                    )
                };
                persian_digits(&format!("{why}{report}"))
            }),
            failures,
            retry_offer: report
                .can_retry()
                .then(|| persian_digits(&format!("دوباره فرستادن به {} نفر", report.retryable))),
            restricted_note: restricted_note(report.restricted),
            sent_key: b.idempotency_key.clone(),
        }
    }
}

/// What the progress page's script polls.
#[derive(serde::Serialize)]
pub struct BroadcastProgress {
    pub status: BroadcastStatus,
    pub status_label: &'static str,
    pub settled: bool,
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub pending: i64,
    pub cancelled: i64,
}

impl BroadcastProgress {
    pub fn new(broadcast: &Broadcast, p: &Progress) -> Self {
        let status = broadcast.status;
        Self {
            status,
            status_label: status_label(broadcast, p.pending),
            settled: settled(broadcast, p.pending),
            total: broadcast.total,
            sent: p.sent,
            failed: p.failed,
            pending: p.pending,
            cancelled: p.cancelled,
        }
    }
}

crate::pages!(BroadcastConfirmPage, BroadcastPage);

/// The chats that refuse messages, with the verb agreeing: one person, or several.
fn restricted_note(restricted: i64) -> Option<String> {
    match restricted {
        0 => None,
        1 => Some("۱ نفر در گفت‌وگو پیام نمی‌پذیرد؛ دوباره فرستادن به او فایده‌ای ندارد.".into()),
        n => Some(persian_digits(&format!(
            "{n} نفر در گفت‌وگو پیام نمی‌پذیرند؛ دوباره فرستادن به آن‌ها فایده‌ای ندارد."
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_person_takes_a_singular_verb() {
        assert_eq!(super::restricted_note(0), None);
        assert!(
            super::restricted_note(1)
                .unwrap()
                .starts_with("۱ نفر در گفت‌وگو پیام نمی‌پذیرد؛")
        );
        assert!(
            super::restricted_note(3)
                .unwrap()
                .starts_with("۳ نفر در گفت‌وگو پیام نمی‌پذیرند؛")
        );
    }
}
