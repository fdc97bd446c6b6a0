//! The composer's form as the browser sends it, typed, and its parse into a message.
//!
//! Field names are made here and only here: the page writes them with [`Slot::field`] and the
//! form reads them back through the same function, so a renamed field cannot drift apart from
//! its reader. Problems are [`Problem`]s keyed by field name; the composer page words them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use kenar::{ConversationId, PostToken, UserId, UserSide, icons};

pub use super::message::{
    ASK_AVAILABLE, ASK_KEY, ASK_POST_KEY, Action, Attachment, Button, ButtonGrid, GRID_COLS,
    GRID_ROWS, OutgoingMessage, PAGE_KEY, Side, Slot,
};

/// Divar documents no limit; long texts read badly in a chat bubble.
pub const MAX_TEXT_CHARS: usize = 1000;
pub const MAX_CAPTION_CHARS: usize = 30;
pub const MAX_DATA_PAIRS: usize = 10;
pub const MAX_TEMPLATE_NAME_CHARS: usize = 60;
/// Keys of a server-link button's data that the add-on itself writes (`kc_page`…, see
/// `domain::message`); a person may not type them.
pub const RESERVED_DATA_PREFIX: &str = "kc_";

impl Slot {
    /// The form field of one part of this slot, e.g. `s01_caption`.
    pub fn field(self, part: Part) -> String {
        format!("{}_{}", self.id(), part.as_str())
    }
}

/// The parts of one button slot, in the order the page shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Caption,
    Icon,
    Kind,
    Link,
    Data,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Caption,
        Part::Icon,
        Part::Kind,
        Part::Link,
        Part::Data,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caption => "caption",
            Self::Icon => "icon",
            Self::Kind => "kind",
            Self::Link => "link",
            Self::Data => "data",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A button slot as typed. `kind` is what tapping does: `link`, `post`, `manage`, `server` (the
/// message's page in the add-on), or `page:<key>` (a feature's page, see `Catalog`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotForm {
    pub caption: String,
    pub icon: String,
    pub kind: String,
    pub link: String,
    pub data: String,
}

impl SlotForm {
    pub fn get(&self, part: Part) -> &str {
        match part {
            Part::Caption => &self.caption,
            Part::Icon => &self.icon,
            Part::Kind => &self.kind,
            Part::Link => &self.link,
            Part::Data => &self.data,
        }
    }

    fn get_mut(&mut self, part: Part) -> &mut String {
        match part {
            Part::Caption => &mut self.caption,
            Part::Icon => &mut self.icon,
            Part::Kind => &mut self.kind,
            Part::Link => &mut self.link,
            Part::Data => &mut self.data,
        }
    }

    /// Whether it holds anything a person typed or chose (an icon alone does not count).
    pub fn is_used(&self) -> bool {
        [&self.caption, &self.kind, &self.link, &self.data]
            .iter()
            .any(|v| !v.trim().is_empty())
    }
}

/// Which of the form's submit buttons was pressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Intent {
    #[default]
    Send,
    Preview,
    /// Back from the post-wide confirm step, to change the message.
    Edit,
    SaveTemplate,
}

/// A tap in the button editor: the form comes back with the change made, nothing sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditRequest {
    /// `add=r:map`: the preset `map` on the receiver's grid.
    Add { side: Side, preset: String },
    /// `remove=s01`.
    Remove(Slot),
}

/// The composer form (to one conversation, or to every conversation of a post).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawForm")]
pub struct ComposeForm {
    pub text: String,
    /// Made with the page; a second submit of the same page finds the first send.
    pub idempotency_key: String,
    pub intent: Intent,
    pub edit: Option<EditRequest>,
    pub template_name: String,
    /// Only the slots that hold something.
    pub slots: BTreeMap<Slot, SlotForm>,
    /// The photo or file already on Divar's upload host, carried by the page's hidden fields.
    pub attachment: Option<Attachment>,
    /// Why the file chosen with this submit was not taken (set as the form arrives).
    pub attach_problem: Option<Problem>,
}

/// The form as urlencoded: the fixed fields by name, the slots by their field names; anything
/// else (the visit's `csrf_token`, a field a client made up) is not part of a draft.
#[derive(Deserialize)]
struct RawForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    idempotency_key: String,
    action: Option<String>,
    add: Option<String>,
    remove: Option<String>,
    #[serde(default)]
    template_name: String,
    media_token: Option<String>,
    media_name: Option<String>,
    media_kind: Option<String>,
    media_size: Option<String>,
    #[serde(flatten)]
    rest: HashMap<String, String>,
}

impl From<RawForm> for ComposeForm {
    fn from(raw: RawForm) -> Self {
        // `detach` takes the attachment off and shows the draft again.
        let detach = raw.action.as_deref() == Some("detach");
        let attachment = match (
            raw.media_token,
            raw.media_name,
            raw.media_kind,
            raw.media_size,
        ) {
            (Some(token), Some(name), Some(kind), Some(size)) if !detach && !token.is_empty() => {
                kenar::upload::MediaKind::parse(&kind)
                    .zip(size.parse().ok())
                    .map(|(kind, size)| Attachment {
                        media_token: token,
                        file_name: name,
                        kind: kind.as_str().to_string(),
                        size,
                    })
            }
            _ => None,
        };
        let intent = match raw.action.as_deref() {
            Some("preview" | "detach") => Intent::Preview,
            Some("edit") => Intent::Edit,
            Some("save_template") => Intent::SaveTemplate,
            _ => Intent::Send,
        };
        let edit = match (raw.add, raw.remove) {
            (Some(add), _) => add.split_once(':').and_then(|(side, preset)| {
                let mut side = side.chars();
                let one = side.next().and_then(Side::from_prefix);
                one.filter(|_| side.next().is_none())
                    .map(|side| EditRequest::Add {
                        side,
                        preset: preset.to_string(),
                    })
            }),
            (None, Some(remove)) => Slot::parse(&remove).map(EditRequest::Remove),
            (None, None) => None,
        };
        let mut form = ComposeForm {
            text: raw.text,
            idempotency_key: raw.idempotency_key,
            intent,
            edit,
            template_name: raw.template_name,
            slots: BTreeMap::new(),
            attachment,
            attach_problem: None,
        };
        for (name, value) in raw.rest {
            if let Some((slot, part)) = slot_field(&name) {
                form.set(slot, part, value);
            }
        }
        form
    }
}

/// `s01_caption` -> (slot, part).
fn slot_field(name: &str) -> Option<(Slot, Part)> {
    let (slot, part) = name.split_once('_')?;
    Some((Slot::parse(slot)?, Part::parse(part)?))
}

impl ComposeForm {
    pub fn slot(&self, slot: Slot) -> Option<&SlotForm> {
        self.slots.get(&slot)
    }

    pub fn set(&mut self, slot: Slot, part: Part, value: String) {
        if value.is_empty() && !self.slots.contains_key(&slot) {
            return;
        }
        *self.slots.entry(slot).or_default().get_mut(part) = value;
    }

    pub fn clear(&mut self, slot: Slot) {
        self.slots.remove(&slot);
    }

    pub fn is_used(&self, slot: Slot) -> bool {
        self.slot(slot).is_some_and(SlotForm::is_used)
    }

    /// The draft as field name -> value, the way it is saved as a template and carried through
    /// the confirm step's hidden fields (empty values left out).
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![("text".to_string(), self.text.clone())];
        for (slot, form) in &self.slots {
            for part in Part::ALL {
                fields.push((slot.field(part), form.get(part).to_string()));
            }
        }
        fields.retain(|(_, v)| !v.is_empty());
        fields
    }

    /// [`ComposeForm::fields`] and the attachment's hidden fields: what a page carries the draft
    /// in (a saved template keeps no attachment: its media token may not last).
    pub fn fields_with_attachment(&self) -> Vec<(String, String)> {
        let mut fields = self.fields();
        if let Some(a) = &self.attachment {
            fields.extend([
                ("media_token".to_string(), a.media_token.clone()),
                ("media_name".to_string(), a.file_name.clone()),
                ("media_kind".to_string(), a.kind.clone()),
                ("media_size".to_string(), a.size.to_string()),
            ]);
        }
        fields
    }

    /// A saved draft back into a form (see [`ComposeForm::fields`]).
    pub fn from_fields(fields: &HashMap<String, String>) -> Self {
        let mut form = Self {
            text: fields.get("text").cloned().unwrap_or_default(),
            ..Self::default()
        };
        for (name, value) in fields {
            if let Some((slot, part)) = slot_field(name) {
                form.set(slot, part, value.clone());
            }
        }
        form
    }

    /// Checks the whole form; every problem is reported, each under its field's name.
    pub fn parse(&self, writer: &Writer, rules: &Rules) -> Result<OutgoingMessage, FieldErrors> {
        let mut errors = FieldErrors::new();
        let text = self.text.trim().to_string();
        // A photo or file may go alone.
        if text.is_empty() && self.attachment.is_none() {
            errors.insert("text".into(), Problem::TextMissing);
        } else if text.chars().count() > MAX_TEXT_CHARS {
            errors.insert("text".into(), Problem::TextTooLong);
        }
        if let Some(problem) = &self.attach_problem {
            errors.insert("media".into(), problem.clone());
        }
        let mut grid = |side| {
            let mut rows = Vec::new();
            for row in 0..GRID_ROWS {
                let buttons: Vec<Button> = (0..GRID_COLS)
                    .filter_map(|col| {
                        let slot = Slot { side, row, col };
                        let form = self.slot(slot)?;
                        parse_button(slot, form, writer, rules, &mut errors)
                    })
                    .collect();
                if !buttons.is_empty() {
                    rows.push(buttons);
                }
            }
            ButtonGrid::new(rows).expect("at most GRID_ROWS rows of GRID_COLS, none empty")
        };
        let sender_buttons = grid(Side::Sender);
        let receiver_buttons = grid(Side::Receiver);
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

    /// The page's key, when it came back whole.
    pub fn key(&self) -> Option<IdempotencyKey> {
        IdempotencyKey::parse(&self.idempotency_key)
    }

    /// The name a draft is saved under, checked.
    pub fn template_name(&self) -> Result<String, Problem> {
        let name = self.template_name.trim();
        if name.is_empty() || name.chars().count() > MAX_TEMPLATE_NAME_CHARS {
            return Err(Problem::TemplateName);
        }
        Ok(name.to_string())
    }
}

/// The post-wide confirm step's form: the composer's fields carried along, and the moment and
/// digest of the recipient list the seller was shown.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfirmForm {
    #[serde(flatten)]
    pub message: ComposeForm,
    #[serde(default)]
    pub as_of: String,
    #[serde(default)]
    pub digest: String,
    /// Which of the confirm page's two buttons was pressed.
    #[serde(default)]
    pub mode: ConfirmMode,
}

/// A post-wide message goes to the conversations known now, or is turned on as the automatic
/// first reply to each new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmMode {
    #[default]
    Now,
    AutoReply,
}

impl ConfirmForm {
    /// When the list was taken: the page always sends it; a form without it did not arrive whole.
    pub fn as_of(&self) -> Option<i64> {
        self.as_of.parse().ok()
    }
}

/// The key a composer page is made with: a second submit of the same page finds what the
/// first one did instead of doing it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Only a UUID: the page makes it, nothing else is expected.
    pub fn parse(key: &str) -> Option<Self> {
        uuid::Uuid::parse_str(key).ok().map(|k| Self(k.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for IdempotencyKey {
    fn default() -> Self {
        Self::new()
    }
}

/// Who is writing, and where: what the composer and the features that add to it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub user: UserId,
    /// The writer's side of the conversation, when Divar said it.
    pub side: Option<UserSide>,
    /// `None` when writing to every conversation of a post.
    pub conversation: Option<ConversationId>,
    /// The post the conversation (or the post-wide message) is about.
    pub post: Option<PostToken>,
}

impl Writer {
    /// Writing to every conversation of a post, as its owner.
    pub fn is_broadcast(&self) -> bool {
        self.conversation.is_none()
    }

    /// Where the browser keeps what this writer typed and has not sent (static/js/compose.js).
    pub fn draft_key(&self) -> String {
        draft_key(self.conversation.as_ref(), self.post.as_ref())
    }
}

/// The key of an unsent draft in the browser: one per conversation, one per post-wide message.
/// The composer saves under it as the person types; the page that shows the message accepted
/// clears it.
pub fn draft_key(conversation: Option<&ConversationId>, post: Option<&PostToken>) -> String {
    match (conversation, post) {
        (Some(conversation), _) => format!("c:{}", conversation.as_str()),
        (None, Some(post)) => format!("p:{}", post.as_str()),
        (None, None) => String::new(),
    }
}

/// What a form is checked against besides its writer.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The feature pages a button may open (`page:<key>`).
    pub pages: Vec<&'static str>,
    /// Where the add-on's own entry links live (`<APP_BASE_URL>/s/`): a button may not link
    /// there, or whoever tapped it would enter in its author's name.
    pub entry_links: Url,
}

impl Rules {
    fn not_an_entry_link(&self, url: Url) -> Result<Url, (Part, Problem)> {
        // By host, whatever the scheme or port: `http://` would be redirected to us as well.
        let host = |u: &Url| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        };
        let ours = host(&url) == host(&self.entry_links)
            && url.path().starts_with(self.entry_links.path());
        if ours {
            Err((Part::Link, Problem::LinkToEntry))
        } else {
            Ok(url)
        }
    }
}

/// What is wrong with one field. The composer page says it in Persian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    TextMissing,
    TextTooLong,
    CaptionMissing,
    CaptionTooLong,
    /// A bidi control character, which would reorder the caption as the other side reads it.
    CaptionBidi,
    IconUnknown,
    KindMissing,
    /// A post button in a conversation that is about no post.
    NoPost,
    LinkMissing,
    /// A phone number where a web link belongs.
    LinkIsPhone,
    LinkInvalid,
    /// One of the add-on's own entry links: whoever tapped it would act in its owner's name.
    LinkToEntry,
    /// A data line that is not `key=value` (the line).
    DataLine(String),
    /// A data key that is not allowed (the key).
    DataKey(String),
    DataTooMany,
    TemplateName,
    TemplateTooLarge,
    TemplatesFull,
    /// A file Divar's chat takes no photo or file of (by name, or by content).
    MediaType,
    /// Larger than Divar's limit for its kind.
    MediaTooLarge,
    /// Divar's upload host did not take it now.
    MediaUnavailable,
}

/// Problems keyed by form field name.
pub type FieldErrors = BTreeMap<String, Problem>;

fn parse_button(
    slot: Slot,
    form: &SlotForm,
    writer: &Writer,
    rules: &Rules,
    errors: &mut FieldErrors,
) -> Option<Button> {
    if !form.is_used() {
        return None;
    }
    let caption = form.caption.trim();
    // Typed on a phone keyboard, `place` means `PLACE`.
    let icon = form.icon.trim().to_ascii_uppercase();
    let before = errors.len();
    let mut problem = |part: Part, problem: Problem| {
        errors.insert(slot.field(part), problem);
    };
    if caption.is_empty() {
        problem(Part::Caption, Problem::CaptionMissing);
    } else if caption.chars().count() > MAX_CAPTION_CHARS {
        problem(Part::Caption, Problem::CaptionTooLong);
    } else if caption.chars().any(is_bidi_control) {
        problem(Part::Caption, Problem::CaptionBidi);
    }
    if !icons::is_known(&icon) {
        problem(Part::Icon, Problem::IconUnknown);
    }
    let action = match form.kind.trim() {
        "link" => web_link(form.link.trim())
            .and_then(|url| rules.not_an_entry_link(url))
            .map(Action::DirectLink),
        "server" => parse_data(&form.data).map(Action::ServerLink),
        "post" | "manage" => match &writer.post {
            Some(post) if form.kind.trim() == "post" => Ok(Action::PostPage(post.clone())),
            Some(post) => Ok(Action::PostManagePage(post.clone())),
            None => Err((Part::Kind, Problem::NoPost)),
        },
        // Divar asks the add-on at tap time; the answer comes from the post's live state.
        "available" => match &writer.post {
            Some(post) => Ok(Action::DynamicAction(Map::from_iter([
                (ASK_KEY.to_string(), Value::from(ASK_AVAILABLE)),
                (ASK_POST_KEY.to_string(), Value::from(post.as_str())),
            ]))),
            None => Err((Part::Kind, Problem::NoPost)),
        },
        kind => match kind.strip_prefix("page:") {
            Some(page) if rules.pages.contains(&page) => parse_data(&form.data).map(|mut data| {
                data.insert(PAGE_KEY.into(), Value::from(page));
                Action::ServerLink(data)
            }),
            _ => Err((Part::Kind, Problem::KindMissing)),
        },
    };
    let action = action.map_err(|(part, p)| problem(part, p)).ok();
    match action {
        Some(action) if errors.len() == before => Some(Button {
            caption: caption.to_string(),
            icon,
            action,
        }),
        _ => None,
    }
}

/// Embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069): in a caption they
/// reorder what the other side reads (a `U+202E` turns «لغو» into something else). The marks
/// (U+200E, U+200F) and the zero-width non-joiner Persian needs stay allowed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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
/// only). A host needs a dot: `https://salam` or `https//x.com` typed by hand is a mistake.
fn web_link(link: &str) -> Result<Url, (Part, Problem)> {
    let bad = |problem| (Part::Link, problem);
    if link.is_empty() {
        return Err(bad(Problem::LinkMissing));
    }
    let phone = link
        .chars()
        .all(|c| c.is_ascii_digit() || ('۰'..='۹').contains(&c) || " +-()".contains(c));
    if phone {
        return Err(bad(Problem::LinkIsPhone));
    }
    let url = Url::parse(&with_scheme(link)).map_err(|_| bad(Problem::LinkInvalid))?;
    let host = url.host_str().unwrap_or_default();
    let real_host = (host.contains('.') && !host.ends_with('.')) || host == "localhost";
    if !matches!(url.scheme(), "http" | "https") || !real_host || link.len() > 2048 {
        return Err(bad(Problem::LinkInvalid));
    }
    Ok(url)
}

/// `key=value` lines into the button's data object.
fn parse_data(text: &str) -> Result<Map<String, Value>, (Part, Problem)> {
    let bad = |problem| (Part::Data, problem);
    let mut map = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad(Problem::DataLine(line.to_string())));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && key.len() <= 40
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_key || key.starts_with(RESERVED_DATA_PREFIX) {
            return Err(bad(Problem::DataKey(key.to_string())));
        }
        map.insert(
            key.to_string(),
            Value::String(value.trim().chars().take(200).collect()),
        );
    }
    if map.len() > MAX_DATA_PAIRS {
        return Err(bad(Problem::DataTooMany));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> ComposeForm {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        serde_urlencoded::from_str(&query).unwrap()
    }

    /// The rules of an add-on at `https://addon.example/` with the feature pages `pages`.
    fn rules(pages: &[&'static str]) -> Rules {
        Rules {
            pages: pages.to_vec(),
            entry_links: Url::parse("https://addon.example/s/").unwrap(),
        }
    }

    fn writer(post: Option<&str>) -> Writer {
        Writer {
            user: UserId::parse("u-ali").unwrap(),
            side: Some(UserSide::Seller),
            conversation: Some(ConversationId::parse("c-1").unwrap()),
            post: post.map(|p| PostToken::parse(p).unwrap()),
        }
    }

    #[test]
    fn the_form_reads_its_own_field_names_back() {
        let f = form(&[
            ("text", "سلام"),
            ("s12_caption", "نقشه"),
            ("r00_kind", "server"),
            ("action", "preview"),
            ("remove", "s01"),
            ("csrf_token", "not a draft field"),
            ("s33_caption", "no such place"),
        ]);
        let s12 = Slot {
            side: Side::Sender,
            row: 1,
            col: 2,
        };
        assert_eq!(s12.field(Part::Caption), "s12_caption");
        assert_eq!(f.slot(s12).unwrap().caption, "نقشه");
        assert_eq!(f.intent, Intent::Preview);
        assert_eq!(
            f.edit,
            Some(EditRequest::Remove(Slot::parse("s01").unwrap()))
        );
        assert_eq!(f.slots.len(), 2, "{:?}", f.slots);
        let back = ComposeForm::from_fields(&f.fields().into_iter().collect());
        assert_eq!(back.slots, f.slots);
        assert_eq!(back.text, f.text);
    }

    #[test]
    fn a_full_form_becomes_a_message_with_compacted_grids() {
        let message = form(&[
            ("text", "  سلام  "),
            ("s12_caption", "نقشه"),
            ("s12_icon", "SEND"),
            ("s12_kind", "link"),
            ("s12_link", "https://example.com/map"),
            ("r00_caption", "جزئیات"),
            ("r00_icon", "checked"),
            ("r00_kind", "server"),
            ("r00_data", "booking=12\nview = buyer"),
        ])
        .parse(&writer(None), &rules(&[]))
        .unwrap();
        assert_eq!(message.text, "سلام");
        assert_eq!(message.sender_buttons.rows().len(), 1, "empty rows dropped");
        let receiver = &message.receiver_buttons.rows()[0][0];
        assert_eq!(receiver.icon, "CHECKED", "icon names in any case");
        let Action::ServerLink(data) = &receiver.action else {
            panic!("{receiver:?}")
        };
        assert_eq!(data["booking"], "12");
        assert_eq!(data["view"], "buyer");
    }

    /// A button may not carry one of our own entry links (under the base, on our origin), and
    /// a caption may not hold a bidi override; other links and Persian's ZWNJ are fine.
    #[test]
    fn entry_links_and_bidi_controls_are_refused_on_buttons() {
        let button = |caption: &str, link: &str| {
            form(&[
                ("text", "سلام"),
                ("r00_caption", caption),
                ("r00_icon", "SEND"),
                ("r00_kind", "link"),
                ("r00_link", link),
            ])
            .parse(&writer(None), &rules(&[]))
        };
        for entry in [
            "https://addon.example/s/AbC-_123",
            "addon.example/s/x",
            "https://ADDON.example/s/x",
            "http://addon.example/s/x",
        ] {
            let errors = button("ورود", entry).unwrap_err();
            assert_eq!(errors["r00_link"], Problem::LinkToEntry, "{entry}");
        }
        for fine in ["https://addon.example/privacy", "https://example.com/s/abc"] {
            assert!(button("ورود", fine).is_ok(), "{fine}");
        }
        // A trailing dot names the same host: refused too (as no real link).
        assert!(button("ورود", "https://addon.example./s/x").is_err());
        let errors = button("\u{202E}لغو", "https://example.com").unwrap_err();
        assert_eq!(errors["r00_caption"], Problem::CaptionBidi);
        let errors = button("a\u{2067}b", "https://example.com").unwrap_err();
        assert_eq!(errors["r00_caption"], Problem::CaptionBidi);
        assert!(button("می\u{200C}خواهم", "https://example.com").is_ok());
    }

    #[test]
    fn every_problem_is_reported_beside_its_field() {
        let errors = form(&[
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
            ("r02_caption", "صفحه"),
            ("r02_icon", "SEND"),
            ("r02_kind", "page:unknown"),
        ])
        .parse(&writer(None), &rules(&["faq"]))
        .unwrap_err();
        assert_eq!(errors["text"], Problem::TextMissing);
        assert_eq!(errors["s00_caption"], Problem::CaptionTooLong);
        assert_eq!(errors["s00_icon"], Problem::IconUnknown);
        assert_eq!(errors["s00_link"], Problem::LinkInvalid);
        assert_eq!(errors["r22_caption"], Problem::CaptionMissing);
        assert_eq!(errors["r22_data"], Problem::DataKey("kc_page".into()));
        assert_eq!(errors["r01_kind"], Problem::KindMissing);
        assert_eq!(errors["r02_kind"], Problem::KindMissing);
    }

    #[test]
    fn a_feature_page_button_carries_its_page_key() {
        let message = form(&[
            ("text", "پرسش‌ها"),
            ("r00_caption", "پرسش‌های متداول"),
            ("r00_icon", "HELP"),
            ("r00_kind", "page:faq"),
        ])
        .parse(&writer(None), &rules(&["faq"]))
        .unwrap();
        let Action::ServerLink(data) = &message.receiver_buttons.rows()[0][0].action else {
            panic!()
        };
        assert_eq!(data[PAGE_KEY], "faq");
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
            assert_eq!(web_link(typed).map(String::from), Ok(sent.to_string()));
        }
        for typed in ["0912-123-4567", "+989121234567", "۰۹۱۲۱۲۳۴۵۶۷"] {
            assert_eq!(web_link(typed), Err((Part::Link, Problem::LinkIsPhone)));
        }
        for typed in [
            "salam",
            "https//example.com",
            "http:/example.com",
            "ftp://example.com",
            "javascript:alert(1)",
            "https://",
        ] {
            assert_eq!(web_link(typed), Err((Part::Link, Problem::LinkInvalid)));
        }
    }

    #[test]
    fn the_text_limit_counts_characters_not_bytes() {
        let ok = "س".repeat(MAX_TEXT_CHARS);
        assert!(
            form(&[("text", &ok)])
                .parse(&writer(None), &rules(&[]))
                .is_ok()
        );
        let long = "س".repeat(MAX_TEXT_CHARS + 1);
        assert!(
            form(&[("text", &long)])
                .parse(&writer(None), &rules(&[]))
                .is_err()
        );
    }

    #[test]
    fn post_buttons_open_the_conversations_post() {
        let f = form(&[
            ("text", "آگهی را ببینید"),
            ("r00_caption", "مشاهدهٔ آگهی"),
            ("r00_icon", "SEND"),
            ("r00_kind", "post"),
            ("s00_caption", "ویرایش آگهی"),
            ("s00_icon", "SEND"),
            ("s00_kind", "manage"),
        ]);
        let message = f.parse(&writer(Some("gZd7omnS")), &rules(&[])).unwrap();
        let post = PostToken::parse("gZd7omnS").unwrap();
        assert_eq!(
            message.receiver_buttons.rows()[0][0].action,
            Action::PostPage(post.clone())
        );
        assert_eq!(
            message.sender_buttons.rows()[0][0].action,
            Action::PostManagePage(post)
        );
        let errors = f.parse(&writer(None), &rules(&[])).unwrap_err();
        assert_eq!(errors["r00_kind"], Problem::NoPost);
        assert_eq!(errors["s00_kind"], Problem::NoPost);
    }
}
