//! The composer page (to one conversation or to every conversation of a post), and what it says
//! about each problem of the form.

use std::collections::HashMap;

use askama::Template;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kenar::upload::MediaKind;

use crate::{
    domain::{
        button_kit::{self, Preset},
        compose::{
            Attachment, FieldErrors, GRID_COLS, GRID_ROWS, MAX_CAPTION_CHARS, MAX_DATA_PAIRS,
            MAX_TEXT_CHARS, Part, Problem, Side, Slot, Writer,
        },
        persian_digits,
    },
    services::{Catalog, compose::Draft, templates::TemplateSummary},
};

use super::{APP_TITLE, PreviewView, filters, render_page};

/// Notices the composer shows after a redirect (`/compose?notice=…`).
pub fn notice(key: &str) -> Option<&'static str> {
    match key {
        "template_saved" => Some("قالب ذخیره شد."),
        "template_deleted" => Some("قالب حذف شد."),
        _ => None,
    }
}

/// What the person reads under a field with a problem.
fn say(problem: &Problem) -> String {
    let text = match problem {
        Problem::TextMissing => "متن پیام را بنویسید.".to_string(),
        Problem::TextTooLong => format!("متن پیام نباید بیشتر از {MAX_TEXT_CHARS} حرف باشد."),
        Problem::CaptionMissing => "نوشتهٔ روی دکمه را بنویسید.".to_string(),
        Problem::CaptionTooLong => {
            format!("نوشتهٔ دکمه نباید بیشتر از {MAX_CAPTION_CHARS} حرف باشد.")
        }
        Problem::IconUnknown => "یکی از نمادهای فهرست را انتخاب کنید.".to_string(),
        Problem::KindMissing => "انتخاب کنید با زدن دکمه چه شود.".to_string(),
        Problem::NoPost => "این گفت‌وگو به آگهی‌ای وصل نیست؛ دکمهٔ آگهی اینجا کار نمی‌کند.".to_string(),
        Problem::LinkMissing => "لینکی را که باید باز شود بنویسید.".to_string(),
        Problem::LinkIsPhone => {
            "دکمه نمی‌تواند شماره بگیرد؛ لینک یک صفحهٔ وب بنویسید (مثلاً wa.me/98912…).".to_string()
        }
        Problem::LinkInvalid => "این لینک درست نیست؛ لینک کامل را از مرورگر کپی کنید.".to_string(),
        Problem::LinkToEntry => "لینک ورود به «گفت‌وگو یار» فقط برای خود شماست و روی دکمه نمی‌رود؛ هر کس آن را بزند به جای شما وارد می‌شود.".to_string(),
        Problem::CaptionBidi => "نوشتهٔ دکمه نویسه‌ای پنهان دارد که ترتیب حروف را به هم می‌زند؛ آن را دوباره تایپ کنید.".to_string(),
        Problem::DataLine(line) => format!("هر سطر باید به شکل کلید=مقدار باشد: «{line}»"),
        Problem::DataKey(key) => {
            format!("کلید «{key}» مجاز نیست (حروف و ارقام انگلیسی، _ و -؛ نه kc_).")
        }
        Problem::DataTooMany => format!("حداکثر {MAX_DATA_PAIRS} جفت کلید و مقدار."),
        Problem::TemplateName => "نام قالب را بنویسید (تا ۶۰ حرف).".to_string(),
        Problem::MediaType => {
            "این نوع فایل در گفت‌وگوی دیوار فرستاده نمی‌شود؛ عکس (PNG یا JPG) یا فایل PDF، Word، Excel یا PowerPoint انتخاب کنید.".to_string()
        }
        Problem::MediaTooLarge => "این فایل بزرگ‌تر از ۵ مگابایت است؛ فایل کوچک‌تری انتخاب کنید.".to_string(),
        Problem::MediaUnavailable => {
            "دیوار الان فایل را نگرفت؛ چند لحظهٔ دیگر دوباره انتخاب و ارسال کنید.".to_string()
        }
        Problem::TemplateTooLarge => {
            "این قالب بیش از اندازه بزرگ است و ذخیره نشد؛ متن یا دکمه‌ها را کوتاه‌تر کنید."
                .to_string()
        }
        Problem::TemplatesFull => format!(
            "شما {} قالب ذخیره کرده‌اید که بیشترین تعداد است. برای ذخیرهٔ این یکی، قالبی را که لازم ندارید حذف کنید.",
            crate::services::templates::MAX_TEMPLATES_PER_USER
        ),
    };
    persian_digits(&text)
}

fn grid_full() -> String {
    persian_digits(&format!(
        "جای دکمهٔ دیگری نیست: هر طرف حداکثر {} دکمه دارد. یکی را حذف کنید.",
        GRID_ROWS * GRID_COLS
    ))
}

pub struct SlotView {
    /// Field name prefix, e.g. `s01`.
    pub prefix: String,
    pub label: String,
    pub caption: String,
    /// Divar's icon name, upper case.
    pub icon: String,
    /// The icon, when it is not one of those offered (from a template, or another tool).
    pub other_icon: Option<String>,
    pub kind: String,
    pub link: String,
    pub data: String,
    /// Each field's problem, by part (`caption`, `icon`, `kind`, `link`, `data`): shown beside it.
    pub errors: HashMap<&'static str, String>,
    /// Its editor shows: a button just added, one with a problem, or one not yet filled in. A
    /// finished button folds to one line (its icon and caption), so four fit on a phone.
    pub open: bool,
    /// The icon's picture for the folded line.
    pub glyph: &'static str,
}

/// One side's buttons: only those in use, and the ready-made ones to add.
pub struct GridView {
    /// `s` or `r`: the form's prefix for this side.
    pub side: char,
    pub slots: Vec<SlotView>,
    pub presets: Vec<&'static Preset>,
    /// No room for another button.
    pub full: bool,
    /// Why the last «افزودن» did nothing.
    pub problem: Option<String>,
}

/// A feature's page a button can open: the `kind` option's value and the page's title.
pub struct PageKind {
    pub value: String,
    pub title: &'static str,
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
    pub page_kinds: Vec<PageKind>,
    /// Features' pages offered to this writer: `(title, path)`.
    pub links: Vec<(&'static str, &'static str)>,
    /// Where the composer's script loads the icon list from (a cached asset).
    pub templates: Vec<TemplateView>,
    pub template_name: String,
    pub template_error: Option<String>,
    pub notice: Option<&'static str>,
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
    /// The photo or file already attached: carried by hidden fields, named on the page.
    pub attachment: Option<Attachment>,
    pub attachment_size: Option<String>,
    pub media_error: Option<String>,
    /// The file picker's `accept`: the photo and file formats Divar's chat takes.
    pub media_accept: String,
    /// The largest file taken, and what the page says of a larger one as soon as it is chosen.
    pub media_max_bytes: u64,
    pub media_too_large: String,
    /// The advanced settings show: a button's data has a problem.
    pub show_advanced: bool,
    /// The live preview's title for the other side's bubble (compose.js reads it).
    pub theirs_title: &'static str,
    /// Where the browser keeps the unsent draft (`Writer::draft_key`).
    pub draft_key: String,
    /// A draft kept in the browser is put back: the composer opened afresh, not a form
    /// answered after a submit, nor a template chosen.
    pub restore_draft: bool,
}

impl IntoResponse for ComposePage {
    /// A form sent back with problems is a 422.
    fn into_response(self) -> Response {
        let status = if self.error_count > 0 {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        (status, render_page(&self)).into_response()
    }
}

/// The first field with a problem, in the order of the page (the text, then each slot's
/// fields): the one the page focuses.
fn first_invalid(errors: &FieldErrors) -> Option<String> {
    let slots = Side::BOTH.into_iter().flat_map(Slot::all);
    let fields = slots.flat_map(|slot| Part::ALL.map(|part| slot.field(part)));
    ["text".to_string(), "media".to_string()]
        .into_iter()
        .chain(fields)
        .chain(std::iter::once("template_name".to_string()))
        .find(|name| errors.contains_key(name))
}

impl ComposePage {
    pub fn new(
        draft: Draft,
        writer: &Writer,
        catalog: &Catalog,
        templates: Vec<TemplateSummary>,
        notice: Option<&'static str>,
    ) -> Self {
        let Draft {
            form,
            errors,
            preview,
            focus,
            full,
        } = draft;
        let said = |field: &str| errors.get(field).map(say);
        let focused = first_invalid(&errors).or(focus.clone()).unwrap_or_default();
        let grid = |side: Side| {
            let mut slots = Vec::new();
            for slot in Slot::all(side) {
                let slot_errors: HashMap<&'static str, String> = Part::ALL
                    .iter()
                    .filter_map(|p| said(&slot.field(*p)).map(|e| (p.as_str(), e)))
                    .collect();
                if slot_errors.is_empty() && !form.is_used(slot) {
                    continue;
                }
                let typed = form.slot(slot).cloned().unwrap_or_default();
                let icon = typed.icon.trim().to_ascii_uppercase();
                let unfinished = typed.caption.trim().is_empty()
                    || typed.kind.is_empty()
                    || (typed.kind == "link" && typed.link.trim().is_empty());
                let open = unfinished
                    || !slot_errors.is_empty()
                    || focused.starts_with(&format!("{}_", slot.id()));
                slots.push(SlotView {
                    glyph: button_kit::icon(&icon).map_or("•", |i| i.glyph),
                    prefix: slot.id(),
                    label: persian_digits(&format!("دکمهٔ {}", slots.len() + 1)),
                    other_icon: (!icon.is_empty() && button_kit::persian_name(&icon).is_none())
                        .then(|| icon.clone()),
                    icon,
                    caption: typed.caption,
                    kind: typed.kind,
                    link: typed.link,
                    data: typed.data,
                    errors: slot_errors,
                    open,
                });
            }
            GridView {
                side: side.prefix(),
                full: slots.len() == GRID_ROWS * GRID_COLS,
                problem: (full == Some(side)).then(grid_full),
                slots,
                presets: catalog
                    .presets
                    .iter()
                    .copied()
                    .filter(|p| p.offered(side, writer))
                    .collect(),
            }
        };
        let broadcast = writer.is_broadcast();
        let grids = vec![grid(Side::Sender), grid(Side::Receiver)];
        // Off by default, even for a preset that fills the data in; on where the data has a problem.
        let show_advanced = grids
            .iter()
            .flat_map(|g| &g.slots)
            .any(|s| s.errors.contains_key("data"));
        Self {
            idempotency_key: form.key().unwrap_or_default().as_str().to_string(),
            text_error: said("text"),
            template_error: said("template_name"),
            max_text: MAX_TEXT_CHARS,
            grids,
            page_kinds: catalog
                .pages
                .iter()
                .map(|p| PageKind {
                    value: format!("page:{}", p.key),
                    title: p.title,
                })
                .collect(),
            links: catalog
                .links
                .iter()
                .filter(|l| !broadcast && l.audience.includes(writer.side))
                .map(|l| (l.title, l.path))
                .collect(),
            templates: templates
                .into_iter()
                .map(|t| TemplateView {
                    id: t.id,
                    name: t.name,
                })
                .collect(),
            template_name: form.template_name.clone(),
            notice,
            error_count: errors.len(),
            focus: focused,
            preview: preview.as_ref().map(|m| {
                let view = PreviewView::of_message(m);
                if writer.is_broadcast() {
                    view.to_every_buyer()
                } else {
                    view
                }
            }),
            app_title: APP_TITLE,
            broadcast,
            form_action: if broadcast {
                "/broadcasts/new"
            } else {
                "/compose"
            },
            attachment_size: form.attachment.as_ref().map(|a| super::megabytes(a.size)),
            attachment: form.attachment,
            media_error: said("media"),
            media_accept: [MediaKind::Image, MediaKind::File]
                .into_iter()
                .flat_map(MediaKind::extensions)
                .map(|ext| format!(".{ext}"))
                .collect::<Vec<_>>()
                .join(","),
            media_max_bytes: MediaKind::Image
                .max_bytes()
                .min(MediaKind::File.max_bytes()),
            media_too_large: say(&Problem::MediaTooLarge),
            text: form.text,
            show_advanced,
            draft_key: writer.draft_key(),
            theirs_title: if broadcast {
                super::THEIRS_EACH_BUYER
            } else {
                super::THEIRS_ONE
            },
            restore_draft: false,
        }
    }

    /// The composer opened afresh: a draft the browser kept for this chat comes back.
    pub fn restoring_draft(mut self) -> Self {
        self.restore_draft = true;
        self
    }
}
