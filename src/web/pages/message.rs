//! The page one of our buttons leads to: it speaks to whoever tapped, named after the button.

use askama::Template;

use crate::services::send::Tapped;

use super::{PreviewButton, PreviewView, message_status::StatusText, tehran_time};

#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct MessagePage {
    /// The caption of the button that brought the person here, when it is known.
    pub tapped: Option<String>,
    /// The person is the message's sender (else the other side of the conversation).
    pub mine: bool,
    pub text: String,
    /// The buttons under the message as this person sees them.
    pub rows: Vec<Vec<PreviewButton>>,
    /// The send's status, for its sender only.
    pub status: Option<&'static str>,
    pub time: String,
    /// The data of the button that brought the person here, as `key: value` lines.
    pub clicked: Vec<(String, String)>,
}

impl From<Tapped> for MessagePage {
    fn from(tapped: Tapped) -> Self {
        let preview = PreviewView::of_body(&tapped.body);
        Self {
            tapped: tapped.caption,
            mine: tapped.mine,
            text: preview.text,
            rows: if tapped.mine {
                preview.sender_rows
            } else {
                preview.receiver_rows
            },
            status: tapped.status.as_ref().map(|m| StatusText::of(m).label),
            time: tehran_time(tapped.created_at),
            clicked: tapped.data,
        }
    }
}

crate::pages!(MessagePage);
