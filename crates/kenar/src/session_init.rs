//! The session-initialization call Divar makes before opening the add-on. Three payload
//! revisions are documented (docs/divar-platform.md, "Session initialization"); all parse into
//! one [`SessionInit`].

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{ConversationId, PostToken, UserId, UserSide};

/// The longest `source` accepted, in characters; a longer one refuses the body.
pub const MAX_SOURCE_LEN: usize = 20;
/// The longest `callback_url` or `completion_url` accepted, in bytes; a longer one refuses the
/// body.
pub const MAX_CALLBACK_URL_LEN: usize = 2048;

/// Which of the three documented bodies a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadRevision {
    /// Divar's current docs: `source`, `user_side`, top-level `extra_data`, `API-Version: 2`.
    V2,
    /// The project's seed document: `extra_data.provider_data`, `supplier`, `demand`, `callback_url`.
    Original,
    /// Divar's touch-points page: `API-Version: 2` with `completion_url`, top-level
    /// `provider_data`, `SUPPLY`/`DEMAND`, and no `user_id` (who clicked is learnt at consent).
    Touchpoints,
}

impl PayloadRevision {
    /// A short name for logs and storage: `v2`, `original` or `touchpoints`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::Original => "original",
            Self::Touchpoints => "touchpoints",
        }
    }
}

/// One click on the add-on, whichever body Divar sent: ids checked, sides resolved, the button's
/// data unwrapped. Ids Divar leaves out or sends empty are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInit {
    /// Which body it came in.
    pub revision: PayloadRevision,
    /// Where the click came from, e.g. `CHAT_MESSAGE_ACTION`; `UNKNOWN` for the original revision.
    pub source: String,
    /// The post the click was on, if any (a touch point need not be tied to a post).
    pub post_token: Option<PostToken>,
    /// The chat the click was in, if any.
    pub conversation_id: Option<ConversationId>,
    /// Who clicked, as Divar claims it. The touch-points body has none: learn it at consent
    /// ([`crate::api::KenarApi::user_id`]).
    pub user_id: Option<UserId>,
    /// The clicker's side. The original body has no side field: it is derived when `user_id`
    /// matches `supplier` or `demand`.
    pub user_side: Option<UserSide>,
    /// The post owner's id: the original body's `supplier.id`, or `user_id` when a revision-2
    /// body says the clicker is the seller.
    pub seller_id: Option<UserId>,
    /// The other party's id: the original body's `demand.id`, or `user_id` when a revision-2 body
    /// says the clicker is the buyer.
    pub buyer_id: Option<UserId>,
    /// The `data` object of the clicked button (empty when the click was not on our button).
    pub extra_data: Map<String, Value>,
    /// Where to send the user when done: the original revision's `callback_url`, the
    /// touch-points revision's `completion_url`.
    pub callback_url: Option<String>,
}

#[derive(Deserialize)]
struct V2Body {
    source: Option<String>,
    post_token: Option<String>,
    conversation_id: Option<String>,
    user_side: Option<String>,
    #[serde(default)]
    extra_data: Option<Value>,
    /// The touch-points revision's name for `extra_data`.
    #[serde(default)]
    provider_data: Option<Value>,
    completion_url: Option<String>,
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct Party {
    id: Option<String>,
}

#[derive(Deserialize)]
struct OriginalBody {
    #[serde(default)]
    extra_data: Option<Value>,
    callback_url: Option<String>,
    post_token: Option<String>,
    user_id: Option<String>,
    peer_id: Option<String>,
    supplier: Option<Party>,
    demand: Option<Party>,
    conversation_id: Option<String>,
}

impl SessionInit {
    /// Parses a request body. `api_version` is the `API-Version` (or `API_VERSION`) header.
    /// Without that header the revision is told apart by the fields present. The error says what
    /// is wrong with the body, without echoing it.
    ///
    /// ```
    /// use kenar::{PayloadRevision, SessionInit, UserSide};
    ///
    /// // The `API-Version: 2` body of `widgets/actions/open_server_link.md`.
    /// let body = br#"{"source": "CHAT_MESSAGE_ACTION", "post_token": "wZC44q5D",
    ///     "conversation_id": "6b3d5cf7-9291-4fa9-892a-9d07e300daea", "user_side": "Supply",
    ///     "extra_data": {"booking": "42"}, "user_id": "u-1"}"#;
    /// let click = SessionInit::parse(body, Some("2"))?;
    /// assert_eq!(click.revision, PayloadRevision::V2);
    /// assert_eq!(click.user_side, Some(UserSide::Seller));
    /// assert_eq!(click.seller_id, click.user_id);
    /// assert_eq!(click.extra_data["booking"], "42");
    ///
    /// // Anything else is refused with a reason.
    /// let long_token = br#"{"source": "CHAT", "post_token": "far-too-long"}"#;
    /// assert!(SessionInit::parse(long_token, Some("2")).is_err());
    /// assert!(SessionInit::parse(b"{}", Some("3")).is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(body: &[u8], api_version: Option<&str>) -> Result<Self, String> {
        let value: Value = crate::json::parse(body)?;
        let Value::Object(fields) = &value else {
            return Err("the body must be a JSON object".into());
        };
        let is_v2 = match api_version.map(str::trim) {
            Some("2") => true,
            Some(other) if !other.is_empty() => {
                return Err(format!("unsupported API-Version `{other}`"));
            }
            // No header: the original revision is the one with parties and a callback URL.
            _ => !["callback_url", "peer_id", "supplier", "demand"]
                .iter()
                .any(|k| fields.contains_key(*k)),
        };
        if is_v2 {
            // The touch-points body: told apart by its own fields, when they carry something.
            let touchpoints = ["completion_url", "provider_data"]
                .iter()
                .any(|k| fields.get(*k).is_some_and(|v| !v.is_null() && *v != ""));
            let body: V2Body = serde_json::from_value(value).map_err(describe)?;
            Self::from_v2(body, touchpoints)
        } else {
            let body: OriginalBody = serde_json::from_value(value).map_err(describe)?;
            Self::from_original(body)
        }
    }

    /// The two `API-Version: 2` bodies differ only in names, so one reader takes both.
    fn from_v2(body: V2Body, touchpoints: bool) -> Result<Self, String> {
        let source = body
            .source
            .filter(|s| !s.is_empty())
            .ok_or("source is missing")?;
        if source.chars().count() > MAX_SOURCE_LEN {
            return Err(format!("source is longer than {MAX_SOURCE_LEN} characters"));
        }
        let user_side = match body.user_side.as_deref().filter(|s| !s.is_empty()) {
            Some(side) if side.chars().count() > 50 => {
                return Err("user_side is longer than 50 characters".into());
            }
            Some(side) => Some(UserSide::parse(side)?),
            None => None,
        };
        let user_id = optional(body.user_id, UserId::parse)?;
        let (seller_id, buyer_id) = match (user_side, &user_id) {
            (Some(UserSide::Seller), Some(id)) => (Some(id.clone()), None),
            (Some(UserSide::Buyer), Some(id)) => (None, Some(id.clone())),
            _ => (None, None),
        };
        // Both names for the button's data: whichever holds something (`provider_data` first).
        let holds = |v: &Option<Value>| match v {
            None | Some(Value::Null) => false,
            Some(Value::Object(map)) => !map.is_empty(),
            Some(_) => true,
        };
        let (name, data) = if holds(&body.provider_data) || !holds(&body.extra_data) {
            ("provider_data", body.provider_data.or(body.extra_data))
        } else {
            ("extra_data", body.extra_data)
        };
        Ok(Self {
            revision: if touchpoints {
                PayloadRevision::Touchpoints
            } else {
                PayloadRevision::V2
            },
            source,
            post_token: optional(body.post_token, PostToken::parse)?,
            conversation_id: optional(body.conversation_id, ConversationId::parse)?,
            user_id,
            user_side,
            seller_id,
            buyer_id,
            extra_data: extra_data(data, name)?,
            callback_url: callback_url(body.completion_url, "completion_url")?,
        })
    }

    fn from_original(body: OriginalBody) -> Result<Self, String> {
        if body
            .conversation_id
            .as_deref()
            .unwrap_or_default()
            .is_empty()
            && body.post_token.as_deref().unwrap_or_default().is_empty()
        {
            return Err("conversation_id and post_token are both missing".into());
        }
        let user_id = optional(body.user_id, UserId::parse)?;
        let seller_id = optional(body.supplier.and_then(|p| p.id), UserId::parse)?;
        let buyer_id = optional(body.demand.and_then(|p| p.id), UserId::parse)?;
        optional(body.peer_id, UserId::parse)?;
        let user_side = match &user_id {
            Some(id) if Some(id) == seller_id.as_ref() => Some(UserSide::Seller),
            Some(id) if Some(id) == buyer_id.as_ref() => Some(UserSide::Buyer),
            _ => None,
        };
        let callback_url = callback_url(body.callback_url, "callback_url")?;
        Ok(Self {
            revision: PayloadRevision::Original,
            source: "UNKNOWN".into(),
            post_token: optional(body.post_token, PostToken::parse)?,
            conversation_id: optional(body.conversation_id, ConversationId::parse)?,
            user_id,
            user_side,
            seller_id,
            buyer_id,
            extra_data: extra_data(body.extra_data, "extra_data")?,
            callback_url,
        })
    }
}

/// A return address as sent; whether it may be followed is decided when it is used.
fn callback_url(value: Option<String>, name: &str) -> Result<Option<String>, String> {
    match value.filter(|u| !u.is_empty()) {
        Some(url) if url.len() > MAX_CALLBACK_URL_LEN => Err(format!(
            "{name} is longer than {MAX_CALLBACK_URL_LEN} characters"
        )),
        other => Ok(other),
    }
}

/// Empty strings count as absent: Divar sends nullable fields either way.
fn optional<T>(
    value: Option<String>,
    parse: impl Fn(String) -> Result<T, String>,
) -> Result<Option<T>, String> {
    value.filter(|v| !v.is_empty()).map(parse).transpose()
}

/// The button data (from the field `name`), unwrapped from `provider_data` where a revision
/// nests it there.
fn extra_data(value: Option<Value>, name: &str) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(mut map)) => {
            if map.len() == 1
                && map.get("provider_data").is_some_and(Value::is_object)
                && let Some(Value::Object(inner)) = map.remove("provider_data")
            {
                return Ok(inner);
            }
            Ok(map)
        }
        Some(_) => Err(format!("{name} must be a JSON object")),
    }
}

fn describe(e: serde_json::Error) -> String {
    format!("the body does not match the session-initialization payload: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_v2_payload_from_the_docs() {
        let body = br#"{"source": "CHAT_MESSAGE_ACTION", "post_token": "wZC44q5D",
            "conversation_id": "6b3d5cf7-9291-4fa9-892a-9d07e300daea", "user_side": "Supply",
            "extra_data": {"your_key_1": "your value"}, "user_id": "6GqmD76dle5NpJySqnBX8seTpt6uVtzqaNTNJU1ettI="}"#;
        let init = SessionInit::parse(body, Some("2")).unwrap();
        assert_eq!(init.revision, PayloadRevision::V2);
        assert_eq!(init.user_side, Some(UserSide::Seller));
        assert_eq!(init.seller_id, init.user_id);
        assert_eq!(init.extra_data["your_key_1"], "your value");
    }

    #[test]
    fn parses_the_original_payload_and_unwraps_provider_data() {
        let body = br#"{"extra_data": {"provider_data": {"k": "v"}}, "callback_url": "https://divar.ir/chat",
            "post_token": "gZd7omnS", "user_id": "buyer-1", "peer_id": "seller-1",
            "supplier": {"id": "seller-1"}, "demand": {"id": "buyer-1"}, "conversation_id": "c-1"}"#;
        let init = SessionInit::parse(body, None).unwrap();
        assert_eq!(init.revision, PayloadRevision::Original);
        assert_eq!(init.user_side, Some(UserSide::Buyer));
        assert_eq!(init.extra_data["k"], "v");
        assert_eq!(init.callback_url.as_deref(), Some("https://divar.ir/chat"));
    }

    #[test]
    fn parses_the_touchpoints_payload_from_the_docs() {
        let body = br#"{"completion_url": "https://open-platform-redirect.divar.ir/completion",
            "post_token": "wZC44q5D", "conversation_id": "6b3d5cf7-9291-4fa9-892a-9d07e300daea",
            "user_side": "SUPPLY", "source": "CHAT",
            "provider_data": {"some_key": {"some_other_key": "some_value"}}}"#;
        let init = SessionInit::parse(body, Some("2")).unwrap();
        assert_eq!(init.revision, PayloadRevision::Touchpoints);
        assert_eq!(init.user_side, Some(UserSide::Seller));
        assert_eq!(init.user_id, None);
        assert_eq!(init.seller_id, None);
        assert_eq!(init.extra_data["some_key"]["some_other_key"], "some_value");
        assert_eq!(
            init.callback_url.as_deref(),
            Some("https://open-platform-redirect.divar.ir/completion")
        );
        // A touch point not tied to a post, told apart without the header too.
        let no_post = br#"{"completion_url": "https://divar.ir/x", "user_side": "DEMAND",
            "source": "POST_ADODN", "provider_data": {}}"#;
        let init = SessionInit::parse(no_post, None).unwrap();
        assert_eq!(init.revision, PayloadRevision::Touchpoints);
        assert_eq!(init.user_side, Some(UserSide::Buyer));
        assert_eq!(init.post_token, None);
    }

    #[test]
    fn button_data_is_never_dropped_on_the_way() {
        let parse = |body: &str| SessionInit::parse(body.as_bytes(), Some("2")).unwrap();
        // A lone `provider_data` that is not an object stays as it came.
        let odd = parse(r#"{"source": "CHAT", "extra_data": {"provider_data": "abc"}}"#);
        assert_eq!(odd.extra_data["provider_data"], "abc");
        assert_eq!(odd.revision, PayloadRevision::V2);
        // An empty `provider_data` does not hide a full `extra_data`.
        let both = parse(r#"{"source": "CHAT", "provider_data": {}, "extra_data": {"k": "v"}}"#);
        assert_eq!(both.extra_data["k"], "v");
        // Null touch-points fields do not make a body a touch-points one.
        let nulls = parse(
            r#"{"source": "CHAT", "completion_url": null, "provider_data": null, "user_id": "u"}"#,
        );
        assert_eq!(nulls.revision, PayloadRevision::V2);
        let err = SessionInit::parse(br#"{"source": "CHAT", "provider_data": [1]}"#, Some("2"))
            .unwrap_err();
        assert!(err.contains("provider_data"), "{err}");
    }

    #[test]
    fn rejects_bad_bodies_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"{not json", "not valid JSON"),
            (b"[]", "JSON object"),
            (
                br#"{"source": "CHAT", "post_token": "12345678901"}"#,
                "post_token",
            ),
            (
                br#"{"source": "CHAT", "conversation_id": 7}"#,
                "does not match",
            ),
            (br#"{"source": "CHAT", "user_side": "Lender"}"#, "user_side"),
            (br#"{"source": "CHAT", "extra_data": [1]}"#, "extra_data"),
        ];
        for (body, expected) in cases {
            let err = SessionInit::parse(body, Some("2")).unwrap_err();
            assert!(err.contains(expected), "{err:?} should mention {expected}");
        }
        assert!(SessionInit::parse(b"{}", Some("3")).is_err());
        assert!(
            SessionInit::parse(b"{}", None)
                .unwrap_err()
                .contains("source is missing")
        );
        let no_ids = br#"{"callback_url": "https://divar.ir", "supplier": {"id": "s"}}"#;
        assert!(
            SessionInit::parse(no_ids, None)
                .unwrap_err()
                .contains("both missing")
        );
    }
}
