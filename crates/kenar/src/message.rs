//! A chat message as Divar's send API takes it: text, and a grid of buttons for each side of the
//! conversation (docs/divar-platform.md, "Sending").

use serde_json::{Map, Value, json};
use url::Url;

use crate::PostToken;

/// A grid holds at most this many rows…
pub const GRID_ROWS: usize = 3;
/// …of at most this many buttons.
pub const GRID_COLS: usize = 3;

/// What a button does when tapped.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `open_direct_link`: opens the URL.
    DirectLink(Url),
    /// `open_server_link {data}`: Divar calls the app's session initialization with `data`.
    ServerLink(Map<String, Value>),
    /// `open_post_page {post_token}`: the post's public page in Divar.
    PostPage(PostToken),
    /// `open_post_manage_page {post_token}`: the post's management page (its owner only).
    PostManagePage(PostToken),
    /// `get_dynamic_action {data}`: at tap time Divar asks the app's dynamic-action URL what to
    /// do, with `data` ([`crate::dynamic_action`]).
    DynamicAction(Map<String, Value>),
}

impl Action {
    fn to_json(&self) -> Value {
        match self {
            Self::DirectLink(url) => json!({ "open_direct_link": url.as_str() }),
            Self::ServerLink(data) => json!({ "open_server_link": { "data": data } }),
            Self::PostPage(post) => json!({ "open_post_page": { "post_token": post.as_str() } }),
            Self::PostManagePage(post) => {
                json!({ "open_post_manage_page": { "post_token": post.as_str() } })
            }
            Self::DynamicAction(data) => json!({ "get_dynamic_action": { "data": data } }),
        }
    }
}

/// One button of a [`ButtonGrid`].
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    /// The text on the button.
    pub caption: String,
    /// One of [`crate::icons`]; sent as both `icon` and the older `icon_name`.
    pub icon: String,
    /// What a tap does.
    pub action: Action,
}

/// At most [`GRID_ROWS`] rows of at most [`GRID_COLS`] buttons; no empty rows. The default is the
/// empty grid, which [`Message::to_json`] leaves out.
///
/// ```
/// use kenar::{PostToken, message::{Action, Button, ButtonGrid, GridError, Message}};
///
/// let view = Button {
///     caption: "مشاهده آگهی".into(),
///     icon: "INFO".into(),
///     action: Action::PostPage(PostToken::parse("wZC44q5D")?),
/// };
/// assert!(kenar::icons::is_known(&view.icon));
/// assert_eq!(ButtonGrid::new(vec![vec![view.clone(); 4]]), Err(GridError::TooManyButtons));
///
/// let message = Message {
///     text: "سلام".into(),
///     sender_buttons: ButtonGrid::default(),
///     receiver_buttons: ButtonGrid::new(vec![vec![view]])?,
/// };
/// let body = message.to_json();
/// assert_eq!(body["type"], "TEXT");
/// assert!(body.get("sender_buttons").is_none());
/// let action = &body["receiver_buttons"]["rows"][0]["buttons"][0]["action"];
/// assert_eq!(action["open_post_page"]["post_token"], "wZC44q5D");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ButtonGrid {
    rows: Vec<Vec<Button>>,
}

/// Why rows do not make a [`ButtonGrid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    /// More than [`GRID_ROWS`] rows.
    #[error("a grid has at most {GRID_ROWS} rows")]
    TooManyRows,
    /// A row of more than [`GRID_COLS`] buttons.
    #[error("a row has at most {GRID_COLS} buttons")]
    TooManyButtons,
    /// A row without buttons.
    #[error("a row has at least one button")]
    EmptyRow,
}

impl ButtonGrid {
    /// A grid of `rows`, if it keeps to the documented shape.
    pub fn new(rows: Vec<Vec<Button>>) -> Result<Self, GridError> {
        if rows.len() > GRID_ROWS {
            return Err(GridError::TooManyRows);
        }
        if rows.iter().any(Vec::is_empty) {
            return Err(GridError::EmptyRow);
        }
        if rows.iter().any(|row| row.len() > GRID_COLS) {
            return Err(GridError::TooManyButtons);
        }
        Ok(Self { rows })
    }

    /// The rows, top to bottom.
    pub fn rows(&self) -> &[Vec<Button>] {
        &self.rows
    }

    /// Whether the grid has no button.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The data of every `open_server_link` button with its place `(row, index in the row)`, to
    /// add what the app needs to route a tap.
    pub fn server_links_mut(
        &mut self,
    ) -> impl Iterator<Item = ((usize, usize), &mut Map<String, Value>)> {
        self.rows.iter_mut().enumerate().flat_map(|(r, row)| {
            row.iter_mut()
                .enumerate()
                .filter_map(move |(c, button)| match &mut button.action {
                    Action::ServerLink(data) => Some(((r, c), data)),
                    _ => None,
                })
        })
    }

    /// The data of every `open_server_link` button, to add what the app needs to route a tap.
    pub fn server_link_data_mut(&mut self) -> impl Iterator<Item = &mut Map<String, Value>> {
        self.rows
            .iter_mut()
            .flatten()
            .filter_map(|button| match &mut button.action {
                Action::ServerLink(data) => Some(data),
                _ => None,
            })
    }

    /// The grid as the send API takes it: `{"rows": [{"buttons": [...]}]}`.
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let buttons: Vec<Value> = row
                    .iter()
                    .map(|b| {
                        // `icon` for the current docs, `icon_name` for the original revision.
                        json!({ "action": b.action.to_json(), "icon": b.icon, "icon_name": b.icon, "caption": b.caption })
                    })
                    .collect();
                json!({ "buttons": buttons })
            })
            .collect();
        json!({ "rows": rows })
    }
}

/// A text message with buttons for its sender and its receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The text, sent as `message`.
    pub text: String,
    /// The buttons shown to the message's sender.
    pub sender_buttons: ButtonGrid,
    /// The buttons shown to the other party.
    pub receiver_buttons: ButtonGrid,
}

impl Message {
    /// The body of `POST /v2/open-platform/conversations/{id}/messages`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({ "type": "TEXT", "message": self.text });
        if !self.sender_buttons.is_empty() {
            body["sender_buttons"] = self.sender_buttons.to_json();
        }
        if !self.receiver_buttons.is_empty() {
            body["receiver_buttons"] = self.receiver_buttons.to_json();
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn button(action: Action) -> Button {
        Button {
            caption: "جزئیات".into(),
            icon: "INFO".into(),
            action,
        }
    }

    #[test]
    fn a_message_serializes_as_the_send_api_takes_it() {
        let post = PostToken::parse("gZd7omnS").unwrap();
        let message = Message {
            text: "سلام".into(),
            sender_buttons: ButtonGrid::new(vec![vec![button(Action::PostManagePage(
                post.clone(),
            ))]])
            .unwrap(),
            receiver_buttons: ButtonGrid::default(),
        };
        let body = message.to_json();
        assert_eq!(body["type"], "TEXT");
        assert!(body.get("receiver_buttons").is_none());
        let first = &body["sender_buttons"]["rows"][0]["buttons"][0];
        assert_eq!(first["icon"], "INFO");
        assert_eq!(first["icon_name"], "INFO");
        assert_eq!(
            first["action"],
            json!({ "open_post_manage_page": { "post_token": "gZd7omnS" } })
        );
    }

    #[test]
    fn grids_keep_to_three_by_three() {
        let link = || {
            button(Action::DirectLink(
                Url::parse("https://example.com").unwrap(),
            ))
        };
        assert_eq!(
            ButtonGrid::new(vec![vec![link()]; 4]),
            Err(GridError::TooManyRows)
        );
        assert_eq!(
            ButtonGrid::new(vec![vec![link(), link(), link(), link()]]),
            Err(GridError::TooManyButtons)
        );
        assert_eq!(ButtonGrid::new(vec![vec![]]), Err(GridError::EmptyRow));
        let mut grid =
            ButtonGrid::new(vec![vec![link(), button(Action::ServerLink(Map::new()))]]).unwrap();
        for data in grid.server_link_data_mut() {
            data.insert("k".into(), json!("v"));
        }
        assert_eq!(
            grid.to_json()["rows"][0]["buttons"][1]["action"]["open_server_link"]["data"]["k"],
            "v"
        );
    }
}
