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
    /// `POST_UPDATE`: a post the app subscribed to changed (`events/post.md`).
    PostUpdate {
        /// The post.
        post_token: PostToken,
        /// What happened to it.
        change: PostChange,
    },
    /// `NEW_CHATBOT_MESSAGE`: someone wrote to the app's chatbot (no subscription needed;
    /// `chat/chatbot_conversations.md`).
    ChatbotMessage {
        /// The chatbot conversation.
        conversation_id: ConversationId,
        /// What they wrote (empty for a message without text).
        text: String,
    },
    /// `PAYMENT_TRANSACTION`: a payment of the app changed (`events/payment.md`). Its fields are
    /// kept as sent: the example and the table disagree on the key (`transaction` or
    /// `payment_transaction`).
    PaymentTransaction(Value),
    /// A type this crate does not know (its first 50 characters).
    Other(String),
}

/// What a `POST_UPDATE` says happened (`events/post.md`; "more values may be added").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostChange {
    /// `PUBLISH`: published, or a published post changed.
    Published,
    /// `RETIRE`: the published post was removed from Divar's listings.
    Retired,
    /// `ONGOING`: a post still being written changed.
    Ongoing,
    /// `ARCHIVE`: a post still being written was deleted.
    Archived,
    /// A value this crate does not know yet (its first 50 characters).
    Other(String),
}

impl PostChange {
    fn parse(kind: &str) -> Self {
        match kind {
            "PUBLISH" => Self::Published,
            "RETIRE" => Self::Retired,
            "ONGOING" => Self::Ongoing,
            "ARCHIVE" => Self::Archived,
            other => Self::Other(other.chars().take(50).collect()),
        }
    }

    /// Divar's name for it (`RETIRE`…), or the unknown value as it came.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Published => "PUBLISH",
            Self::Retired => "RETIRE",
            Self::Ongoing => "ONGOING",
            Self::Archived => "ARCHIVE",
            Self::Other(other) => other,
        }
    }

    /// The post is gone: removed from the listings, or deleted before it was published.
    pub fn is_removal(&self) -> bool {
        matches!(self, Self::Retired | Self::Archived)
    }
}

impl DivarEvent {
    /// Parses an event body. A type this crate does not act on is [`DivarEvent::Other`] (its
    /// first 50 characters), so a new event type is acknowledged, not refused.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value = crate::json::parse(body)?;
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
            "POST_UPDATE" => {
                let post =
                    text("/post_update/post/token").ok_or("post_update.post.token is missing")?;
                let change = text("/post_update/type").ok_or("post_update.type is missing")?;
                Ok(Self::PostUpdate {
                    post_token: PostToken::parse(post)?,
                    change: PostChange::parse(&change),
                })
            }
            "NEW_CHATBOT_MESSAGE" => {
                let conversation = text("/new_chatbot_message/conversation/id")
                    .ok_or("new_chatbot_message.conversation.id is missing")?;
                Ok(Self::ChatbotMessage {
                    conversation_id: ConversationId::parse(conversation)?,
                    text: text("/new_chatbot_message/text").unwrap_or_default(),
                })
            }
            "PAYMENT_TRANSACTION" => Ok(Self::PaymentTransaction(
                value
                    .get("transaction")
                    .or_else(|| value.get("payment_transaction"))
                    .cloned()
                    .unwrap_or(Value::Null),
            )),
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
        // `events/post.md`: a removal carries only the post's token.
        let retired = br#"{"type": "POST_UPDATE", "metadata": {}, "post_update": {"type": "RETIRE",
            "post": {"token": "gZd7omnS"}}}"#;
        let Ok(DivarEvent::PostUpdate { post_token, change }) = DivarEvent::parse(retired) else {
            panic!("a post update");
        };
        assert_eq!(
            (post_token.as_str(), change.is_removal()),
            ("gZd7omnS", true)
        );
        let published = br#"{"type": "POST_UPDATE", "post_update": {"type": "PUBLISH",
            "post": {"token": "gZd7omnS", "category": "light", "chat_enabled": true}}}"#;
        assert!(matches!(
            DivarEvent::parse(published),
            Ok(DivarEvent::PostUpdate {
                change: PostChange::Published,
                ..
            })
        ));
        let later = br#"{"type": "POST_UPDATE", "post_update": {"type": "BOOSTED", "post": {"token": "gZd7omnS"}}}"#;
        assert!(matches!(
            DivarEvent::parse(later),
            Ok(DivarEvent::PostUpdate {
                change: PostChange::Other(_),
                ..
            })
        ));
        let chatbot = br#"{"type": "NEW_CHATBOT_MESSAGE", "new_chatbot_message": {"text": "/start MY_DIVAR",
            "id": "m", "conversation": {"id": "bot-1", "type": "BOT"}, "sender": {"type": "HUMAN"}}}"#;
        assert!(matches!(
            DivarEvent::parse(chatbot),
            Ok(DivarEvent::ChatbotMessage { text, .. }) if text == "/start MY_DIVAR"
        ));
        let paid = br#"{"type": "PAYMENT_TRANSACTION", "payment_transaction": {"id": "t1"}}"#;
        assert!(matches!(
            DivarEvent::parse(paid),
            Ok(DivarEvent::PaymentTransaction(t)) if t["id"] == "t1"
        ));
        assert_eq!(
            DivarEvent::parse(br#"{"type": "SOMETHING_NEW"}"#),
            Ok(DivarEvent::Other("SOMETHING_NEW".into()))
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
        assert!(
            DivarEvent::parse(br#"{"type": "POST_UPDATE", "post_update": {"type": "RETIRE"}}"#)
                .unwrap_err()
                .contains("post.token")
        );
        let long_post = br#"{"type": "NEW_MESSAGE", "new_message": {"conversation": {"id": "c", "post_token": "12345678901"}}}"#;
        assert!(
            DivarEvent::parse(long_post)
                .unwrap_err()
                .contains("post_token")
        );
    }
}
