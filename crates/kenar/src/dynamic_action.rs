//! Divar's dynamic action (`widgets/actions/dynamic_action.md`; docs/divar-platform.md,
//! "Dynamic action"): a button whose effect the app decides when it is tapped. Divar POSTs a
//! [`DynamicActionRequest`] to the app's dynamic-action URL (set in the Kenar panel) with
//! `Authorization: <identification key>`, and shows the [`DynamicActionReply`].
//!
//! ```
//! use kenar::dynamic_action::{DynamicActionReply, DynamicActionRequest, ReplyAction};
//!
//! let body = br#"{"touchpoint": "CHAT", "post_token": "wZC44q5D", "conversation_id": null,
//!     "user_side": "DEMAND", "extra_data": {"ask": "available"}, "user_id": null}"#;
//! let tap = DynamicActionRequest::parse(body).unwrap();
//! assert_eq!(tap.extra_data["ask"], "available");
//! assert!(tap.conversation_id.is_none());
//!
//! let reply = DynamicActionReply {
//!     text_message: Some("Still available.".into()),
//!     action: Some(ReplyAction::DirectLink("https://divar.ir/v/wZC44q5D".parse().unwrap())),
//! };
//! assert_eq!(reply.to_json()["action"]["open_direct_link"], "https://divar.ir/v/wZC44q5D");
//! ```

use serde_json::{Map, Value, json};
use url::Url;

use crate::{ConversationId, PostToken, UserId, UserSide};

/// What Divar sends when a `get_dynamic_action` button is tapped.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicActionRequest {
    /// Where the button was (`CHAT`, …), as Divar names it.
    pub touchpoint: String,
    /// The post, when the tap was about one.
    pub post_token: Option<PostToken>,
    /// The chat, when the tap was in one.
    pub conversation_id: Option<ConversationId>,
    /// Which side of the chat tapped.
    pub user_side: Option<UserSide>,
    /// The button's `data`.
    pub extra_data: Map<String, Value>,
    /// Who tapped, when signed in to Divar.
    pub user_id: Option<UserId>,
}

impl DynamicActionRequest {
    /// Reads the documented body. The nullable fields may be `null`, empty or left out; a value
    /// that is present must be well formed.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value = crate::json::parse(body)?;
        let object = value.as_object().ok_or("the body is not a JSON object")?;
        let text = |name: &str| -> Result<Option<String>, String> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{name}` is not a string")),
            }
        };
        let extra_data = match object.get("extra_data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(data)) => data.clone(),
            Some(_) => return Err("`extra_data` is not an object".into()),
        };
        Ok(Self {
            touchpoint: text("touchpoint")?.unwrap_or_default(),
            post_token: text("post_token")?.map(PostToken::parse).transpose()?,
            conversation_id: text("conversation_id")?
                .map(ConversationId::parse)
                .transpose()?,
            user_side: text("user_side")?
                .map(|s| UserSide::parse(&s))
                .transpose()?,
            extra_data,
            user_id: text("user_id")?.map(UserId::parse).transpose()?,
        })
    }
}

/// What the app answers: a text Divar shows, an action it performs, or both.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DynamicActionReply {
    /// Shown to the person who tapped.
    pub text_message: Option<String>,
    /// Done after the tap.
    pub action: Option<ReplyAction>,
}

/// The actions a dynamic-action reply may carry.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyAction {
    /// `open_direct_link`: opens the URL.
    DirectLink(Url),
    /// `open_server_link {data}`: Divar calls the app's session initialization with `data`.
    ServerLink(Map<String, Value>),
}

impl DynamicActionReply {
    /// The reply's JSON body.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        if let Some(text) = &self.text_message {
            body.insert("text_message".into(), json!(text));
        }
        match &self.action {
            Some(ReplyAction::DirectLink(url)) => {
                body.insert("action".into(), json!({ "open_direct_link": url.as_str() }));
            }
            Some(ReplyAction::ServerLink(data)) => {
                body.insert(
                    "action".into(),
                    json!({ "open_server_link": { "data": data } }),
                );
            }
            None => {}
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_body() {
        let body = br#"{"touchpoint":"CHAT","post_token":"wZC44q5D","conversation_id":"6b3d4a4e-0b39-4a37-9c5e-0f4a4f1d1a2b",
            "user_side":"SUPPLY","extra_data":{"k":"v"},"user_id":"6GqmD76dle5NpJySqnBX8seTpt6uVtzqaNTNJU1ettI="}"#;
        let tap = DynamicActionRequest::parse(body).unwrap();
        assert_eq!(tap.touchpoint, "CHAT");
        assert_eq!(tap.post_token.unwrap().as_str(), "wZC44q5D");
        assert_eq!(tap.user_side, Some(UserSide::Seller));
        assert_eq!(tap.extra_data["k"], "v");
        assert!(tap.user_id.is_some());
    }

    #[test]
    fn refuses_what_is_not_the_body() {
        assert!(DynamicActionRequest::parse(b"[]").is_err());
        assert!(DynamicActionRequest::parse(b"{oops").is_err());
        assert!(DynamicActionRequest::parse(br#"{"extra_data": "x"}"#).is_err());
        assert!(DynamicActionRequest::parse(br#"{"post_token": 7}"#).is_err());
        assert!(DynamicActionRequest::parse(br#"{"user_side": "SIDEWAYS"}"#).is_err());
    }

    #[test]
    fn a_reply_leaves_out_what_it_does_not_say() {
        let text = DynamicActionReply {
            text_message: Some("hi".into()),
            action: None,
        };
        assert_eq!(text.to_json(), json!({ "text_message": "hi" }));
        let link = DynamicActionReply {
            text_message: None,
            action: Some(ReplyAction::ServerLink(Map::new())),
        };
        assert_eq!(
            link.to_json(),
            json!({ "action": { "open_server_link": { "data": {} } } })
        );
    }
}
