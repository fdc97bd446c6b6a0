//! The error page: a title and what to do. Every Persian word an error says is here;
//! `web::error` picks which.

use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
}

crate::pages!(ErrorPage);

/// A title and what to do.
pub struct Words {
    pub title: &'static str,
    pub message: &'static str,
}

impl From<Words> for ErrorPage {
    fn from(words: Words) -> Self {
        Self {
            title: words.title,
            message: words.message.to_string(),
        }
    }
}

impl ErrorPage {
    /// A request that cannot be done as sent, with what to do about it.
    pub fn bad_request(message: &str) -> Self {
        Self {
            title: "درخواست نادرست",
            message: message.to_string(),
        }
    }

    /// A send refused by one of the person's limits (`services::limits`): which, and when to
    /// try again. What they queued before still goes, and their draft stays on the phone.
    pub fn limit(hit: &crate::services::limits::LimitHit) -> Self {
        use crate::services::limits::LimitHit;
        let kept = "آنچه نوشته بودید روی همین گوشی نگه داشته شده است.";
        let message = match hit {
            LimitHit::Submits { retry_after } => format!(
                "در مدت کوتاهی پیام‌های زیادی فرستادید. {} ثانیهٔ دیگر دوباره بفرستید؛ {kept}",
                retry_after.as_secs_f64().ceil() as u64
            ),
            LimitHit::QueuedSends { limit } => format!(
                "{limit} پیام شما هنوز در صف ارسال است و همه فرستاده می‌شوند. چند دقیقهٔ دیگر، وقتی بخشی از آن‌ها رفت، دوباره بفرستید؛ {kept}"
            ),
            LimitHit::RunningBroadcasts { limit } => format!(
                "{limit} پیام همگانی شما هنوز در حال ارسال است. وقتی یکی تمام شد یا لغوش کردید، پیام تازه را بفرستید؛ {kept}"
            ),
            LimitHit::LargerThanADay { limit, recipients } => format!(
                "این پیام برای {recipients} نفر است و از سقف {limit} پیام در ۲۴ ساعت بیشتر است؛ با این سقف فرستاده نمی‌شود. به مدیر این افزونه بگویید یا پیام را در چند گفت‌وگو جدا بفرستید."
            ),
            LimitHit::SendsPerDay { limit, again_at } => format!(
                "در ۲۴ ساعت گذشته به سقف {limit} پیام رسیده‌اید. از ساعت {} به وقت تهران دوباره می‌توانید بفرستید؛ {kept}",
                super::tehran_time(*again_at)
            ),
        };
        Self {
            title: "فعلاً پیام بیشتری فرستاده نمی‌شود",
            message: super::persian_digits(&message),
        }
    }

    pub fn too_many_requests(seconds: u64) -> Self {
        Self {
            title: "درخواست‌ها زیاد شد",
            message: super::persian_digits(&format!(
                "از این دستگاه در مدت کوتاهی درخواست‌های زیادی رسید. {seconds} ثانیهٔ دیگر دوباره امتحان کنید."
            )),
        }
    }
}

pub const NOT_FOUND: Words = Words {
    title: "صفحه پیدا نشد",
    message: "صفحه‌ای که باز کردید وجود ندارد یا دیگر در دسترس نیست.",
};
pub const INCOMPLETE: Words = Words {
    title: "درخواست نادرست",
    message: "آنچه فرستادید کامل نرسید. دوباره بفرستید.",
};
pub const NO_VISIT: Words = Words {
    title: "این صفحه دیگر باز نیست",
    message: "ممکن است مدتی گذشته باشد. «گفت‌وگو یار» را دوباره از داخل گفت‌وگو در دیوار باز کنید. اگر پیامی می‌نوشتید، روی همین گوشی نگه داشته شده و آن‌جا دوباره می‌بینیدش.",
};
pub const NOT_IN_CHAT: Words = Words {
    title: "این صفحه از این‌جا باز نمی‌شود",
    message: "این صفحه برای یک گفت‌وگو یا آگهی در دیوار است. «گفت‌وگو یار» را از داخل همان گفت‌وگو یا آگهی در دیوار باز کنید.",
};
pub const NOT_SIGNED_IN: Words = Words {
    title: "وارد حساب دیوار نشده‌اید",
    message: "اول وارد حساب دیوار شوید، سپس «گفت‌وگو یار» را دوباره باز کنید.",
};
pub const NOT_POST_OWNER: Words = Words {
    title: "فقط صاحب آگهی",
    message: "این صفحه فقط برای صاحب همان آگهی است. شما می‌توانید در گفت‌وگوی خودتان پیام بفرستید.",
};
pub const LINK_USED: Words = Words {
    title: "این لینک قبلاً باز شده است",
    message: "برای امنیت شما هر لینک فقط یک بار کار می‌کند. «گفت‌وگو یار» را دوباره از دیوار باز کنید.",
};
pub const LINK_EXPIRED: Words = Words {
    title: "وقت این لینک تمام شده است",
    message: "لینک ورود فقط چند دقیقه کار می‌کند. «گفت‌وگو یار» را دوباره از دیوار باز کنید.",
};
pub const FORBIDDEN: Words = Words {
    title: "این درخواست پذیرفته نشد",
    message: "این درخواست از صفحه‌ای بیرون از «گفت‌وگو یار» آمده بود یا صفحه‌ای که از آن فرستادید قدیمی شده است، پس کاری انجام نشد. «گفت‌وگو یار» را از داخل گفت‌وگو در دیوار دوباره باز کنید.",
};
pub const TOO_LARGE: Words = Words {
    title: "نوشته‌ها بیش از اندازه بلند است",
    message: "چیزی ذخیره یا فرستاده نشد. متن کوتاه‌تری بنویسید و دوباره امتحان کنید.",
};
pub const UNAVAILABLE: Words = Words {
    title: "سرویس لحظه‌ای در دسترس نیست",
    message: "چیزی از دست نرفت. چند ثانیهٔ دیگر دوباره امتحان کنید.",
};
pub const UNEXPECTED: Words = Words {
    title: "خطای غیرمنتظره",
    message: "مشکلی در سرور پیش آمد. چند لحظهٔ دیگر دوباره امتحان کنید.",
};

// What a bad request says (`AppError::BadRequest`).
pub const SEND_INCOMPLETE: &str = "صفحه کامل نرسید؛ آن را دوباره باز کنید و پیام را بفرستید.";
pub const BROADCAST_INCOMPLETE: &str = "صفحه کامل نرسید؛ دوباره شروع کنید.";
pub const INVALID_MESSAGE: &str = "پیام معتبر نیست؛ دوباره آن را بنویسید.";
pub const NO_CONVERSATIONS: &str = "هنوز گفت‌وگویی از این آگهی نمی‌شناسیم.";
pub const POST_REMOVED: &str =
    "این آگهی از دیوار حذف شده است؛ پیام همگانی تازه‌ای برای آن فرستاده نمی‌شود.";
