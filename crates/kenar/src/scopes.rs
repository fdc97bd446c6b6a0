//! OAuth scopes: the 38 names Divar documents, what each one's identifier names, and their syntax
//! (`NAME` or `NAME.IDENTIFIER`). A name Divar adds later parses as [`ScopeKind::Other`] and is
//! passed through as written, so a new scope never breaks a token's parsing.
//!
//! The list is the OpenAPI's `OAuthScopeScope` enum and the keys of its `OAuth` security scheme
//! (`static/openapi-v3.json`; see `docs/divar-platform.md`, *OAuth scopes*).

use std::fmt;

/// What a scope's identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suffix {
    /// The scope takes no identifier.
    None,
    /// `.<post_token>`
    Post,
    /// `.<conversation_id>`
    Conversation,
    /// `.<business_token>`
    Business,
    /// An identifier Divar's docs do not describe (the legacy `CHAT_MESSAGE_SEND`, and
    /// `MANAGEMENT_APPS_*`).
    Undocumented,
}

macro_rules! scopes {
    ($($kind:ident = $name:literal, $suffix:ident;)*) => {
        /// A scope's name. `Other` keeps a name this crate does not know, as written.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ScopeKind {
            $(#[doc = concat!("`", $name, "`")] $kind,)*
            /// A name this crate does not know, as written.
            Other(String),
        }

        /// Every documented scope: (kind, name, what its identifier names).
        pub const DOCUMENTED: &[(ScopeKind, &str, Suffix)] = &[
            $((ScopeKind::$kind, $name, Suffix::$suffix),)*
        ];
    };
}

scopes! {
    BusinessAddonCreate = "BUSINESS_ADDON_CREATE", Business;
    BusinessCreateCustomizedButton = "BUSINESS_CREATE_CUSTOMIZED_BUTTON", Business;
    ChatBotUserMessageSend = "CHAT_BOT_USER_MESSAGE_SEND", None;
    ChatConversationRead = "CHAT_CONVERSATION_READ", Conversation;
    ChatMessageSend = "CHAT_MESSAGE_SEND", Undocumented;
    ChatPostConversationsMessageSend = "CHAT_POST_CONVERSATIONS_MESSAGE_SEND", Post;
    ChatPostConversationsRead = "CHAT_POST_CONVERSATIONS_READ", Post;
    ChatSupplierAllConversationsMessageSend = "CHAT_SUPPLIER_ALL_CONVERSATIONS_MESSAGE_SEND", None;
    ChatSupplierAllConversationsRead = "CHAT_SUPPLIER_ALL_CONVERSATIONS_READ", None;
    ConversationSendMessage = "CONVERSATION_SEND_MESSAGE", Conversation;
    DeleteUserPost = "DELETE_USER_POST", None;
    EditUserPost = "EDIT_USER_POST", None;
    ManagementAppsRead = "MANAGEMENT_APPS_READ", Undocumented;
    ManagementAppsWrite = "MANAGEMENT_APPS_WRITE", Undocumented;
    NotificationAccessRevocation = "NOTIFICATION_ACCESS_REVOCATION", None;
    PaymentAllPostsPricingRead = "PAYMENT_ALL_POSTS_PRICING_READ", None;
    PaymentAllPostsRenew = "PAYMENT_ALL_POSTS_RENEW", None;
    PaymentAllPostsReorder = "PAYMENT_ALL_POSTS_REORDER", None;
    PayUserPostPromotion = "PAY_USER_POST_PROMOTION", None;
    PostAddonCreate = "POST_ADDON_CREATE", Post;
    PostEdit = "POST_EDIT", Post;
    PostOngoingImagesGet = "POST_ONGOING_IMAGES_GET", Post;
    PostSemanticCreate = "POST_SEMANTIC_CREATE", Post;
    ProUserProfileImageRead = "PRO_USER_PROFILE_IMAGE_READ", None;
    SendEvent = "SEND_EVENT", None;
    SubmitUserPayment = "SUBMIT_USER_PAYMENT", None;
    SubmitUserPost = "SUBMIT_USER_POST", None;
    UserAddonCreate = "USER_ADDON_CREATE", None;
    UserBusinessesRead = "USER_BUSINESSES_READ", None;
    UserId = "USER_ID", None;
    UserPhone = "USER_PHONE", None;
    UserPostsAddonCreate = "USER_POSTS_ADDON_CREATE", None;
    UserPostsGet = "USER_POSTS_GET", None;
    UserPostsStatsRead = "USER_POSTS_STATS_READ", None;
    UserSetCustomizedButton = "USER_SET_CUSTOMIZED_BUTTON", None;
    UserVerificationCreate = "USER_VERIFICATION_CREATE", None;
    OfflineAccess = "offline_access", None;
    Openid = "openid", None;
}

impl ScopeKind {
    /// The kind a name stands for. The OpenAPI's enum spells the two standard scopes in capitals
    /// (`OFFLINE_ACCESS`, `OPENID`) where its security scheme and the OAuth page write them in
    /// lower case: both spellings are accepted.
    pub fn from_name(name: &str) -> Self {
        DOCUMENTED
            .iter()
            .find(|(_, known, _)| {
                *known == name
                    || (known.starts_with(char::is_lowercase) && known.eq_ignore_ascii_case(name))
            })
            .map(|(kind, _, _)| kind.clone())
            .unwrap_or_else(|| Self::Other(name.to_string()))
    }

    /// The name as Divar's OAuth server takes it.
    pub fn name(&self) -> &str {
        match self {
            Self::Other(name) => name,
            known => DOCUMENTED
                .iter()
                .find(|(kind, _, _)| kind == known)
                .map_or("", |(_, name, _)| name),
        }
    }

    /// What the identifier names; `None` for a name this crate does not know.
    pub fn suffix(&self) -> Option<Suffix> {
        DOCUMENTED
            .iter()
            .find(|(kind, _, _)| kind == self)
            .map(|(_, _, suffix)| *suffix)
    }
}

/// One scope as OAuth writes it: a name and, for a scope bound to a post, a chat or a business,
/// that thing's identifier. Displays as `NAME` or `NAME.IDENTIFIER`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The name.
    pub kind: ScopeKind,
    /// The identifier after the dot (printable ASCII, at most 256 bytes), if any.
    pub id: Option<String>,
}

impl Scope {
    /// A documented scope must come with an identifier exactly when it takes one; an unknown one
    /// is kept as written.
    ///
    /// ```
    /// use kenar::scopes::{Scope, ScopeKind, Suffix};
    ///
    /// let scope = Scope::parse("CONVERSATION_SEND_MESSAGE.62c82c02-6a71-4501-a1fd-4bf226b3aa78")?;
    /// assert_eq!(scope.kind, ScopeKind::ConversationSendMessage);
    /// assert_eq!(scope.kind.suffix(), Some(Suffix::Conversation));
    /// assert_eq!(scope.id.as_deref(), Some("62c82c02-6a71-4501-a1fd-4bf226b3aa78"));
    ///
    /// assert!(Scope::parse("CONVERSATION_SEND_MESSAGE").is_err()); // needs its chat
    /// assert!(Scope::parse("USER_ID.123").is_err()); // takes no identifier
    /// assert_eq!(Scope::parse("OFFLINE_ACCESS")?.to_string(), "offline_access");
    /// assert_eq!(Scope::parse("NEW_SCOPE")?.kind, ScopeKind::Other("NEW_SCOPE".into()));
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, id) = match text.split_once('.') {
            Some((name, id)) => (name, Some(id)),
            None => (text, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("malformed scope `{text}`"));
        }
        let kind = ScopeKind::from_name(name);
        let takes_id = kind.suffix().map(|suffix| suffix != Suffix::None);
        match (takes_id, id) {
            (_, Some(id))
                if id.is_empty() || id.len() > 256 || !id.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Err(format!("scope `{name}` has a malformed identifier"))
            }
            (Some(true), None) => Err(format!("scope `{name}` needs an identifier: `{name}.<id>`")),
            (Some(false), Some(_)) => Err(format!("scope `{name}` takes no identifier")),
            (_, id) => Ok(Self {
                kind,
                id: id.map(str::to_string),
            }),
        }
    }

    /// Parses a space-separated list (`+` arrives here already decoded to a space).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let scopes: Vec<Self> = text
            .split_whitespace()
            .map(Self::parse)
            .collect::<Result<_, _>>()?;
        if scopes.is_empty() {
            return Err("no scope was requested".into());
        }
        Ok(scopes)
    }

    /// The name, without the identifier.
    pub fn name(&self) -> &str {
        self.kind.name()
    }

    /// Whether this is `kind` with exactly the identifier `id`.
    pub fn is(&self, kind: ScopeKind, id: Option<&str>) -> bool {
        self.kind == kind && self.id.as_deref() == id
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}.{id}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// The scopes separated by spaces, as OAuth's `scope` parameter takes them.
pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of the `OAuth` security scheme in kenar-docs `static/openapi-v3.json`, as written
    /// there (an identifier shown as `.resource_id`).
    const OPENAPI_SCOPES: [&str; 38] = [
        "BUSINESS_ADDON_CREATE.resource_id",
        "BUSINESS_CREATE_CUSTOMIZED_BUTTON.resource_id",
        "CHAT_BOT_USER_MESSAGE_SEND",
        "CHAT_CONVERSATION_READ.resource_id",
        "CHAT_MESSAGE_SEND.resource_id",
        "CHAT_POST_CONVERSATIONS_MESSAGE_SEND.resource_id",
        "CHAT_POST_CONVERSATIONS_READ.resource_id",
        "CHAT_SUPPLIER_ALL_CONVERSATIONS_MESSAGE_SEND",
        "CHAT_SUPPLIER_ALL_CONVERSATIONS_READ",
        "CONVERSATION_SEND_MESSAGE.resource_id",
        "DELETE_USER_POST",
        "EDIT_USER_POST",
        "MANAGEMENT_APPS_READ.resource_id",
        "MANAGEMENT_APPS_WRITE.resource_id",
        "NOTIFICATION_ACCESS_REVOCATION",
        "PAYMENT_ALL_POSTS_PRICING_READ",
        "PAYMENT_ALL_POSTS_RENEW",
        "PAYMENT_ALL_POSTS_REORDER",
        "PAY_USER_POST_PROMOTION",
        "POST_ADDON_CREATE.resource_id",
        "POST_EDIT.resource_id",
        "POST_ONGOING_IMAGES_GET.resource_id",
        "POST_SEMANTIC_CREATE.resource_id",
        "PRO_USER_PROFILE_IMAGE_READ",
        "SEND_EVENT",
        "SUBMIT_USER_PAYMENT",
        "SUBMIT_USER_POST",
        "USER_ADDON_CREATE",
        "USER_BUSINESSES_READ",
        "USER_ID",
        "USER_PHONE",
        "USER_POSTS_ADDON_CREATE",
        "USER_POSTS_GET",
        "USER_POSTS_STATS_READ",
        "USER_SET_CUSTOMIZED_BUTTON",
        "USER_VERIFICATION_CREATE",
        "offline_access",
        "openid",
    ];

    #[test]
    fn every_documented_scope_round_trips_as_a_known_kind() {
        for text in OPENAPI_SCOPES {
            let scope = Scope::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                !matches!(scope.kind, ScopeKind::Other(_)),
                "{text} is unknown"
            );
            assert_eq!(scope.to_string(), text);
            assert_eq!(Scope::parse(&scope.to_string()).unwrap(), scope);
        }
        assert_eq!(DOCUMENTED.len(), OPENAPI_SCOPES.len());
    }

    #[test]
    fn the_enum_spelling_of_the_standard_scopes_is_accepted() {
        assert!(
            Scope::parse("OFFLINE_ACCESS")
                .unwrap()
                .is(ScopeKind::OfflineAccess, None)
        );
        assert_eq!(Scope::parse("OPENID").unwrap().to_string(), "openid");
    }

    #[test]
    fn parses_bound_and_general_scopes() {
        let scopes = Scope::parse_list("CONVERSATION_SEND_MESSAGE.abc offline_access").unwrap();
        assert!(scopes[0].is(ScopeKind::ConversationSendMessage, Some("abc")));
        assert_eq!(scopes[0].kind.suffix(), Some(Suffix::Conversation));
        assert!(scopes[1].is(ScopeKind::OfflineAccess, None));
        assert_eq!(
            join(&scopes),
            "CONVERSATION_SEND_MESSAGE.abc offline_access"
        );
    }

    #[test]
    fn an_unknown_scope_is_kept_as_written() {
        let scope = Scope::parse("MAKE_COFFEE.kitchen").unwrap();
        assert_eq!(scope.kind, ScopeKind::Other("MAKE_COFFEE".into()));
        assert_eq!(scope.kind.suffix(), None);
        assert_eq!(scope.to_string(), "MAKE_COFFEE.kitchen");
        assert_eq!(
            Scope::parse("MAKE_COFFEE").unwrap().to_string(),
            "MAKE_COFFEE"
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(Scope::parse("CONVERSATION_SEND_MESSAGE").is_err());
        assert!(Scope::parse("USER_PHONE.123").is_err());
        assert!(Scope::parse("POST_EDIT.").is_err());
        assert!(Scope::parse("MAKE COFFEE").is_err());
        assert!(Scope::parse("<script>").is_err());
        assert!(Scope::parse_list("  ").is_err());
    }
}
