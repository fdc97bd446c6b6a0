//! Webhook events Divar sends (docs/divar-platform.md, "Events"), reduced to what the add-on acts on.

use serde_json::Value;

use crate::{ConversationId, PostToken, UserId};

/// One webhook event (`events/ReadMe.md`).
#[derive(Debug, PartialEq, Eq)]
pub enum DivarEvent {
    /// `NEW_MESSAGE`: a message in a chat the app subscribed to (`events/chat.md`).
    NewMessage {
        /// The chat it was sent in.
        conversation_id: ConversationId,
        /// Optional in Divar's event docs (kenar-docs `docs/events/chat.md`).
        post_token: Option<PostToken>,
        /// Sent by an app through the API (`sender.type: BOT`): our own messages come back this
        /// way, and they say nothing about a buyer.
        from_bot: bool,
    },
    /// `USER_ACCESS_REVOCATION`: the user withdrew the app's access; what is kept about them
    /// should go (`events/auth.md`).
    AccessRevoked {
        /// Who withdrew it, as [`crate::api::KenarApi::user_id`] names them.
        user_id: UserId,
    },
    /// A type we do not use (`POST_UPDATE`, a new chatbot message…).
    Other(String),
}

impl DivarEvent {
    /// Parses an event body. A type this crate does not act on is [`DivarEvent::Other`] (its
    /// first 50 characters), so a new event type is acknowledged, not refused.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or("the event has no `type`")?;
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match kind {
            "NEW_MESSAGE" => {
                let conversation = text("/new_message/conversation/id")
                    .ok_or("new_message.conversation.id is missing")?;
                let post_token = text("/new_message/conversation/post_token")
                    .map(PostToken::parse)
                    .transpose()?;
                let from_bot =
                    text("/new_message/sender/type").is_some_and(|t| t.eq_ignore_ascii_case("BOT"));
                Ok(Self::NewMessage {
                    conversation_id: ConversationId::parse(conversation)?,
                    post_token,
                    from_bot,
                })
            }
            "USER_ACCESS_REVOCATION" => {
                let user = text("/user_access_revocation/user_id")
                    .ok_or("user_access_revocation.user_id is missing")?;
                Ok(Self::AccessRevoked {
                    user_id: UserId::parse(user)?,
                })
            }
            other => Ok(Self::Other(other.chars().take(50).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_events() {
        let new_message = br#"{"type": "NEW_MESSAGE", "metadata": {}, "new_message": {"id": "m",
            "conversation": {"id": "edbb9499-cccc-4d35-b21f-621fa95f2b3e", "type": "POST", "post_token": "gZd7omnS"},
            "sender": {"side": "SELLER", "type": "BOT"}, "type": "TEXT", "sent_at": 1729429926140000, "text": "Hello!"}}"#;
        assert!(matches!(
            DivarEvent::parse(new_message),
            Ok(DivarEvent::NewMessage {
                post_token: Some(_),
                from_bot: true,
                ..
            })
        ));
        let without_post = br#"{"type": "NEW_MESSAGE", "new_message": {"conversation": {"id": "c"},
            "sender": {"side": "BUYER", "type": "HUMAN"}}}"#;
        assert!(matches!(
            DivarEvent::parse(without_post),
            Ok(DivarEvent::NewMessage {
                post_token: None,
                from_bot: false,
                ..
            })
        ));
        let revoked =
            br#"{"type": "USER_ACCESS_REVOCATION", "user_access_revocation": {"user_id": "u1"}}"#;
        assert!(matches!(
            DivarEvent::parse(revoked),
            Ok(DivarEvent::AccessRevoked { .. })
        ));
        assert_eq!(
            DivarEvent::parse(br#"{"type": "POST_UPDATE"}"#),
            Ok(DivarEvent::Other("POST_UPDATE".into()))
        );
    }

    #[test]
    fn malformed_events_say_why() {
        assert!(DivarEvent::parse(b"nope").unwrap_err().contains("JSON"));
        assert!(DivarEvent::parse(b"{}").unwrap_err().contains("type"));
        assert!(
            DivarEvent::parse(br#"{"type": "NEW_MESSAGE"}"#)
                .unwrap_err()
                .contains("conversation.id")
        );
        let long_post = br#"{"type": "NEW_MESSAGE", "new_message": {"conversation": {"id": "c", "post_token": "12345678901"}}}"#;
        assert!(
            DivarEvent::parse(long_post)
                .unwrap_err()
                .contains("post_token")
        );
    }
}
