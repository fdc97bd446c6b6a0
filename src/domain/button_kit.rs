//! The button editor's ready-made parts, for sellers rather than developers: Persian names for
//! the Divar icons a seller is likely to want (in groups; the full list stays one tap away),
//! ready-made buttons, and the editor's add/remove steps on the composer's form fields.
//!
//! Icon names are Divar's (docs/divar-platform.md, "Sending"); the Persian names are ours.

use std::collections::HashMap;

use super::message::{GRID_COLS, GRID_ROWS, Side, slot_field};

pub struct IconGroup {
    pub title: &'static str,
    /// `(Divar's icon name, its Persian name)`.
    pub icons: &'static [(&'static str, &'static str)],
}

pub const ICON_GROUPS: &[IconGroup] = &[
    IconGroup {
        title: "زمان و مکان",
        icons: &[
            ("ACCESS_TIME", "ساعت"),
            ("CALENDAR_TEXT", "تقویم"),
            ("EVENT_NOTE", "قرار"),
            ("TIMER", "زمان‌سنج"),
            ("PLACE", "مکان"),
            ("MAP_VIEW", "نقشه"),
            ("LOCAL_SHIPPING", "ارسال بار"),
            ("HOME", "خانه"),
        ],
    },
    IconGroup {
        title: "تماس و گفت‌وگو",
        icons: &[
            ("CALL", "تلفن"),
            ("CHAT_BUBBLE", "گفت‌وگو"),
            ("TEXT_SMS_OUTLINE", "پیامک"),
            ("EMAIL_OUTLINE", "ایمیل"),
            ("SEND", "فرستادن"),
            ("PERSON", "شخص"),
            ("SHARE", "هم‌رسانی"),
            ("LINK", "لینک"),
        ],
    },
    IconGroup {
        title: "خرید و پرداخت",
        icons: &[
            ("PAYMENT", "کارت بانکی"),
            ("MONEY", "پول"),
            ("WALLET", "کیف پول"),
            ("CART", "سبد خرید"),
            ("STORE", "فروشگاه"),
            ("GIFT", "هدیه"),
        ],
    },
    IconGroup {
        title: "آگهی و کالا",
        icons: &[
            ("CAR", "خودرو"),
            ("REAL_ESTATE", "ملک"),
            ("CAMERA", "دوربین"),
            ("PHOTO_LIBRARY", "عکس‌ها"),
            ("VIDEOCAM", "ویدیو"),
            ("FILE", "پرونده"),
            ("NOTE", "یادداشت"),
        ],
    },
    IconGroup {
        title: "عمومی",
        icons: &[
            ("CHECK_CIRCLE", "تأیید"),
            ("VERIFIED", "تأییدشده"),
            ("INFO", "اطلاعات"),
            ("HELP", "راهنما"),
            ("WARNING", "هشدار"),
            ("STAR", "ستاره"),
            ("THUMB_UP", "پسند"),
            ("EDIT", "ویرایش"),
        ],
    },
];

/// The Persian name of a Divar icon, when it has one here.
pub fn persian_name(icon: &str) -> Option<&'static str> {
    ICON_GROUPS
        .iter()
        .flat_map(|g| g.icons)
        .find(|(name, _)| *name == icon)
        .map(|(_, persian)| *persian)
}

/// What a person reads for an icon: its Persian name, or Divar's name for the rest of the list.
pub fn icon_label(icon: &str) -> String {
    persian_name(icon).map_or_else(|| icon.to_string(), str::to_string)
}

/// A button a seller adds with one tap. `kind` and the fields are the composer form's values.
pub struct Preset {
    pub key: &'static str,
    /// What the «افزودن» button says.
    pub title: &'static str,
    pub caption: &'static str,
    pub icon: &'static str,
    pub kind: &'static str,
    /// Only for a conversation about a post (it opens the post).
    pub needs_post: bool,
}

impl Preset {
    /// The field to focus once added: a link still to paste, else the caption (to check or
    /// write): either way the new button is in view.
    fn focus(&self) -> &'static str {
        if self.kind == "link" && !self.caption.is_empty() {
            "link"
        } else {
            "caption"
        }
    }
}

pub const PRESETS: &[Preset] = &[
    Preset {
        key: "visit",
        title: "زمان بازدید",
        caption: "زمان بازدید",
        icon: "ACCESS_TIME",
        kind: "server",
        needs_post: false,
    },
    Preset {
        key: "map",
        title: "نشانی روی نقشه",
        caption: "نشانی روی نقشه",
        icon: "MAP_VIEW",
        kind: "link",
        needs_post: false,
    },
    Preset {
        key: "call",
        title: "تماس",
        caption: "تماس",
        icon: "CALL",
        kind: "link",
        needs_post: false,
    },
    Preset {
        key: "post",
        title: "مشاهدهٔ آگهی",
        caption: "مشاهدهٔ آگهی",
        icon: "REAL_ESTATE",
        kind: "post",
        needs_post: true,
    },
    Preset {
        key: "pay",
        title: "پرداخت",
        caption: "پرداخت",
        icon: "PAYMENT",
        kind: "link",
        needs_post: false,
    },
    Preset {
        key: "custom",
        title: "دکمهٔ دلخواه",
        caption: "",
        icon: "CHECK_CIRCLE",
        kind: "link",
        needs_post: false,
    },
];

/// The parts of one button slot, in the order the page shows them.
pub const SLOT_PARTS: [&str; 5] = ["caption", "icon", "kind", "link", "data"];

/// A tap in the button editor: the form comes back with the change made, nothing sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    Add { side: Side, preset: &'static Preset },
    Remove { side: Side, row: usize, col: usize },
}

impl std::fmt::Debug for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

impl PartialEq for Preset {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Preset {}

/// What happened to the form.
#[derive(Debug, PartialEq, Eq)]
pub enum Edited {
    /// Done; the element to focus next (e.g. `r01_link`, or `r-title` after a removal).
    Done { focus: String },
    /// The side's grid has no free place: a Persian sentence for the page.
    Full(String),
}

impl Edit {
    /// Reads `add=<side>:<preset>` or `remove=<slot>` (e.g. `add=r:map`, `remove=s01`).
    pub fn from_form(fields: &HashMap<String, String>) -> Option<Self> {
        if let Some(add) = fields.get("add") {
            let (side, key) = add.split_once(':')?;
            let preset = PRESETS.iter().find(|p| p.key == key)?;
            return Some(Self::Add {
                side: side_of(side)?,
                preset,
            });
        }
        let slot = fields.get("remove")?;
        let mut chars = slot.chars();
        let side = side_of(&chars.next()?.to_string())?;
        let row = chars.next()?.to_digit(10)? as usize;
        let col = chars.next()?.to_digit(10)? as usize;
        (chars.next().is_none() && row < GRID_ROWS && col < GRID_COLS).then_some(Self::Remove {
            side,
            row,
            col,
        })
    }

    /// Makes the change on the form's fields. A new button takes the first free place, row by
    /// row, so buttons sit side by side as Divar shows them.
    pub fn apply(&self, fields: &mut HashMap<String, String>) -> Edited {
        match *self {
            Self::Remove { side, row, col } => {
                for part in SLOT_PARTS {
                    fields.remove(&slot_field(side, row, col, part));
                }
                Edited::Done {
                    focus: format!("{}-title", side.prefix()),
                }
            }
            Self::Add { side, preset } => {
                let free = (0..GRID_ROWS)
                    .flat_map(|row| (0..GRID_COLS).map(move |col| (row, col)))
                    .find(|&(row, col)| !is_used(fields, side, row, col));
                let Some((row, col)) = free else {
                    return Edited::Full(super::persian_digits(&format!(
                        "جای دکمهٔ دیگری نیست: هر طرف حداکثر {} دکمه دارد. یکی را حذف کنید.",
                        GRID_ROWS * GRID_COLS
                    )));
                };
                for (part, value) in [
                    ("caption", preset.caption),
                    ("icon", preset.icon),
                    ("kind", preset.kind),
                ] {
                    fields.insert(slot_field(side, row, col, part), value.to_string());
                }
                Edited::Done {
                    focus: slot_field(side, row, col, preset.focus()),
                }
            }
        }
    }
}

fn side_of(text: &str) -> Option<Side> {
    match text {
        "s" => Some(Side::Sender),
        "r" => Some(Side::Receiver),
        _ => None,
    }
}

/// Whether a slot holds anything a person typed or chose (an icon alone does not count).
pub fn is_used(fields: &HashMap<String, String>, side: Side, row: usize, col: usize) -> bool {
    ["caption", "kind", "link", "data"].iter().any(|part| {
        fields
            .get(&slot_field(side, row, col, part))
            .is_some_and(|v| !v.trim().is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::icons;

    #[test]
    fn every_named_icon_is_a_divar_icon() {
        for (name, _) in ICON_GROUPS.iter().flat_map(|g| g.icons) {
            assert!(icons::is_known(name), "{name}");
        }
        for preset in PRESETS {
            assert!(icons::is_known(preset.icon), "{}", preset.key);
        }
    }

    #[test]
    fn adding_takes_the_first_free_place_and_removing_frees_it() {
        let mut fields = HashMap::from([("s00_caption".to_string(), "اول".to_string())]);
        let add = |side: &str, key: &str| {
            Edit::from_form(&HashMap::from([("add".into(), format!("{side}:{key}"))])).unwrap()
        };
        assert_eq!(
            add("s", "map").apply(&mut fields),
            Edited::Done {
                focus: "s01_link".into()
            }
        );
        assert_eq!(fields["s01_kind"], "link");
        assert_eq!(fields["s01_icon"], "MAP_VIEW");
        assert_eq!(
            add("s", "visit").apply(&mut fields),
            Edited::Done {
                focus: "s02_caption".into()
            }
        );
        assert_eq!(fields["s02_kind"], "server");
        let remove = Edit::from_form(&HashMap::from([("remove".into(), "s01".into())])).unwrap();
        assert_eq!(
            remove.apply(&mut fields),
            Edited::Done {
                focus: "s-title".into()
            }
        );
        assert!(!fields.contains_key("s01_caption") && !fields.contains_key("s01_kind"));
        assert_eq!(
            add("s", "custom").apply(&mut fields),
            Edited::Done {
                focus: "s01_caption".into()
            }
        );
        for _ in 0..6 {
            add("s", "pay").apply(&mut fields);
        }
        assert!(matches!(
            add("s", "pay").apply(&mut fields),
            Edited::Full(_)
        ));
        assert!(matches!(
            add("r", "pay").apply(&mut fields),
            Edited::Done { .. }
        ));
    }

    #[test]
    fn unknown_edits_are_not_edits() {
        for (name, value) in [
            ("add", "x:map"),
            ("add", "s:nothing"),
            ("add", "s"),
            ("remove", "s33"),
            ("remove", "s0"),
            ("remove", "s001"),
            ("other", "s00"),
        ] {
            let fields = HashMap::from([(name.to_string(), value.to_string())]);
            assert_eq!(Edit::from_form(&fields), None, "{name}={value}");
        }
    }
}
