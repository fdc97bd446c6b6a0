//! A chat message the add-on sends, as it travels: the places of its buttons, the data our own
//! buttons carry so that a tap finds its way back, and reading a sent body again
//! (docs/divar-platform.md, "Sending").

use serde_json::{Map, Value, json};

pub use kenar::message::{Action, Button, ButtonGrid, GRID_COLS, GRID_ROWS};

/// What the composer makes: Divar's message, before it knows its id.
pub type OutgoingMessage = kenar::message::Message;

/// The one routing convention for a tap on an `open_server_link` button: the add-on adds these
/// keys to the button's data, and session initialization brings them back. `kc_page` names the
/// page to open (`message`, or a feature's page key), `kc_message` the message, `kc_button` the
/// button's place (e.g. `r01`). A person may not type `kc_` keys.
pub const PAGE_KEY: &str = "kc_page";
pub const MESSAGE_KEY: &str = "kc_message";
pub const BUTTON_KEY: &str = "kc_button";
/// The page a server-link button opens unless it names another: the message it came with.
pub const MESSAGE_PAGE: &str = "message";

/// A `get_dynamic_action` button's data: `kc_ask` names the question the add-on answers when
/// it is tapped, `post_token` the post it is about.
pub const ASK_KEY: &str = "kc_ask";
/// "Is it still available?", answered from the post's live state.
pub const ASK_AVAILABLE: &str = "available";
pub const ASK_POST_KEY: &str = "post_token";

/// A stored send body's photo or file, already on Divar's upload host: the body carries it under
/// this key, and the outbox sends it as a message of its own before the text
/// (docs/divar-platform.md, "Media": a message is text or media, not both).
pub const MEDIA_KEY: &str = "kc_media";

/// A photo or file a message carries: its media token and what the person chose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub media_token: String,
    pub file_name: String,
    /// `image`, `file`, `voice` or `video` (`kenar::upload::MediaKind`).
    pub kind: String,
    pub size: u64,
}

impl Attachment {
    /// Adds the attachment to a send body made by [`to_kenar_json`].
    pub fn attach_to(&self, body: &mut Value) {
        if let (Some(fields), Ok(attachment)) = (body.as_object_mut(), serde_json::to_value(self)) {
            fields.insert(MEDIA_KEY.into(), attachment);
        }
    }

    /// The attachment a stored body carries, if any.
    pub fn of(body: &Value) -> Option<Self> {
        serde_json::from_value(body.get(MEDIA_KEY)?.clone()).ok()
    }
}

/// The calls to Divar one stored body makes, in order, each with the suffix of its idempotency
/// key. A body with media and text is two messages, the media first (under `<key>-media`); with
/// media and no text, one media message that carries the buttons; without media, the body as is.
pub fn send_parts(body: &Value) -> Vec<(Value, &'static str)> {
    let Some(attachment) = Attachment::of(body) else {
        return vec![(body.clone(), "")];
    };
    let mut rest = body.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove(MEDIA_KEY);
    }
    // proto3's JSON reads an empty `message` as absent: this meets both the schema's required
    // `message` and the "not both" rule.
    let media = json!({ "message": "", "media_token": attachment.media_token });
    let has_text = rest["message"]
        .as_str()
        .is_some_and(|text| !text.trim().is_empty());
    if has_text {
        return vec![(media, "-media"), (rest, "")];
    }
    let mut alone = media;
    for grid in ["sender_buttons", "receiver_buttons"] {
        if let Some(buttons) = rest.get(grid) {
            alone[grid] = buttons.clone();
        }
    }
    vec![(alone, "")]
}

/// Whose grid a button is on: the sender's (the one writing) or the receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Sender,
    Receiver,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Sender, Side::Receiver];

    /// The letter the side's field names start with.
    pub fn prefix(self) -> char {
        match self {
            Self::Sender => 's',
            Self::Receiver => 'r',
        }
    }

    pub fn from_prefix(prefix: char) -> Option<Self> {
        match prefix {
            's' => Some(Self::Sender),
            'r' => Some(Self::Receiver),
            _ => None,
        }
    }
}

/// One place in a side's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub side: Side,
    pub row: usize,
    pub col: usize,
}

impl Slot {
    /// Every place of `side`, row by row: the order a new button looks for a free one.
    pub fn all(side: Side) -> impl Iterator<Item = Slot> {
        (0..GRID_ROWS).flat_map(move |row| (0..GRID_COLS).map(move |col| Slot { side, row, col }))
    }

    /// `s01`: side, row, column. Also what a sent button carries to name its place.
    pub fn id(self) -> String {
        format!("{}{}{}", self.side.prefix(), self.row, self.col)
    }

    pub fn parse(id: &str) -> Option<Self> {
        let mut chars = id.chars();
        let side = Side::from_prefix(chars.next()?)?;
        let row = chars.next()?.to_digit(10)? as usize;
        let col = chars.next()?.to_digit(10)? as usize;
        (chars.next().is_none() && row < GRID_ROWS && col < GRID_COLS).then_some(Self {
            side,
            row,
            col,
        })
    }
}

/// The send-message body for the message stored as `message_id`: each of our server-link buttons
/// carries the message's id, its own place and the page it opens.
pub fn to_kenar_json(message: &OutgoingMessage, message_id: &str) -> Value {
    let mut message = message.clone();
    for (side, grid) in [
        (Side::Sender, &mut message.sender_buttons),
        (Side::Receiver, &mut message.receiver_buttons),
    ] {
        for ((row, col), data) in grid.server_links_mut() {
            data.entry(PAGE_KEY).or_insert_with(|| json!(MESSAGE_PAGE));
            data.insert(MESSAGE_KEY.into(), json!(message_id));
            data.insert(BUTTON_KEY.into(), json!(Slot { side, row, col }.id()));
        }
    }
    message.to_json()
}

/// The button a tap came from, read back from the sent body by the place its data names: its
/// side, and its caption when the body still holds it.
pub fn tapped_button(body: &Value, data: &Map<String, Value>) -> Option<(Side, Option<String>)> {
    let slot = Slot::parse(data.get(BUTTON_KEY)?.as_str()?)?;
    let grid = match slot.side {
        Side::Sender => "sender_buttons",
        Side::Receiver => "receiver_buttons",
    };
    let caption = body
        .pointer(&format!(
            "/{grid}/rows/{}/buttons/{}/caption",
            slot.row, slot.col
        ))
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((slot.side, caption))
}

/// The text and buttons of a body as it was sent to Divar, for showing it again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentBody {
    pub text: String,
    pub sender_rows: Vec<Vec<(String, String)>>,
    pub receiver_rows: Vec<Vec<(String, String)>>,
    pub attachment: Option<Attachment>,
}

/// Reads a stored send body back: `(caption, icon)` per button. A stored body is ours, so a
/// missing part reads as empty rather than failing the page.
pub fn read_body(body: &Value) -> SentBody {
    let rows = |grid: &str| -> Vec<Vec<(String, String)>> {
        let text = |b: &Value, key: &str| b[key].as_str().unwrap_or_default().to_string();
        body.pointer(&format!("/{grid}/rows"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|row| {
                row.get("buttons")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|b| (text(b, "caption"), text(b, "icon")))
                    .collect()
            })
            .collect()
    };
    SentBody {
        text: body["message"].as_str().unwrap_or_default().to_string(),
        sender_rows: rows("sender_buttons"),
        receiver_rows: rows("receiver_buttons"),
        attachment: Attachment::of(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_goes_first_and_text_keeps_the_buttons() {
        let attachment = Attachment {
            media_token: "m-1".into(),
            file_name: "car.png".into(),
            kind: "image".into(),
            size: 10,
        };
        let grid = json!({ "rows": [{ "buttons": [{ "caption": "x" }] }] });
        let mut body = json!({ "type": "TEXT", "message": "سلام", "receiver_buttons": grid });
        assert_eq!(send_parts(&body), vec![(body.clone(), "")]);
        attachment.attach_to(&mut body);
        assert_eq!(Attachment::of(&body), Some(attachment.clone()));
        let parts = send_parts(&body);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            (json!({ "message": "", "media_token": "m-1" }), "-media")
        );
        assert_eq!(parts[1].0["message"], "سلام");
        assert!(parts[1].0.get(MEDIA_KEY).is_none());
        // No text: one media message, with the buttons.
        let mut alone = json!({ "type": "TEXT", "message": "", "receiver_buttons": grid });
        attachment.attach_to(&mut alone);
        let parts = send_parts(&alone);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0["media_token"], "m-1");
        assert_eq!(parts[0].0["receiver_buttons"], grid);
    }

    fn button(caption: &str, action: Action) -> Button {
        Button {
            caption: caption.into(),
            icon: "INFO".into(),
            action,
        }
    }

    #[test]
    fn server_links_carry_their_message_place_and_page() {
        let mut own_page = Map::new();
        own_page.insert(PAGE_KEY.into(), json!("faq"));
        let message = OutgoingMessage {
            text: "سلام".into(),
            sender_buttons: ButtonGrid::default(),
            receiver_buttons: ButtonGrid::new(vec![vec![
                button("جزئیات", Action::ServerLink(Map::new())),
                button("پرسش‌ها", Action::ServerLink(own_page)),
            ]])
            .unwrap(),
        };
        let body = to_kenar_json(&message, "m-1");
        let data = |i: usize| {
            body["receiver_buttons"]["rows"][0]["buttons"][i]["action"]["open_server_link"]["data"]
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(data(0)[PAGE_KEY], MESSAGE_PAGE);
        assert_eq!(data(0)[MESSAGE_KEY], "m-1");
        assert_eq!(data(0)[BUTTON_KEY], "r00");
        assert_eq!(data(1)[PAGE_KEY], "faq", "a page the button names is kept");
        assert_eq!(
            tapped_button(&body, &data(1)),
            Some((Side::Receiver, Some("پرسش‌ها".to_string())))
        );
        assert_eq!(tapped_button(&body, &Map::new()), None);
        let read = read_body(&body);
        assert_eq!(read.text, "سلام");
        assert_eq!(read.receiver_rows[0][1], ("پرسش‌ها".into(), "INFO".into()));
    }

    #[test]
    fn slots_name_their_place_and_parse_back() {
        for slot in Slot::all(Side::Receiver).chain(Slot::all(Side::Sender)) {
            assert_eq!(Slot::parse(&slot.id()), Some(slot));
        }
        for bad in ["s33", "s0", "s001", "x00", ""] {
            assert_eq!(Slot::parse(bad), None, "{bad}");
        }
    }
}
