//! Divar's open-platform API (docs/divar-platform.md, "Sending" and "Events"): one pooled
//! client, the API key on every call.

use std::time::Duration;

use reqwest::{StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::{ConversationId, PostToken, UserId};

/// A client for Divar's open-platform API: a shared HTTP client, the API's base URL and the app's
/// API key (sent as `x-api-key` on every call). Cheap to clone.
#[derive(Clone)]
pub struct KenarApi {
    pub(crate) http: reqwest::Client,
    base: Url,
    pub(crate) api_key: SecretString,
}

/// Why Divar did not take a message. Texts name no token or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 412 with code 9: blocked by the other party, or blacklisted. Retrying cannot help.
    #[error("the recipient cannot receive messages in this chat")]
    RecipientRestricted,
    /// 401/403: the token is no longer good for this chat; the person must consent again.
    #[error("Divar refused the access token (HTTP {status})")]
    Unauthorized {
        /// The HTTP status Divar answered.
        status: u16,
    },
    /// 429: over a rate limit (per minute or per day; `scopes/README.md`).
    #[error("Divar's rate limit was hit")]
    Throttled {
        /// The answer's `Retry-After`, when it had one in seconds.
        retry_after: Option<Duration>,
    },
    /// 5xx, a timeout or no connection.
    #[error("Divar was unavailable ({detail})")]
    Unavailable {
        /// `timeout`, `no connection` or `HTTP <status>`.
        detail: String,
        /// The answer's `Retry-After`, when there was an answer with one in seconds.
        retry_after: Option<Duration>,
    },
    /// Any other answer, such as 400 for a body Divar does not accept.
    #[error("Divar rejected the message (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status Divar answered (0 when the API base URL cannot take a path).
        status: u16,
        /// Divar's `message` field, cut to 500 characters; empty when it had none.
        message: String,
    },
}

impl SendError {
    /// Whether the same send may succeed later: only when throttled or unavailable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }

    /// How long Divar asked to wait before a retry, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } | Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl KenarApi {
    /// `http` from [`crate::http_client`]; `base` is `https://open-api.divar.ir` (or a sandbox's
    /// base); `api_key` is the key the Kenar panel issued for the app.
    pub fn new(http: reqwest::Client, base: Url, api_key: SecretString) -> Self {
        Self {
            http,
            base,
            api_key,
        }
    }

    pub(crate) fn endpoint(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("bad API base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// GET /v1/open-platform/users: who granted `access_token` (docs/divar-platform.md, "Who
    /// consented"). `None` when the token lacks the `USER_ID` scope, so Divar leaves the id out.
    pub async fn user_id(&self, access_token: &SecretString) -> anyhow::Result<Option<UserId>> {
        let response = self
            .http
            .get(self.endpoint(&["v1", "open-platform", "users"])?)
            .header("x-api-key", self.api_key.expose_secret())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", access_token.expose_secret()),
            )
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(if e.is_timeout() {
                    "asking Divar who consented timed out"
                } else {
                    "asking Divar who consented failed: no connection"
                })
            })?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("asking Divar who consented answered HTTP {status}");
        }
        let reply: Value = response
            .json()
            .await
            .map_err(|_| anyhow::anyhow!("Divar's answer about the user is not JSON"))?;
        match reply.get("user_id").and_then(Value::as_str) {
            None | Some("") => Ok(None),
            Some(id) => UserId::parse(id)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("Divar's user id is malformed: {e}")),
        }
    }

    /// POST /v2/open-platform/conversations/{conversation_id}/messages (docs/divar-platform.md,
    /// "Sending"; `chat/users_conversations.md`): sends `body`, usually
    /// [`Message::to_json`](crate::message::Message::to_json). The token goes in
    /// `Authorization: Bearer` (`migrations/2025-04-27.md`) and must hold a sending scope for this
    /// chat. The `Idempotency-Key` lets Divar recognise a retry, if it honours it (undocumented).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use kenar::{ConversationId, api::{KenarApi, SendError}, message::{ButtonGrid, Message}};
    /// use secrecy::SecretString;
    ///
    /// let api = KenarApi::new(
    ///     kenar::http_client(Duration::from_secs(10), "my-addon/1.0")?,
    ///     "https://open-api.divar.ir".parse()?,
    ///     SecretString::from("<API key from the Kenar panel>"),
    /// );
    /// let chat = ConversationId::parse("62c82c02-6a71-4501-a1fd-4bf226b3aa78")?;
    /// let token = SecretString::from("<token holding CONVERSATION_SEND_MESSAGE.<chat>>");
    /// let message = Message {
    ///     text: "سلام".into(),
    ///     sender_buttons: ButtonGrid::default(),
    ///     receiver_buttons: ButtonGrid::default(),
    /// };
    /// match api.send_message(&chat, &token, &message.to_json(), "booking-42-confirmed").await {
    ///     Ok(()) => {}
    ///     Err(e) if e.is_retryable() => { /* same key again, after e.retry_after() */ }
    ///     Err(SendError::Unauthorized { .. }) => { /* ask the person to consent again */ }
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_message(
        &self,
        conversation_id: &ConversationId,
        access_token: &SecretString,
        body: &Value,
        idempotency_key: &str,
    ) -> Result<(), SendError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| SendError::Rejected {
                status: 0,
                message: "bad API base URL".into(),
            })?
            .pop_if_empty()
            .extend([
                "v2",
                "open-platform",
                "conversations",
                conversation_id.as_str(),
                "messages",
            ]);
        let token = access_token.expose_secret();
        let result = self
            .http
            .post(url)
            .header("x-api-key", self.api_key.expose_secret())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                let detail = if e.is_timeout() {
                    "timeout".to_string()
                } else {
                    "no connection".to_string()
                };
                return Err(SendError::Unavailable {
                    detail,
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let error: Value = response.json().await.unwrap_or(Value::Null);
        let code = error.get("code").and_then(Value::as_i64);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Err(match status {
            StatusCode::PRECONDITION_FAILED if code == Some(9) || code.is_none() => {
                SendError::RecipientRestricted
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SendError::Unauthorized {
                status: status.as_u16(),
            },
            StatusCode::TOO_MANY_REQUESTS => SendError::Throttled { retry_after },
            s if s.is_server_error() => SendError::Unavailable {
                detail: format!("HTTP {}", s.as_u16()),
                retry_after,
            },
            s => SendError::Rejected {
                status: s.as_u16(),
                message: message.chars().take(500).collect(),
            },
        })
    }
}

/// A conversation as `GET /v1/open-platform/chat/conversations/{id}` answers it: the chat and its
/// text messages, oldest first (`ChatAPI_GetConversation`; docs/divar-platform.md, "Reading chat").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRead {
    /// The chat.
    pub id: ConversationId,
    /// Its post, when it is a post's chat.
    pub post_token: Option<PostToken>,
    /// Its text messages (Divar leaves the others out), oldest first.
    pub messages: Vec<ReadMessage>,
}

/// One text message of a [`ConversationRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMessage {
    /// Divar's id of the message.
    pub id: String,
    /// What was written.
    pub text: String,
    /// Who wrote it, when Divar says.
    pub sender_side: Option<crate::UserSide>,
    /// `BOT` for an app's message, `HUMAN` (or the examples' `USER`) for a person's.
    pub sender_type: String,
    /// When, as Divar writes it here: a date-time string.
    pub sent_at: String,
}

impl ConversationRead {
    /// Reads the documented answer; a message without text is left out.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let text = |v: &Value, pointer: &str| {
            v.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let id = text(value, "/conversation/id").ok_or("conversation.id is missing")?;
        let post_token = text(value, "/conversation/post_token")
            .filter(|t| !t.is_empty())
            .map(PostToken::parse)
            .transpose()?;
        let messages = value
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some(ReadMessage {
                    id: text(m, "/id").unwrap_or_default(),
                    text: text(m, "/text")?,
                    sender_side: text(m, "/sender/side")
                        .and_then(|s| crate::UserSide::parse(&s).ok()),
                    sender_type: text(m, "/sender/type").unwrap_or_default(),
                    sent_at: match m.get("sent_at") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    },
                })
            })
            .collect();
        Ok(Self {
            id: ConversationId::parse(id)?,
            post_token,
            messages,
        })
    }
}

impl KenarApi {
    /// GET /v1/open-platform/chat/conversations/{id}: the chat's text messages. The API key needs
    /// `CHAT_READ_CONVERSATION`, the token `CHAT_CONVERSATION_READ.<conversation_id>`.
    pub async fn conversation(
        &self,
        access_token: &SecretString,
        conversation_id: &ConversationId,
    ) -> anyhow::Result<ConversationRead> {
        let url = self.endpoint(&[
            "v1",
            "open-platform",
            "chat",
            "conversations",
            conversation_id.as_str(),
        ])?;
        let response = self
            .http
            .get(url)
            .header("x-api-key", self.api_key.expose_secret())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", access_token.expose_secret()),
            )
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("reading the conversation answered HTTP {status}");
        }
        let value: Value = response.json().await?;
        ConversationRead::parse(&value).map_err(anyhow::Error::msg)
    }
}

/// What an events subscription asks Divar to report (`events/ReadMe.md`; docs/divar-platform.md,
/// "Events").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `NEW_MESSAGE_ON_POST`: new messages in the chats of a post, delivered as `NEW_MESSAGE`.
    /// The token needs `CHAT_POST_CONVERSATIONS_READ.<post_token>`.
    NewMessagesOnPost(PostToken),
    /// `POST_UPDATE` for one post, including its removal (`RETIRE`, `ARCHIVE`), which a
    /// subscription to all of a user's posts does not receive (`events/post.md`). The token
    /// needs `USER_POSTS_GET`.
    PostUpdates(PostToken),
}

impl Subscription {
    /// The request body.
    fn body(&self) -> serde_json::Value {
        let (event_type, post) = match self {
            Self::NewMessagesOnPost(post) => ("NEW_MESSAGE_ON_POST", post),
            Self::PostUpdates(post) => ("POST_UPDATE", post),
        };
        serde_json::json!({ "event_type": event_type, "event_resource_id": post })
    }
}

impl KenarApi {
    /// POST /v1/open-platform/events/subscriptions (docs/divar-platform.md, "Events"). A
    /// subscription lives as long as the token that made it: subscribe again after a refresh.
    pub async fn subscribe(
        &self,
        access_token: &SecretString,
        subscription: &Subscription,
    ) -> anyhow::Result<()> {
        let url = self.endpoint(&["v1", "open-platform", "events", "subscriptions"])?;
        let body = subscription.body();
        let response = self
            .http
            .post(url)
            .header("x-api-key", self.api_key.expose_secret())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", access_token.expose_secret()),
            )
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!(
                "subscribing to {} answered HTTP {status}",
                body["event_type"]
            );
        }
        Ok(())
    }
}
