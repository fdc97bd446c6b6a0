//! A chat message the add-on sends: text plus a button grid for each side, checked against
//! the platform's limits (docs/divar-platform.md, "Sending") with Persian messages per form field.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use url::Url;

use kenar::{PostToken, icons};

/// Divar documents no limit; long texts read badly in a chat bubble.
pub const MAX_TEXT_CHARS: usize = 1000;
pub const MAX_CAPTION_CHARS: usize = 30;
pub const MAX_DATA_PAIRS: usize = 10;
pub use kenar::message::{GRID_COLS, GRID_ROWS};
/// Keys the add-on adds to its own `open_server_link` data, to route the click back.
pub const PAGE_KEY: &str = "kc_page";
pub const MESSAGE_KEY: &str = "kc_message";
/// Which button was tapped: side and place in the sent grid, e.g. `r01`.
pub const BUTTON_KEY: &str = "kc_button";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sender,
    Receiver,
}

impl Side {
    pub fn prefix(self) -> char {
        match self {
            Self::Sender => 's',
            Self::Receiver => 'r',
        }
    }
}

pub use kenar::message::{Action, Button, ButtonGrid};

/// What the composer makes: Divar's message, before it knows its id.
pub type OutgoingMessage = kenar::message::Message;

/// The send-message body for the message stored as `message_id`: our server-link buttons carry
/// that id and their own place, so a tap finds its way back to this message and button.
pub fn to_kenar_json(message: &OutgoingMessage, message_id: &str) -> Value {
    let mut message = message.clone();
    for (side, grid) in [
        (Side::Sender, &mut message.sender_buttons),
        (Side::Receiver, &mut message.receiver_buttons),
    ] {
        for ((row, col), data) in grid.server_links_mut() {
            data.insert(PAGE_KEY.into(), json!("message"));
            data.insert(MESSAGE_KEY.into(), json!(message_id));
            data.insert(
                BUTTON_KEY.into(),
                json!(format!("{}{row}{col}", side.prefix())),
            );
        }
    }
    message.to_json()
}

/// The button a tap came from, read back from the sent body: its side and caption. Data that
/// names no place in the grid (not one of our buttons) gets the side `fallback` names and no
/// caption.
pub fn tapped_button(
    body: &Value,
    data: &Map<String, Value>,
    fallback: Side,
) -> (Side, Option<String>) {
    let grid = |side: Side| match side {
        Side::Sender => "sender_buttons",
        Side::Receiver => "receiver_buttons",
    };
    let buttons = |side: Side| {
        body.pointer(&format!("/{}/rows", grid(side)))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .flat_map(|(r, row)| {
                row.get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(move |(c, b)| ((r, c), b))
            })
    };
    let caption = |b: &Value| b["caption"].as_str().map(str::to_string);
    let place = data.get(BUTTON_KEY).and_then(Value::as_str).and_then(|p| {
        let mut chars = p.chars();
        let side = match chars.next()? {
            's' => Side::Sender,
            'r' => Side::Receiver,
            _ => return None,
        };
        let row = chars.next()?.to_digit(10)? as usize;
        let col = chars.next()?.to_digit(10)? as usize;
        Some((side, (row, col)))
    });
    match place {
        Some((side, at)) => {
            let found = buttons(side)
                .find(|(p, _)| *p == at)
                .and_then(|(_, b)| caption(b));
            (side, found)
        }
        None => (fallback, None),
    }
}

/// Persian problems keyed by form field name.
pub type FieldErrors = BTreeMap<String, String>;

/// The field names of one button slot, e.g. `s01_caption` (sender grid, row 0, column 1).
pub fn slot_field(side: Side, row: usize, col: usize, part: &str) -> String {
    format!("{}{row}{col}_{part}", side.prefix())
}

/// Whether `name` is one of the composer's own fields (the text and the button slots).
pub fn is_composer_field(name: &str) -> bool {
    name == "text"
        || [Side::Sender, Side::Receiver].into_iter().any(|side| {
            (0..GRID_ROWS).any(|row| {
                (0..GRID_COLS).any(|col| {
                    super::button_kit::SLOT_PARTS
                        .iter()
                        .any(|part| slot_field(side, row, col, part) == name)
                })
            })
        })
}

/// Parses the composer's form. Every problem is reported, each beside its field. `post` is the
/// post the message is about, for buttons that open it.
pub fn parse_form(
    fields: &HashMap<String, String>,
    post: Option<&PostToken>,
) -> Result<OutgoingMessage, FieldErrors> {
    let mut errors = FieldErrors::new();
    let get = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
    let text = get("text").to_string();
    if text.is_empty() {
        errors.insert("text".into(), "متن پیام را بنویسید.".into());
    } else if text.chars().count() > MAX_TEXT_CHARS {
        errors.insert(
            "text".into(),
            super::persian_digits(&format!(
                "متن پیام نباید بیشتر از {MAX_TEXT_CHARS} حرف باشد."
            )),
        );
    }
    let sender_buttons = parse_grid(Side::Sender, &get, post, &mut errors);
    let receiver_buttons = parse_grid(Side::Receiver, &get, post, &mut errors);
    if errors.is_empty() {
        Ok(OutgoingMessage {
            text,
            sender_buttons,
            receiver_buttons,
        })
    } else {
        Err(errors)
    }
}

fn parse_grid<'a>(
    side: Side,
    get: &impl Fn(&str) -> &'a str,
    post: Option<&PostToken>,
    errors: &mut FieldErrors,
) -> ButtonGrid {
    let mut rows = Vec::new();
    for row in 0..GRID_ROWS {
        let mut buttons = Vec::new();
        for col in 0..GRID_COLS {
            let field = |part: &str| slot_field(side, row, col, part);
            if let Some(button) = parse_button(&field, get, post, errors) {
                buttons.push(button);
            }
        }
        if !buttons.is_empty() {
            rows.push(buttons);
        }
    }
    ButtonGrid::new(rows).expect("the form has GRID_ROWS × GRID_COLS slots and drops empty rows")
}

fn parse_button<'a>(
    field: &impl Fn(&str) -> String,
    get: &impl Fn(&str) -> &'a str,
    post: Option<&PostToken>,
    errors: &mut FieldErrors,
) -> Option<Button> {
    let caption = get(&field("caption"));
    // Typed on a phone keyboard, `place` means `PLACE`.
    let icon = get(&field("icon")).to_ascii_uppercase();
    let kind = get(&field("kind"));
    let link = get(&field("link"));
    let data = get(&field("data"));
    if caption.is_empty() && kind.is_empty() && link.is_empty() && data.is_empty() {
        return None;
    }
    let before = errors.len();
    if caption.is_empty() {
        errors.insert(field("caption"), "نوشتهٔ روی دکمه را بنویسید.".into());
    } else if caption.chars().count() > MAX_CAPTION_CHARS {
        errors.insert(
            field("caption"),
            super::persian_digits(&format!(
                "نوشتهٔ دکمه نباید بیشتر از {MAX_CAPTION_CHARS} حرف باشد."
            )),
        );
    }
    if !icons::is_known(&icon) {
        errors.insert(field("icon"), "یکی از نمادهای فهرست را انتخاب کنید.".into());
    }
    let action = match kind {
        "link" => match web_link(link) {
            Ok(url) => Some(Action::DirectLink(url)),
            Err(problem) => {
                errors.insert(field("link"), problem.into());
                None
            }
        },
        "server" => match parse_data(data) {
            Ok(map) => Some(Action::ServerLink(map)),
            Err(problem) => {
                errors.insert(field("data"), problem);
                None
            }
        },
        "post" | "manage" => match post {
            Some(post) if kind == "post" => Some(Action::PostPage(post.clone())),
            Some(post) => Some(Action::PostManagePage(post.clone())),
            None => {
                errors.insert(
                    field("kind"),
                    "این گفت‌وگو به آگهی‌ای وصل نیست؛ دکمهٔ آگهی اینجا کار نمی‌کند.".into(),
                );
                None
            }
        },
        _ => {
            errors.insert(field("kind"), "انتخاب کنید با زدن دکمه چه شود.".into());
            None
        }
    };
    match action {
        Some(action) if errors.len() == before => Some(Button {
            caption: caption.to_string(),
            icon,
            action,
        }),
        _ => None,
    }
}

/// A link typed without a scheme (`example.com/map`) is an https link.
fn with_scheme(link: &str) -> String {
    if link.is_empty() || link.contains("://") {
        link.to_string()
    } else {
        format!("https://{link}")
    }
}

/// A web page a button can open (Divar opens `open_direct_link` in a browser view, so http(s)
/// only), or what to tell the person. A host needs a dot: `https://salam` or `https//x.com`
/// typed by hand is a mistake, not a page.
fn web_link(link: &str) -> Result<Url, &'static str> {
    if link.is_empty() {
        return Err("لینکی را که باید باز شود بنویسید.");
    }
    let phone = link
        .chars()
        .all(|c| c.is_ascii_digit() || ('۰'..='۹').contains(&c) || " +-()".contains(c));
    if phone {
        return Err("دکمه نمی‌تواند شماره بگیرد؛ لینک یک صفحهٔ وب بنویسید (مثلاً wa.me/98912…).");
    }
    let url = Url::parse(&with_scheme(link)).map_err(|_| BAD_LINK)?;
    let host = url.host_str().unwrap_or_default();
    let real_host = (host.contains('.') && !host.ends_with('.')) || host == "localhost";
    if !matches!(url.scheme(), "http" | "https") || !real_host || link.len() > 2048 {
        return Err(BAD_LINK);
    }
    Ok(url)
}

const BAD_LINK: &str = "این لینک درست نیست؛ لینک کامل را از مرورگر کپی کنید.";

/// `key=value` lines into the button's data object.
fn parse_data(text: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("هر سطر باید به شکل کلید=مقدار باشد: «{line}»"));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && key.len() <= 40
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_key || key.starts_with("kc_") {
            return Err(format!(
                "کلید «{key}» مجاز نیست (حروف و ارقام انگلیسی، _ و -؛ نه kc_)."
            ));
        }
        map.insert(
            key.to_string(),
            Value::String(value.trim().chars().take(200).collect()),
        );
    }
    if map.len() > MAX_DATA_PAIRS {
        return Err(super::persian_digits(&format!(
            "حداکثر {MAX_DATA_PAIRS} جفت کلید و مقدار."
        )));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_full_form_becomes_a_message_with_compacted_grids() {
        let message = parse_form(
            &form(&[
                ("text", "  سلام  "),
                ("s12_caption", "نقشه"),
                ("s12_icon", "SEND"),
                ("s12_kind", "link"),
                ("s12_link", "https://example.com/map"),
                ("r00_caption", "جزئیات"),
                ("r00_icon", "checked"),
                ("r00_kind", "server"),
                ("r00_data", "booking=12\nview = buyer"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(message.text, "سلام");
        assert_eq!(
            message.sender_buttons.rows().len(),
            1,
            "empty rows are dropped"
        );
        let body = to_kenar_json(&message, "m-1");
        assert_eq!(
            body["sender_buttons"]["rows"][0]["buttons"][0]["icon_name"],
            "SEND"
        );
        let data = &body["receiver_buttons"]["rows"][0]["buttons"][0]["action"]["open_server_link"]
            ["data"];
        assert_eq!(data["booking"], "12");
        assert_eq!(data["view"], "buyer");
        assert_eq!(data[MESSAGE_KEY], "m-1");
        assert_eq!(data[BUTTON_KEY], "r00", "the tapped button names its place");
        assert_eq!(
            body["receiver_buttons"]["rows"][0]["buttons"][0]["icon"], "CHECKED",
            "icon names in any case"
        );
        let data = data.as_object().unwrap();
        assert_eq!(
            tapped_button(&body, data, Side::Sender),
            (Side::Receiver, Some("جزئیات".to_string()))
        );
        // Data that names no place: the fallback side, no caption.
        let mut placeless = data.clone();
        placeless.remove(BUTTON_KEY);
        assert_eq!(
            tapped_button(&body, &placeless, Side::Sender),
            (Side::Sender, None)
        );
    }

    #[test]
    fn every_problem_is_reported_beside_its_field() {
        let errors = parse_form(
            &form(&[
                ("text", ""),
                ("s00_caption", "x".repeat(31).as_str()),
                ("s00_icon", "REAL_STATE"),
                ("s00_kind", "link"),
                ("s00_link", "javascript:alert(1)"),
                ("r22_kind", "server"),
                ("r22_icon", "SEND"),
                ("r22_data", "kc_page=evil"),
                ("r01_caption", "بدون کار"),
                ("r01_icon", "SEND"),
            ]),
            None,
        )
        .unwrap_err();
        for field in [
            "text",
            "s00_caption",
            "s00_icon",
            "s00_link",
            "r22_caption",
            "r22_data",
            "r01_kind",
        ] {
            assert!(errors.contains_key(field), "{field}: {errors:?}");
        }
    }

    #[test]
    fn links_get_https_when_typed_bare_and_mistakes_are_caught() {
        for (typed, sent) in [
            ("example.com/map", "https://example.com/map"),
            (
                "neshan.org/maps/@35.7,51.4",
                "https://neshan.org/maps/@35.7,51.4",
            ),
            ("http://localhost:8080/x", "http://localhost:8080/x"),
            ("https://wa.me/989121234567", "https://wa.me/989121234567"),
        ] {
            assert_eq!(
                web_link(typed).map(String::from),
                Ok(sent.to_string()),
                "{typed}"
            );
        }
        for typed in [
            "0912-123-4567",
            "+989121234567",
            "۰۹۱۲۱۲۳۴۵۶۷",
            "09121234567",
        ] {
            assert!(web_link(typed).unwrap_err().contains("شماره"), "{typed}");
        }
        for typed in [
            "salam",
            "https//example.com",
            "http:/example.com",
            "ftp://example.com",
            "javascript:alert(1)",
            "https://",
        ] {
            assert_eq!(web_link(typed), Err(BAD_LINK), "{typed}");
        }
    }

    #[test]
    fn the_text_limit_counts_characters_not_bytes() {
        let ok = "س".repeat(MAX_TEXT_CHARS);
        assert!(parse_form(&form(&[("text", &ok)]), None).is_ok());
        let long = "س".repeat(MAX_TEXT_CHARS + 1);
        assert!(parse_form(&form(&[("text", &long)]), None).is_err());
    }

    #[test]
    fn post_buttons_open_the_conversations_post() {
        let fields = form(&[
            ("text", "آگهی را ببینید"),
            ("r00_caption", "مشاهدهٔ آگهی"),
            ("r00_icon", "SEND"),
            ("r00_kind", "post"),
            ("s00_caption", "ویرایش آگهی"),
            ("s00_icon", "SEND"),
            ("s00_kind", "manage"),
        ]);
        let post = PostToken::parse("gZd7omnS").unwrap();
        let body = to_kenar_json(&parse_form(&fields, Some(&post)).unwrap(), "m-1");
        assert_eq!(
            body["receiver_buttons"]["rows"][0]["buttons"][0]["action"],
            json!({ "open_post_page": { "post_token": "gZd7omnS" } })
        );
        assert_eq!(
            body["sender_buttons"]["rows"][0]["buttons"][0]["action"],
            json!({ "open_post_manage_page": { "post_token": "gZd7omnS" } })
        );
        let errors = parse_form(&fields, None).unwrap_err();
        assert!(errors.contains_key("r00_kind") && errors.contains_key("s00_kind"));
    }
}
