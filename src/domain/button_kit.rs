//! The button editor's ready-made parts, for sellers rather than developers: Persian names for
//! the Divar icons a seller is likely to want (in groups, each with an emoji stand-in and other
//! words to search it by; Divar's other icons are not offered),
//! ready-made buttons (presets), and the editor's add/remove steps on the composer's form.
//!
//! Icon names are Divar's (docs/divar-platform.md, "Sending"); the Persian names are ours.

use kenar::UserSide;

use super::compose::{ComposeForm, EditRequest, Part, Side, Slot, Writer};

pub struct IconGroup {
    pub title: &'static str,
    pub icons: &'static [Icon],
}

/// One of Divar's icons as a seller meets it: a Persian name, a picture, and the other words a
/// seller may search it by. Divar's own icon images are not public: the picture is an emoji
/// that stands in for it on our pages (Divar draws its own in the chat).
pub struct Icon {
    /// Divar's name, sent in the message; never shown.
    pub name: &'static str,
    pub persian: &'static str,
    pub glyph: &'static str,
    /// Space-separated Persian words the icon search also matches.
    pub keywords: &'static str,
}

pub const ICON_GROUPS: &[IconGroup] = &[
    IconGroup {
        title: "زمان و مکان",
        icons: &[
            Icon {
                name: "ACCESS_TIME",
                persian: "ساعت",
                glyph: "🕒",
                keywords: "زمان وقت بازدید",
            },
            Icon {
                name: "CALENDAR_TEXT",
                persian: "تقویم",
                glyph: "📅",
                keywords: "تاریخ روز",
            },
            Icon {
                name: "EVENT_NOTE",
                persian: "قرار",
                glyph: "🗓️",
                keywords: "وقت ملاقات",
            },
            Icon {
                name: "TIMER",
                persian: "زمان‌سنج",
                glyph: "⏱️",
                keywords: "مدت",
            },
            Icon {
                name: "PLACE",
                persian: "مکان",
                glyph: "📍",
                keywords: "آدرس نشانی محل",
            },
            Icon {
                name: "MAP_VIEW",
                persian: "نقشه",
                glyph: "🗺️",
                keywords: "مسیر آدرس نشانی",
            },
            Icon {
                name: "LOCAL_SHIPPING",
                persian: "ارسال بار",
                glyph: "🚚",
                keywords: "پست حمل تحویل",
            },
            Icon {
                name: "HOME",
                persian: "خانه",
                glyph: "🏠",
                keywords: "منزل",
            },
        ],
    },
    IconGroup {
        title: "تماس و گفت‌وگو",
        icons: &[
            Icon {
                name: "CALL",
                persian: "تلفن",
                glyph: "📞",
                keywords: "تماس شماره زنگ",
            },
            Icon {
                name: "CHAT_BUBBLE",
                persian: "گفت‌وگو",
                glyph: "💬",
                keywords: "چت پیام",
            },
            Icon {
                name: "TEXT_SMS_OUTLINE",
                persian: "پیامک",
                glyph: "✉️",
                keywords: "اس‌ام‌اس پیام",
            },
            Icon {
                name: "EMAIL_OUTLINE",
                persian: "ایمیل",
                glyph: "📧",
                keywords: "رایانامه نامه",
            },
            Icon {
                name: "SEND",
                persian: "فرستادن",
                glyph: "📤",
                keywords: "ارسال",
            },
            Icon {
                name: "PERSON",
                persian: "شخص",
                glyph: "👤",
                keywords: "کاربر فروشنده خریدار",
            },
            Icon {
                name: "SHARE",
                persian: "هم‌رسانی",
                glyph: "↗️",
                keywords: "اشتراک",
            },
            Icon {
                name: "LINK",
                persian: "لینک",
                glyph: "🔗",
                keywords: "پیوند سایت وب",
            },
        ],
    },
    IconGroup {
        title: "خرید و پرداخت",
        icons: &[
            Icon {
                name: "PAYMENT",
                persian: "کارت بانکی",
                glyph: "💳",
                keywords: "پرداخت",
            },
            Icon {
                name: "MONEY",
                persian: "پول",
                glyph: "💵",
                keywords: "قیمت تومان ریال مبلغ",
            },
            Icon {
                name: "WALLET",
                persian: "کیف پول",
                glyph: "👛",
                keywords: "پرداخت",
            },
            Icon {
                name: "CART",
                persian: "سبد خرید",
                glyph: "🛒",
                keywords: "خرید",
            },
            Icon {
                name: "STORE",
                persian: "فروشگاه",
                glyph: "🏪",
                keywords: "مغازه",
            },
            Icon {
                name: "GIFT",
                persian: "هدیه",
                glyph: "🎁",
                keywords: "تخفیف جایزه",
            },
        ],
    },
    IconGroup {
        title: "آگهی و کالا",
        icons: &[
            Icon {
                name: "CAR",
                persian: "خودرو",
                glyph: "🚗",
                keywords: "ماشین اتومبیل",
            },
            Icon {
                name: "REAL_ESTATE",
                persian: "ملک",
                glyph: "🏢",
                keywords: "خانه آپارتمان ساختمان",
            },
            Icon {
                name: "CAMERA",
                persian: "دوربین",
                glyph: "📷",
                keywords: "عکس",
            },
            Icon {
                name: "PHOTO_LIBRARY",
                persian: "عکس‌ها",
                glyph: "🖼️",
                keywords: "تصویر",
            },
            Icon {
                name: "VIDEOCAM",
                persian: "ویدیو",
                glyph: "🎥",
                keywords: "فیلم",
            },
            Icon {
                name: "FILE",
                persian: "پرونده",
                glyph: "📄",
                keywords: "فایل سند",
            },
            Icon {
                name: "NOTE",
                persian: "یادداشت",
                glyph: "📝",
                keywords: "متن",
            },
        ],
    },
    IconGroup {
        title: "عمومی",
        icons: &[
            Icon {
                name: "VISIBILITY",
                persian: "مشاهده",
                glyph: "👁️",
                keywords: "دیدن آگهی نگاه",
            },
            Icon {
                name: "CHECK_CIRCLE",
                persian: "تأیید",
                glyph: "✅",
                keywords: "درست باشه",
            },
            Icon {
                name: "VERIFIED",
                persian: "تأییدشده",
                glyph: "☑️",
                keywords: "اصل معتبر",
            },
            Icon {
                name: "INFO",
                persian: "اطلاعات",
                glyph: "ℹ️",
                keywords: "توضیح",
            },
            Icon {
                name: "HELP",
                persian: "راهنما",
                glyph: "❓",
                keywords: "سؤال پرسش",
            },
            Icon {
                name: "WARNING",
                persian: "هشدار",
                glyph: "⚠️",
                keywords: "توجه",
            },
            Icon {
                name: "STAR",
                persian: "ستاره",
                glyph: "⭐",
                keywords: "امتیاز ویژه",
            },
            Icon {
                name: "THUMB_UP",
                persian: "پسند",
                glyph: "👍",
                keywords: "خوب",
            },
            Icon {
                name: "EDIT",
                persian: "ویرایش",
                glyph: "✏️",
                keywords: "تغییر",
            },
        ],
    },
];

/// One of the icons offered here, by Divar's name.
pub fn icon(name: &str) -> Option<&'static Icon> {
    ICON_GROUPS
        .iter()
        .flat_map(|g| g.icons)
        .find(|icon| icon.name == name)
}

/// The Persian name of a Divar icon, when it has one here.
pub fn persian_name(icon_name: &str) -> Option<&'static str> {
    icon(icon_name).map(|icon| icon.persian)
}

/// The name our pages give an icon not offered here (from a template, or another tool): never
/// Divar's code.
pub const OTHER_ICON: &str = "نماد دیگر";

/// How our pages draw an icon: its picture and its Persian name.
pub fn icon_shown(name: &str) -> (&'static str, &'static str) {
    icon(name).map_or(("•", OTHER_ICON), |icon| (icon.glyph, icon.persian))
}

/// Who a preset's button is for: the grid it is offered on follows from who is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Seller,
    Buyer,
    Both,
}

impl Audience {
    /// Whether someone on `side` is in this audience (an unknown side counts as anyone).
    pub fn includes(self, side: Option<UserSide>) -> bool {
        match (self, side) {
            (Self::Both, _) | (_, None) => true,
            (Self::Seller, Some(side)) => side == UserSide::Seller,
            (Self::Buyer, Some(side)) => side == UserSide::Buyer,
        }
    }
}

/// A button a person adds with one tap: the core's below, and each feature's own (see
/// `web::feature::Feature`). The fields are what the composer's slot is filled with.
/// The preset that adds an empty button, offered on both grids.
const BLANK: &str = "custom";

pub struct Preset {
    /// Unique among presets; the chip posts `add=<side>:<key>`.
    pub key: &'static str,
    /// What the «افزودن» chip says.
    pub title: &'static str,
    pub caption: &'static str,
    pub icon: &'static str,
    /// The slot's `kind`: `link`, `post`, `manage`, `server` (the message's own page), or
    /// `page:<key>` for a feature's page.
    pub kind: &'static str,
    /// `key=value` pairs the button's data starts with (server-link and page kinds).
    pub data: &'static [(&'static str, &'static str)],
    pub audience: Audience,
    /// Only for a conversation about a post (e.g. it opens the post).
    pub needs_post: bool,
}

impl std::fmt::Debug for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

impl Preset {
    /// Whether the chip is offered on `grid` for `writer`: the grid the audience sees. A preset
    /// for both sides is offered once, on the other side's grid (where buttons do their work);
    /// the blank one on both.
    pub fn offered(&self, grid: Side, writer: &Writer) -> bool {
        if self.needs_post && writer.post.is_none() {
            return false;
        }
        let sees = |audience: UserSide| match (writer.side, grid) {
            // Writing to every buyer of a post: the seller's own grid and the buyers'.
            (_, Side::Receiver) if writer.is_broadcast() => audience == UserSide::Buyer,
            (Some(side), Side::Sender) => side == audience,
            (Some(side), Side::Receiver) => side != audience,
            (None, _) => true,
        };
        match self.audience {
            Audience::Both => self.key == BLANK || grid == Side::Receiver,
            Audience::Seller => sees(UserSide::Seller),
            Audience::Buyer => sees(UserSide::Buyer),
        }
    }

    /// The field to focus once added: a link still to paste, else the caption (to check or
    /// write): either way the new button is in view.
    fn focus(&self) -> Part {
        if self.kind == "link" && !self.caption.is_empty() {
            Part::Link
        } else {
            Part::Caption
        }
    }
}

/// The core's ready-made buttons.
pub const PRESETS: &[Preset] = &[
    Preset {
        key: "map",
        title: "نشانی روی نقشه",
        caption: "نشانی روی نقشه",
        icon: "MAP_VIEW",
        kind: "link",
        data: &[],
        audience: Audience::Both,
        needs_post: false,
    },
    Preset {
        key: "call",
        title: "تماس",
        caption: "تماس",
        icon: "CALL",
        kind: "link",
        data: &[],
        audience: Audience::Both,
        needs_post: false,
    },
    Preset {
        key: "post",
        title: "مشاهدهٔ آگهی",
        caption: "مشاهدهٔ آگهی",
        // Neutral: the post may be a car or a phone as well as a flat (session-init does not say).
        icon: "VISIBILITY",
        kind: "post",
        data: &[],
        audience: Audience::Both,
        needs_post: true,
    },
    Preset {
        key: "available",
        title: "هنوز موجود است؟",
        caption: "هنوز موجود است؟",
        icon: "HELP_OUTLINE",
        kind: "available",
        data: &[],
        audience: Audience::Buyer,
        needs_post: true,
    },
    Preset {
        key: "custom",
        title: "دکمهٔ دلخواه",
        caption: "",
        icon: "CHECK_CIRCLE",
        kind: "link",
        data: &[],
        audience: Audience::Both,
        needs_post: false,
    },
];

/// What an edit did to the form.
#[derive(Debug, PartialEq, Eq)]
pub enum Edited {
    /// Done; the element to focus next (e.g. `r01_link`, or `r-title` after a removal).
    Done { focus: String },
    /// The side's grid has no free place.
    Full(Side),
    /// The edit named a preset that is not offered here: nothing changed.
    Nothing,
}

/// Makes a button-editor change on the form. A new button takes the first free place, row by
/// row, so buttons sit side by side as Divar shows them.
pub fn apply(
    form: &mut ComposeForm,
    edit: &EditRequest,
    presets: &[&Preset],
    writer: &Writer,
) -> Edited {
    match edit {
        EditRequest::Remove(slot) => {
            form.clear(*slot);
            Edited::Done {
                focus: format!("{}-title", slot.side.prefix()),
            }
        }
        EditRequest::Add { side, preset } => {
            let Some(preset) = presets
                .iter()
                .find(|p| p.key == preset && p.offered(*side, writer))
            else {
                return Edited::Nothing;
            };
            let Some(slot) = Slot::all(*side).find(|slot| !form.is_used(*slot)) else {
                return Edited::Full(*side);
            };
            form.clear(slot);
            let data: Vec<String> = preset
                .data
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            for (part, value) in [
                (Part::Caption, preset.caption.to_string()),
                (Part::Icon, preset.icon.to_string()),
                (Part::Kind, preset.kind.to_string()),
                (Part::Data, data.join("\n")),
            ] {
                form.set(slot, part, value);
            }
            Edited::Done {
                focus: slot.field(preset.focus()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::icons;

    fn writer(side: Option<UserSide>, post: bool) -> Writer {
        Writer {
            user: kenar::UserId::parse("u-ali").unwrap(),
            side,
            conversation: Some(kenar::ConversationId::parse("c-1").unwrap()),
            post: post.then(|| kenar::PostToken::parse("gZd7omnS").unwrap()),
        }
    }

    #[test]
    fn every_named_icon_is_a_divar_icon() {
        for icon in ICON_GROUPS.iter().flat_map(|g| g.icons) {
            assert!(icons::is_known(icon.name), "{}", icon.name);
        }
        for preset in PRESETS {
            assert!(icons::is_known(preset.icon), "{}", preset.key);
        }
    }

    #[test]
    fn adding_takes_the_first_free_place_and_removing_frees_it() {
        let presets: Vec<&Preset> = PRESETS.iter().collect();
        let w = writer(None, false);
        let mut form = ComposeForm::default();
        let s00 = Slot::parse("r00").unwrap();
        form.set(s00, Part::Caption, "اول".into());
        let add = |form: &mut ComposeForm, side: Side, key: &str| {
            let edit = EditRequest::Add {
                side,
                preset: key.into(),
            };
            apply(form, &edit, &presets, &w)
        };
        let focus = |f: &str| Edited::Done { focus: f.into() };
        assert_eq!(add(&mut form, Side::Receiver, "map"), focus("r01_link"));
        let s01 = form.slot(Slot::parse("r01").unwrap()).unwrap().clone();
        assert_eq!((s01.kind.as_str(), s01.icon.as_str()), ("link", "MAP_VIEW"));
        assert_eq!(add(&mut form, Side::Receiver, "call"), focus("r02_link"));
        let remove = EditRequest::Remove(Slot::parse("r01").unwrap());
        assert_eq!(apply(&mut form, &remove, &presets, &w), focus("r-title"));
        assert!(!form.is_used(Slot::parse("r01").unwrap()));
        assert_eq!(
            add(&mut form, Side::Receiver, "custom"),
            focus("r01_caption")
        );
        for _ in 0..6 {
            add(&mut form, Side::Receiver, "call");
        }
        assert_eq!(
            add(&mut form, Side::Receiver, "call"),
            Edited::Full(Side::Receiver)
        );
        // A preset for both sides is offered once, on the other side's grid; the blank one on
        // both.
        assert_eq!(add(&mut form, Side::Sender, "call"), Edited::Nothing);
        assert!(matches!(
            add(&mut form, Side::Sender, "custom"),
            Edited::Done { .. }
        ));
        assert_eq!(add(&mut form, Side::Receiver, "nothing"), Edited::Nothing);
        assert_eq!(
            add(&mut form, Side::Receiver, "post"),
            Edited::Nothing,
            "needs a post"
        );
    }

    #[test]
    fn a_preset_is_offered_on_the_grid_its_audience_sees() {
        let for_buyers = Preset {
            audience: Audience::Buyer,
            ..PRESETS[0]
        };
        let seller = writer(Some(UserSide::Seller), true);
        let buyer = writer(Some(UserSide::Buyer), true);
        assert!(for_buyers.offered(Side::Receiver, &seller));
        assert!(!for_buyers.offered(Side::Sender, &seller));
        assert!(for_buyers.offered(Side::Sender, &buyer));
        assert!(!for_buyers.offered(Side::Receiver, &buyer));
        let everyone = writer(None, true);
        assert!(for_buyers.offered(Side::Sender, &everyone));
        let broadcast = Writer {
            conversation: None,
            ..seller
        };
        assert!(for_buyers.offered(Side::Receiver, &broadcast));
        assert!(!for_buyers.offered(Side::Sender, &broadcast));
    }
}
