//! What the person reads when a consent does not end in a connection: each outcome of
//! `services::consent` in Persian, with what to do next.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::services::consent::{Finished, Refusal};

use super::{PageAction, render_page};

/// A Persian page that explains what happened and offers next steps.
#[derive(Template)]
#[template(path = "pages/notice.html")]
pub struct NoticePage {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: &'static str,
    /// `error`, `success` or empty.
    pub tone: &'static str,
    pub actions: Vec<PageAction>,
}

impl IntoResponse for NoticePage {
    fn into_response(self) -> Response {
        (self.status, render_page(&self)).into_response()
    }
}

fn try_again() -> Vec<PageAction> {
    vec![
        PageAction::post("دوباره امتحان کنید", "/oauth/start"),
        PageAction::link("بازگشت به دیوار", "/back"),
    ]
}

fn back() -> Vec<PageAction> {
    vec![PageAction::link("بازگشت به دیوار", "/back")]
}

fn error(
    status: StatusCode,
    title: &'static str,
    message: &'static str,
    actions: Vec<PageAction>,
) -> NoticePage {
    NoticePage {
        status,
        title,
        message,
        tone: "error",
        actions,
    }
}

impl NoticePage {
    /// The page for a callback that did not connect (`None` for [`Finished::Connected`]).
    pub fn for_outcome(outcome: &Finished) -> Option<Self> {
        Some(match outcome {
            Finished::Connected { .. } => return None,
            Finished::NoPending => error(
                StatusCode::BAD_REQUEST,
                "درخواست اجازه پیدا نشد",
                "این پاسخ به درخواستی از این مرورگر تعلق ندارد یا وقت این صفحه تمام شده است. «گفت‌وگو یار» را دوباره از دیوار باز کنید.",
                back(),
            ),
            Finished::StateMismatch => error(
                StatusCode::BAD_REQUEST,
                "پاسخ نامعتبر",
                "پاسخی که از دیوار رسید با درخواست شما جور نیست، پس آن را نپذیرفتیم. دوباره امتحان کنید.",
                try_again(),
            ),
            Finished::AppRefused => error(
                StatusCode::BAD_GATEWAY,
                "اتصال ممکن نشد",
                "دیوار درخواست اجازهٔ «گفت‌وگو یار» را نپذیرفت. این مشکل از تنظیمات «گفت‌وگو یار» است، نه از شما؛ به پشتیبانی «گفت‌وگو یار» خبر داده شد. کمی بعد دوباره امتحان کنید.",
                try_again(),
            ),
            Finished::Declined => NoticePage {
                status: StatusCode::OK,
                title: "اجازه داده نشد",
                message: "بدون اجازهٔ شما پیامی نمی‌فرستیم. اگر نظرتان عوض شد، دوباره امتحان کنید.",
                tone: "",
                actions: try_again(),
            },
            Finished::ExchangeFailed { unavailable } => error(
                StatusCode::BAD_GATEWAY,
                "اتصال ناموفق بود",
                if *unavailable {
                    "ارتباط با دیوار برقرار نشد. چند لحظهٔ دیگر دوباره امتحان کنید."
                } else {
                    "دیوار این اجازه را نپذیرفت. دوباره امتحان کنید."
                },
                try_again(),
            ),
            Finished::Refused(refusal) => Self::refused(*refusal),
        })
    }

    /// Why a consent Divar granted was not kept, or could not be asked for.
    pub fn refused(refusal: Refusal) -> Self {
        match refusal {
            Refusal::AnotherAccount => error(
                StatusCode::FORBIDDEN,
                "این لینک مال حساب دیگری است",
                "این صفحه برای حساب دیگری از دیوار باز شده بود، ولی اجازه با حسابی که الان در آن هستید داده شد. چیزی ذخیره نشد. «گفت‌وگو یار» را از گفت‌وگوی خودتان در دیوار دوباره باز کنید.",
                back(),
            ),
            Refusal::Unidentified => error(
                StatusCode::BAD_GATEWAY,
                "اتصال ناموفق بود",
                "دیوار نگفت این اجازه را چه کسی داده است، پس آن را نگه نداشتیم. چند لحظهٔ دیگر دوباره امتحان کنید.",
                try_again(),
            ),
            Refusal::NotAsked => error(
                StatusCode::BAD_GATEWAY,
                "اتصال از این‌جا ممکن نیست",
                "«گفت‌وگو یار» طوری تنظیم شده که نمی‌تواند بفهمد شما کدام حساب دیوار هستید، پس از این مسیر وصل نمی‌شود. این مشکل از تنظیمات «گفت‌وگو یار» است، نه از شما؛ به پشتیبانی آن خبر داده شد.",
                back(),
            ),
        }
    }
}
