//! The simulated Divar's state, kept in memory: seeded posts and chats, OAuth grants, messages
//! sent by the app, and logs of everything the app did, for the inspection endpoints.

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;

use kenar::UserSide;
use kenar::scopes::{Scope, ScopeKind};

use crate::Clock;

pub const CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;
pub const REFRESH_LIFETIME_MS: i64 = 30 * 24 * 3600 * 1000;
/// After a refresh, the old pair keeps working this long (docs/divar-platform.md, "OAuth 2.0").
pub const DEFAULT_ROTATION_GRACE_SECS: u64 = 120;

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
}

impl User {
    /// A made-up number in Divar's test range, the same for a user every time.
    pub fn phone(&self) -> String {
        let n = self
            .id
            .bytes()
            .fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(b.into()));
        format!("0999{:07}", n % 10_000_000)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Post {
    pub token: String,
    pub title: String,
    pub price: String,
    pub seller_id: String,
    /// Removed from the listings by its seller (`RETIRE`).
    pub retired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: String,
    pub post_token: String,
    pub seller_id: String,
    pub buyer_id: String,
    pub blocked: bool,
}

impl Conversation {
    pub fn side_of(&self, user_id: &str) -> Option<UserSide> {
        if user_id == self.seller_id {
            Some(UserSide::Seller)
        } else if user_id == self.buyer_id {
            Some(UserSide::Buyer)
        } else {
            None
        }
    }

    pub fn user_on(&self, side: UserSide) -> &str {
        match side {
            UserSide::Seller => &self.seller_id,
            UserSide::Buyer => &self.buyer_id,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    pub id: String,
    pub conversation_id: String,
    pub sender_side: UserSide,
    pub sender_id: String,
    /// `HUMAN` typed in the chat, `BOT` sent by the app through the API.
    pub sender_type: &'static str,
    pub text: String,
    pub sender_buttons: Option<Value>,
    pub receiver_buttons: Option<Value>,
    pub idempotency_key: Option<String>,
    /// Which header carried the token: `authorization` or `x-access-token`.
    pub token_header: Option<&'static str>,
    /// The photo or file the message carries (its `media_token`).
    pub media: Option<Media>,
    pub sent_at: i64,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<Scope>,
    pub user_id: String,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
    pub used: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessToken {
    pub token: String,
    pub user_id: String,
    #[serde(serialize_with = "scopes_as_string")]
    pub scopes: Vec<Scope>,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Set when a refresh replaced this token; it keeps working for the grace period.
    pub rotated_at: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefreshToken {
    pub token: String,
    /// The access token issued beside this one; a refresh retires both.
    pub access_token: String,
    pub user_id: String,
    #[serde(serialize_with = "scopes_as_string")]
    pub scopes: Vec<Scope>,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked: bool,
}

fn scopes_as_string<S: serde::Serializer>(scopes: &[Scope], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&kenar::scopes::join(scopes))
}

#[derive(Debug, Clone, Serialize)]
pub struct RefreshCall {
    pub at: i64,
    pub user_id: Option<String>,
    /// `rotated`, or why it was refused.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiCall {
    pub at: i64,
    pub method: &'static str,
    pub path: String,
    pub status: u16,
    pub idempotency_key: Option<String>,
    /// A 200 for a key already delivered: acknowledged, not delivered again.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub id: String,
    pub user_id: String,
    pub event_type: String,
    pub event_resource_id: Option<String>,
    pub metadata: Value,
    /// A subscription lives as long as the token that made it (docs/divar-platform.md, "Events").
    #[serde(skip)]
    pub access_token: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboundCall {
    pub at: i64,
    /// `session_init`, `webhook` or `dynamic_action`.
    pub kind: &'static str,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub status: Option<u16>,
    pub response: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Revision {
    /// `open_server_link` docs: `extra_data` and `user_id`.
    V2,
    /// The seed document: `extra_data.provider_data`, `callback_url`, `supplier`/`demand`.
    Original,
    /// The touch-points page: `provider_data`, `completion_url`, `SUPPLY`/`DEMAND`, no `user_id`.
    Touchpoints,
}

/// What a developer can change while the sandbox runs.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Knobs {
    pub access_token_ttl_secs: u64,
    /// How long a refreshed (old) token pair keeps working; Divar documents two minutes.
    pub rotation_grace_secs: u64,
    pub rate_limit_per_minute: u32,
    pub session_init_revision: Revision,
    pub fail_5xx_percent: u8,
    pub fail_429_percent: u8,
    pub slow_percent: u8,
    pub slow_ms: u64,
    /// Scope names the app was not granted in its (simulated) Kenar panel: asking for one makes
    /// consent fail with `invalid_scope`, as Divar's OAuth server does.
    #[serde(default)]
    pub app_lacks_scopes: Vec<String>,
    /// The chat upload host answers 503 to every upload.
    #[serde(default)]
    pub uploads_fail: bool,
}

/// Partial update of [`Knobs`]; absent fields stay as they are.
#[derive(Debug, Default, serde::Deserialize)]
pub struct KnobsUpdate {
    pub access_token_ttl_secs: Option<u64>,
    pub rotation_grace_secs: Option<u64>,
    pub rate_limit_per_minute: Option<u32>,
    pub session_init_revision: Option<Revision>,
    pub fail_5xx_percent: Option<u8>,
    pub fail_429_percent: Option<u8>,
    pub slow_percent: Option<u8>,
    pub slow_ms: Option<u64>,
    /// Statuses to answer the next send calls with, in order, before any random fault.
    #[serde(default)]
    pub fail_next: Vec<u16>,
    pub app_lacks_scopes: Option<Vec<String>>,
    pub uploads_fail: Option<bool>,
}

impl Knobs {
    pub fn apply(&mut self, update: KnobsUpdate) -> Result<(), String> {
        for (name, value) in [
            ("fail_5xx_percent", update.fail_5xx_percent),
            ("fail_429_percent", update.fail_429_percent),
            ("slow_percent", update.slow_percent),
        ] {
            if value.is_some_and(|v| v > 100) {
                return Err(format!("{name} must be between 0 and 100"));
            }
        }
        if update.access_token_ttl_secs == Some(0) {
            return Err("access_token_ttl_secs must be at least 1".into());
        }
        if update
            .fail_next
            .iter()
            .any(|s| !matches!(s, 429 | 500..=599))
        {
            return Err("fail_next takes 429 and 5xx statuses only".into());
        }
        if update.slow_ms.is_some_and(|ms| ms > 60_000) {
            return Err("slow_ms must be at most 60000".into());
        }
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = update.$field { self.$field = v; })* };
        }
        set!(
            access_token_ttl_secs,
            rotation_grace_secs,
            rate_limit_per_minute,
            session_init_revision,
            fail_5xx_percent,
            fail_429_percent,
            slow_percent,
            slow_ms,
            app_lacks_scopes,
            uploads_fail
        );
        Ok(())
    }
}

/// A file the chat upload host took (`media`).
#[derive(Debug, Clone, Serialize)]
pub struct Media {
    pub id: String,
    pub kind: &'static str,
    pub file_name: String,
    pub size: u64,
    pub content_type: &'static str,
    /// An image's bytes, to show it in the chat.
    #[serde(skip)]
    pub bytes: Option<Vec<u8>>,
}

/// What Divar shows the person who tapped a `get_dynamic_action` button: the app's text, a
/// link it asked to open, or why the app could not be asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DynamicReply {
    pub text: Option<String>,
    pub link: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct World {
    pub users: Vec<User>,
    pub posts: Vec<Post>,
    pub conversations: Vec<Conversation>,
    pub messages: Vec<ChatMessage>,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub refresh_calls: Vec<RefreshCall>,
    pub api_calls: Vec<ApiCall>,
    pub subscriptions: Vec<Subscription>,
    pub outbound: Vec<OutboundCall>,
    /// Upload tokens and when they expire (ms).
    pub upload_tokens: HashMap<String, i64>,
    /// What the upload host took, by media token.
    pub media: HashMap<String, Media>,
    /// The images whose bytes are kept, oldest first.
    pub images_kept: VecDeque<String>,
    /// The last dynamic-action reply per (conversation, side), shown once on the chat screen.
    pub dynamic_replies: HashMap<(String, UserSide), DynamicReply>,
    pub knobs: Knobs,
    /// Times of sends admitted in the last minute, for the per-minute limit.
    pub recent_sends: VecDeque<i64>,
    /// Faults scripted with `fail_next`, answered before anything else.
    pub scripted_faults: VecDeque<u16>,
    /// (conversation, Idempotency-Key) of every delivered app message.
    pub delivered_keys: std::collections::HashSet<(String, String)>,
    /// Position of each conversation in `conversations`, by id.
    conversation_index: HashMap<String, usize>,
    /// Where the world reads the time (shared with its [`crate::Sandbox`]).
    clock: Clock,
}

/// Why a token could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Expired,
    Revoked,
}

impl World {
    pub fn seeded(knobs: Knobs, clock: Clock) -> Self {
        let users = [
            ("u-ali", "علی"),
            ("u-maryam", "مریم"),
            ("u-reza", "رضا"),
            ("u-sara", "سارا"),
            ("u-hamid", "حمید"),
            ("u-neda", "ندا"),
            ("u-omid", "امید"),
        ]
        .map(|(id, name)| User {
            id: id.into(),
            name: name.into(),
        })
        .to_vec();
        let posts = [
            (
                "gZd7omnS",
                "پژو ۲۰۶ تیپ ۵، مدل ۱۳۹۸",
                "۴۸۰٬۰۰۰٬۰۰۰ تومان",
                "u-ali",
            ),
            (
                "wZC44q5D",
                "آپارتمان ۸۵ متری، سعادت‌آباد",
                "اجاره، ودیعه ۹۰۰ میلیون",
                "u-maryam",
            ),
            (
                "AZTH74V2",
                "آیفون ۱۳ پرو، ۲۵۶ گیگ",
                "۵۲٬۰۰۰٬۰۰۰ تومان",
                "u-reza",
            ),
        ]
        .map(|(token, title, price, seller)| Post {
            token: token.into(),
            title: title.into(),
            price: price.into(),
            seller_id: seller.into(),
            retired: false,
        })
        .to_vec();
        let buyers = ["u-sara", "u-hamid", "u-neda", "u-omid"];
        let openers = [
            "سلام، هنوز موجوده؟",
            "سلام، قیمت قابل مذاکره است؟",
            "کی می‌شه از نزدیک دید؟",
            "سلام وقت بخیر، امکان معاوضه هست؟",
        ];
        let mut conversations = Vec::new();
        let mut messages = Vec::new();
        let start = clock.now_ms() - 3 * 3600 * 1000;
        for (p, post) in posts.iter().enumerate() {
            for (b, buyer) in buyers.iter().enumerate().take(3 + p % 2) {
                // Stable, readable ids: post number and buyer number.
                let id = format!("c0ffee00-0000-4000-8000-{:06}{:06}", p + 1, b + 1);
                messages.push(ChatMessage {
                    id: format!("m-{id}-1"),
                    conversation_id: id.clone(),
                    sender_side: UserSide::Buyer,
                    sender_id: buyer.to_string(),
                    sender_type: "HUMAN",
                    text: openers[(p + b) % openers.len()].into(),
                    sender_buttons: None,
                    receiver_buttons: None,
                    idempotency_key: None,
                    token_header: None,
                    media: None,
                    sent_at: start + (p * 10 + b) as i64 * 60_000,
                });
                messages.push(ChatMessage {
                    id: format!("m-{id}-2"),
                    conversation_id: id.clone(),
                    sender_side: UserSide::Seller,
                    sender_id: post.seller_id.clone(),
                    sender_type: "HUMAN",
                    text: "سلام، بله در خدمتم.".into(),
                    sender_buttons: None,
                    receiver_buttons: None,
                    idempotency_key: None,
                    token_header: None,
                    media: None,
                    sent_at: start + (p * 10 + b) as i64 * 60_000 + 120_000,
                });
                conversations.push(Conversation {
                    id,
                    post_token: post.token.clone(),
                    seller_id: post.seller_id.clone(),
                    buyer_id: buyer.to_string(),
                    blocked: false,
                });
            }
        }
        let conversation_index = conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Self {
            users,
            posts,
            conversations,
            messages,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            refresh_calls: Vec::new(),
            api_calls: Vec::new(),
            subscriptions: Vec::new(),
            outbound: Vec::new(),
            upload_tokens: HashMap::new(),
            media: HashMap::new(),
            images_kept: VecDeque::new(),
            dynamic_replies: HashMap::new(),
            knobs,
            recent_sends: VecDeque::new(),
            scripted_faults: VecDeque::new(),
            delivered_keys: Default::default(),
            conversation_index,
            clock,
        }
    }

    /// Milliseconds since the Unix epoch, by the sandbox's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn grace_ms(&self) -> i64 {
        self.knobs.rotation_grace_secs as i64 * 1000
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_name(&self, id: &str) -> String {
        self.user(id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    pub fn post(&self, token: &str) -> Option<&Post> {
        self.posts.iter().find(|p| p.token == token)
    }

    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversation_index
            .get(id)
            .map(|&i| &self.conversations[i])
    }

    pub fn conversation_mut(&mut self, id: &str) -> Option<&mut Conversation> {
        self.conversation_index
            .get(id)
            .map(|&i| &mut self.conversations[i])
    }

    fn add_conversation(&mut self, conversation: Conversation) {
        self.conversation_index
            .insert(conversation.id.clone(), self.conversations.len());
        self.conversations.push(conversation);
    }

    pub fn messages_of(&self, conversation_id: &str) -> impl Iterator<Item = &ChatMessage> {
        self.messages
            .iter()
            .filter(move |m| m.conversation_id == conversation_id)
    }

    /// New buyers, each with a conversation about `post_token` opened by a first message.
    /// A conversation Divar creates on the first send to an id it does not know (the OpenAPI's
    /// send-message description): on `post_token`, with a new buyer, and no messages yet.
    pub fn open_conversation(&mut self, id: &str, post_token: &str) -> Option<Conversation> {
        let seller_id = self.post(post_token)?.seller_id.clone();
        let n = self.users.len() + 1;
        let buyer_id = format!("u-buyer-{n}");
        self.users.push(User {
            id: buyer_id.clone(),
            name: format!("خریدار {n}"),
        });
        let conversation = Conversation {
            id: id.to_string(),
            post_token: post_token.to_string(),
            seller_id,
            buyer_id,
            blocked: false,
        };
        self.add_conversation(conversation.clone());
        Some(conversation)
    }

    pub fn add_conversations(
        &mut self,
        post_token: &str,
        count: usize,
    ) -> Option<Vec<(Conversation, ChatMessage)>> {
        let seller_id = self.post(post_token)?.seller_id.clone();
        let mut created = Vec::with_capacity(count);
        for _ in 0..count {
            let n = self.users.len() + 1;
            let buyer = format!("u-buyer-{n}");
            self.users.push(User {
                id: buyer.clone(),
                name: format!("خریدار {n}"),
            });
            let conversation = Conversation {
                id: format!("c0ffee00-0000-4000-8001-{n:012}"),
                post_token: post_token.to_string(),
                seller_id: seller_id.clone(),
                buyer_id: buyer.clone(),
                blocked: false,
            };
            let message = ChatMessage {
                id: random_id(),
                conversation_id: conversation.id.clone(),
                sender_side: UserSide::Buyer,
                sender_id: buyer,
                sender_type: "HUMAN",
                text: "سلام، این آگهی هنوز موجود است؟".into(),
                sender_buttons: None,
                receiver_buttons: None,
                idempotency_key: None,
                token_header: None,
                media: None,
                sent_at: self.now_ms(),
            };
            self.add_conversation(conversation.clone());
            self.messages.push(message.clone());
            created.push((conversation, message));
        }
        Some(created)
    }

    pub fn issue_code(&mut self, code: AuthCode) -> String {
        let value = random_token("ory_ac_");
        self.codes.insert(value.clone(), code);
        value
    }

    /// Issues an access token (and a refresh token when `offline_access` was granted).
    pub fn issue_tokens(
        &mut self,
        user_id: &str,
        scopes: Vec<Scope>,
    ) -> (AccessToken, Option<RefreshToken>) {
        let now = self.now_ms();
        let access = AccessToken {
            token: random_token("ory_at_"),
            user_id: user_id.to_string(),
            scopes: scopes.clone(),
            issued_at: now,
            expires_at: now + self.knobs.access_token_ttl_secs as i64 * 1000,
            rotated_at: None,
            revoked: false,
        };
        let refresh = scopes
            .iter()
            .any(|s| s.kind == ScopeKind::OfflineAccess)
            .then(|| RefreshToken {
                token: random_token("ory_rt_"),
                access_token: access.token.clone(),
                user_id: user_id.to_string(),
                scopes,
                expires_at: now + REFRESH_LIFETIME_MS,
                rotated_at: None,
                revoked: false,
            });
        self.access_tokens
            .insert(access.token.clone(), access.clone());
        if let Some(refresh) = &refresh {
            self.refresh_tokens
                .insert(refresh.token.clone(), refresh.clone());
        }
        (access, refresh)
    }

    /// The token's holder and scopes, if it may be used now.
    pub fn check_access_token(&self, token: &str) -> Result<&AccessToken, TokenProblem> {
        let now = self.now_ms();
        let access = self.access_tokens.get(token).ok_or(TokenProblem::Unknown)?;
        if access.revoked {
            return Err(TokenProblem::Revoked);
        }
        if access
            .rotated_at
            .is_some_and(|at| now > at + self.grace_ms())
        {
            return Err(TokenProblem::Revoked);
        }
        if now >= access.expires_at {
            return Err(TokenProblem::Expired);
        }
        Ok(access)
    }

    /// Revokes every grant `user_id` gave the app (the user withdrew access in Divar).
    pub fn revoke_user(&mut self, user_id: &str) -> usize {
        let mut count = 0;
        for token in self
            .access_tokens
            .values_mut()
            .filter(|t| t.user_id == user_id && !t.revoked)
        {
            token.revoked = true;
            count += 1;
        }
        for token in self
            .refresh_tokens
            .values_mut()
            .filter(|t| t.user_id == user_id)
        {
            token.revoked = true;
        }
        self.subscriptions.retain(|s| s.user_id != user_id);
        count
    }

    /// Admits one send under the per-minute limit, or says how many seconds to wait.
    pub fn admit_send(&mut self, now: i64) -> Result<(), u64> {
        while self
            .recent_sends
            .front()
            .is_some_and(|&t| t <= now - 60_000)
        {
            self.recent_sends.pop_front();
        }
        if self.recent_sends.len() >= self.knobs.rate_limit_per_minute as usize {
            let oldest = self.recent_sends.front().copied().unwrap_or(now);
            let wait_ms = (oldest + 60_000 - now).max(1);
            return Err((wait_ms as u64).div_ceil(1000));
        }
        self.recent_sends.push_back(now);
        Ok(())
    }

    /// Subscriptions that should hear of a new message in `conversation`.
    /// Removes a post from the listings; the subscriptions to hear of it, which are those for
    /// this one post: Divar does not send a removal to a subscription to all of a user's posts
    /// (`events/post.md`). `None` for an unknown post.
    pub fn retire_post(&mut self, token: &str) -> Option<Vec<Subscription>> {
        let post = self.posts.iter_mut().find(|p| p.token == token)?;
        post.retired = true;
        let seller = post.seller_id.clone();
        Some(
            self.subscriptions
                .iter()
                .filter(|s| s.event_type == "POST_UPDATE" && s.user_id == seller)
                .filter(|s| s.event_resource_id.as_deref() == Some(token))
                .filter(|s| self.check_access_token(&s.access_token).is_ok())
                .cloned()
                .collect(),
        )
    }

    pub fn subscribers_for(&self, conversation: &Conversation) -> Vec<Subscription> {
        self.subscriptions
            .iter()
            .filter(|s| {
                s.event_type == "NEW_MESSAGE_ON_POST" && s.user_id == conversation.seller_id
            })
            .filter(|s| match &s.event_resource_id {
                Some(post) => *post == conversation.post_token,
                None => true,
            })
            .filter(|s| self.check_access_token(&s.access_token).is_ok())
            .cloned()
            .collect()
    }
}

/// An unguessable token in the shape Divar's OAuth server (Ory Hydra) uses.
pub fn random_token(prefix: &str) -> String {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut a);
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!(
        "{prefix}{}.{}",
        URL_SAFE_NO_PAD.encode(a),
        URL_SAFE_NO_PAD.encode(b)
    )
}

pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
