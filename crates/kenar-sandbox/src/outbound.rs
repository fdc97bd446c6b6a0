//! Calls the simulated Divar makes to the add-on: session initialization (all three documented
//! bodies), event webhooks and dynamic actions, each signed with the identification key in `Authorization`
//! (docs/divar-platform.md, "Session initialization" and "Events").

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Sandbox,
    world::{ChatMessage, Conversation, DynamicReply, OutboundCall, Revision},
};
use kenar::UserSide;

/// Where and by whom the add-on was opened.
#[derive(Debug, Clone)]
pub struct Click {
    /// `CHAT`, `POST_ADDON` or `CHAT_MESSAGE_ACTION`.
    pub source: &'static str,
    pub post_token: String,
    pub conversation: Option<Conversation>,
    pub user_id: String,
    pub user_side: Option<UserSide>,
    /// The clicked button's `open_server_link.data`.
    pub extra_data: Value,
    /// Where Divar returns the person afterwards (the original revision's `callback_url`).
    pub return_to: String,
}

impl Click {
    fn body(&self, revision: Revision) -> Value {
        let conversation_id = self.conversation.as_ref().map(|c| c.id.clone());
        match revision {
            Revision::V2 => json!({
                "source": self.source,
                "post_token": self.post_token,
                "conversation_id": conversation_id,
                "user_side": self.user_side.map(|s| match s {
                    UserSide::Seller => "Supply",
                    UserSide::Buyer => "Demand",
                }),
                "extra_data": self.extra_data,
                "user_id": self.user_id,
            }),
            // Divar learns nothing about the person here: the app must ask at consent.
            Revision::Touchpoints => json!({
                "completion_url": self.return_to,
                "post_token": self.post_token,
                "conversation_id": conversation_id,
                "user_side": self.user_side.map(|s| match s {
                    UserSide::Seller => "SUPPLY",
                    UserSide::Buyer => "DEMAND",
                }),
                "source": self.source,
                "provider_data": self.extra_data,
            }),
            Revision::Original => {
                let party = |side| {
                    self.conversation
                        .as_ref()
                        .map(|c| c.user_on(side).to_string())
                };
                let peer = self.user_side.and_then(|side| party(side.other()));
                json!({
                    "extra_data": { "provider_data": self.extra_data },
                    "callback_url": self.return_to,
                    "post_token": self.post_token,
                    "user_id": self.user_id,
                    "peer_id": peer,
                    "supplier": { "id": party(UserSide::Seller) },
                    "demand": { "id": party(UserSide::Buyer) },
                    "conversation_id": conversation_id,
                })
            }
        }
    }
}

/// Asks the add-on where to send the person; `Ok(url)` or a reason to show on an error page.
pub async fn session_init(sandbox: &Sandbox, click: &Click) -> Result<String, String> {
    let (revision, earlier) = {
        let world = sandbox.world();
        let earlier = world
            .outbound
            .iter()
            .filter(|c| c.kind == "session_init")
            .count();
        (world.knobs.session_init_revision, earlier)
    };
    let url = sandbox.app().session_init_url.clone();
    let body = click.body(revision);
    // Divar's pages spell the version header both ways (`API-Version` in touchpoints.md,
    // `API_VERSION` in open_server_link.md): every other call uses the other one, so an add-on
    // meets both.
    let version = (revision != Revision::Original).then_some(if earlier % 2 == 0 {
        "API-Version"
    } else {
        "API_VERSION"
    });
    call_addon(
        sandbox,
        "session_init",
        url,
        body,
        version,
        read_session_init_reply,
    )
    .await
}

/// POSTs `body` to the add-on at `url`, signed with the identification key as Divar signs its
/// calls (and `version: 2` under that header name when given), records the call as `kind` with
/// what came back, and reads the answer with `read`; a reason on failure.
async fn call_addon<T>(
    sandbox: &Sandbox,
    kind: &'static str,
    url: url::Url,
    body: Value,
    version: Option<&'static str>,
    read: impl FnOnce(reqwest::StatusCode, &str) -> Result<T, String>,
) -> Result<T, String> {
    let mut request = sandbox
        .http()
        .post(url.clone())
        .header("authorization", &sandbox.app().identification_key)
        .json(&body);
    let mut headers = BTreeMap::from([(
        "authorization".to_string(),
        "<identification key>".to_string(),
    )]);
    if let Some(name) = version {
        request = request.header(name, "2");
        headers.insert(name.to_ascii_lowercase(), "2".into());
    }
    let mut record = OutboundCall {
        at: sandbox.now_ms(),
        kind,
        url: url.to_string(),
        headers,
        body,
        status: None,
        response: None,
        error: None,
    };
    let outcome = match request.send().await {
        Err(e) => Err(format!("the add-on could not be reached: {e}")),
        Ok(response) => {
            let status = response.status();
            record.status = Some(status.as_u16());
            let text = response.text().await.unwrap_or_default();
            record.response = Some(text.chars().take(2000).collect());
            read(status, &text)
        }
    };
    if let Err(reason) = &outcome {
        record.error = Some(reason.clone());
    }
    sandbox.world().outbound.push(record);
    outcome
}

fn read_session_init_reply(status: reqwest::StatusCode, text: &str) -> Result<String, String> {
    if status != reqwest::StatusCode::OK {
        return Err(format!("the add-on answered HTTP {status} instead of 200"));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|_| "the add-on's answer is not JSON".to_string())?;
    let url = value
        .get("url")
        .and_then(Value::as_str)
        .ok_or("the add-on's answer has no `url`")?;
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(url.to_string()),
        _ => Err(format!(
            "the add-on's `url` is not an absolute http(s) URL: {url}"
        )),
    }
}

/// Tells subscribed apps about a message typed in the chat (`NEW_MESSAGE`).
pub async fn new_message(sandbox: &Sandbox, conversation: &Conversation, message: &ChatMessage) {
    let subscribers = sandbox.world().subscribers_for(conversation);
    for subscription in subscribers {
        let body = json!({
            "type": "NEW_MESSAGE",
            "metadata": subscription.metadata,
            "new_message": {
                "id": message.id,
                "conversation": { "id": conversation.id, "type": "POST", "post_token": conversation.post_token },
                "sender": {
                    "side": match message.sender_side { UserSide::Seller => "SELLER", UserSide::Buyer => "BUYER" },
                    // An app's message sent through the API comes back as `BOT`.
                    "type": message.sender_type,
                },
                "type": "TEXT",
                // Divar sends microseconds here.
                "sent_at": message.sent_at * 1000,
                "text": message.text,
            }
        });
        deliver(sandbox, body).await;
    }
}

/// Asks the add-on's dynamic-action URL what a tapped `get_dynamic_action` button does, with
/// the documented body (`widgets/actions/dynamic_action.md`), as `side` of `conversation`, the
/// tapper being `user_id`. What the app answered, as Divar would show it.
pub async fn dynamic_action(
    sandbox: &Sandbox,
    conversation: &Conversation,
    side: UserSide,
    user_id: &str,
    data: Value,
) -> DynamicReply {
    let url = sandbox.app().dynamic_action_url.clone();
    let body = json!({
        "touchpoint": "CHAT",
        "post_token": conversation.post_token,
        "conversation_id": conversation.id,
        "user_side": match side { UserSide::Seller => "SUPPLY", UserSide::Buyer => "DEMAND" },
        "extra_data": data,
        "user_id": user_id,
    });
    call_addon(
        sandbox,
        "dynamic_action",
        url,
        body,
        None,
        read_dynamic_reply,
    )
    .await
    .unwrap_or_else(|error| DynamicReply {
        error: Some(error),
        ..DynamicReply::default()
    })
}

/// A 200 with `text_message` and/or an `action`; anything else is an error Divar would show as
/// a failed tap.
fn read_dynamic_reply(status: reqwest::StatusCode, text: &str) -> Result<DynamicReply, String> {
    if status != reqwest::StatusCode::OK {
        return Err(format!("the add-on answered HTTP {status} instead of 200"));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|_| "the add-on's answer is not JSON".to_string())?;
    let text = value
        .get("text_message")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Only a web link is shown as one (a `javascript:` URL would run in the sandbox's page).
    let link = value
        .pointer("/action/open_direct_link")
        .and_then(Value::as_str)
        .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
        .map(str::to_string);
    if text.is_none() && link.is_none() {
        return Err(
            "the answer has neither text_message nor an action the sandbox performs".into(),
        );
    }
    Ok(DynamicReply {
        text,
        link,
        error: None,
    })
}

/// Tells each subscription that a post was removed (`POST_UPDATE` of type `RETIRE`, which
/// carries only the post's token: `events/post.md`). Returns how many were told.
pub async fn post_retired(sandbox: &Sandbox, post_token: &str) -> Option<usize> {
    let subscribers = sandbox.world().retire_post(post_token)?;
    for subscription in &subscribers {
        let body = json!({
            "type": "POST_UPDATE",
            "metadata": subscription.metadata,
            "post_update": { "type": "RETIRE", "post": { "token": post_token } },
        });
        deliver(sandbox, body).await;
    }
    Some(subscribers.len())
}

/// Tells the app a user withdrew its access (`USER_ACCESS_REVOCATION`).
pub async fn access_revoked(sandbox: &Sandbox, user_id: &str) {
    let body = json!({
        "type": "USER_ACCESS_REVOCATION",
        "metadata": {},
        "user_access_revocation": { "user_id": user_id },
    });
    deliver(sandbox, body).await;
}

async fn deliver(sandbox: &Sandbox, body: Value) {
    let url = sandbox.app().events_url.clone();
    // Divar documents no answer for a webhook: any status is recorded, none is an error.
    let _ = call_addon(sandbox, "webhook", url, body, None, |_, _| Ok(())).await;
}
